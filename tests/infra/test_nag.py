"""cdk-nag (AwsSolutions) runs in every synth; its acknowledgments stay reviewable."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_cdk import App, CfnResource, Stack, Validations
from aws_cdk import aws_s3 as s3
from cdk_nag import AwsSolutionsChecks
from constructs import IConstruct

from tests.infra.conftest import Synth

ACK_KEY = Validations.ACKNOWLEDGED_RULES_METADATA_KEY


def acknowledgments(construct: IConstruct) -> dict[str, str]:
    found: dict[str, str] = {}
    for entry in construct.node.metadata:
        if entry.type == ACK_KEY:
            found.update(entry.data)
    return found


def is_one_resource(construct: IConstruct) -> bool:
    """A CloudFormation resource, or an L2 construct wrapping exactly one."""
    if isinstance(construct, CfnResource):
        return True
    default = construct.node.default_child
    return isinstance(default, CfnResource)


def test_synth_reports_no_findings(synth: Synth) -> None:
    report = json.loads((synth.outdir / "validation-report.json").read_text())
    violations = [r for r in report.get("pluginReports", []) if r.get("violations")]
    assert violations == []


def test_cdk_nag_is_active_and_fails_synth_on_a_finding(tmp_path: Any) -> None:
    app = App(outdir=str(tmp_path))
    stack = Stack(app, "Bad")
    s3.CfnBucket(stack, "Unencrypted")
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    with pytest.raises(RuntimeError, match="ValidationFailed"):
        app.synth()


def test_acknowledgments_sit_on_single_resources_with_reasons(synth: Synth) -> None:
    app = synth.stack.node.root
    found = 0
    for construct in app.node.find_all():
        acks = acknowledgments(construct)
        if not acks:
            continue
        found += len(acks)
        path = construct.node.path
        assert not isinstance(construct, Stack | App), f"stack-wide acknowledgment at {path}"
        if any("AwsSolutions" in rule for rule in acks):
            assert is_one_resource(construct), f"acknowledgment on a group of resources: {path}"
        for rule, reason in acks.items():
            assert len(reason) >= 60, f"{path}: {rule}: reason too thin: {reason!r}"
            # Per-finding ids only: no blanket AwsSolutions-IAM5 without a finding.
            if "IAM5" in rule or "IAM4" in rule:
                assert "[" in rule, f"{path}: {rule} is not a specific finding"
    assert found


def test_acknowledgments_are_recorded_in_the_template(synth: Synth) -> None:
    recorded = [
        rule["id"]
        for res in synth.resources.values()
        for rule in res.get("Metadata", {}).get("cdk_nag", {}).get("rules_to_suppress", [])
    ]
    assert any(r.startswith("AwsSolutions-IAM5[") for r in recorded)
    # Nothing outside these families is acknowledged.
    families = (
        "AwsSolutions-IAM4[",
        "AwsSolutions-IAM5[",
        "AwsSolutions-L1",
        "AwsSolutions-S1",
        # The dead-letter queues: cdk-nag knows a DLQ only from another queue's redrive.
        "AwsSolutions-SQS3",
    )
    assert sorted({r for r in recorded if not r.startswith(families)}) == []


def test_petal_roles_use_no_action_wildcards(synth: Synth) -> None:
    # Only CDK's BucketDeployment role is allowed s3:GetObject*-style actions.
    for logical_id, res in synth.of_type("AWS::IAM::Policy").items():
        if logical_id.startswith("NodeSetupDeployment"):
            continue
        for statement in res["Properties"]["PolicyDocument"]["Statement"]:
            actions = statement["Action"]
            actions = actions if isinstance(actions, list) else [actions]
            assert not [a for a in actions if "*" in a], (logical_id, actions)
