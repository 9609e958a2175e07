"""Partitions: the stack deploys to the commercial partition only and says so at synth;
nothing in the stack's code spells the commercial partition where it builds an ARN."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from stacks.build_state_machine import iter_tasks, parse_with_placeholders, task_permission
from stacks.functions import powertools_layer_arn
from stacks.petal_stack import check_partition
from stacks.settings import SettingsError
from tests.infra.conftest import REPO_ROOT, synthesize


@pytest.mark.parametrize(
    ("region", "partition"),
    [
        ("cn-north-1", "aws-cn"),
        ("cn-northwest-1", "aws-cn"),
        ("us-gov-west-1", "aws-us-gov"),
        ("us-iso-east-1", "aws-iso"),
    ],
)
def test_synth_refuses_other_partitions(tmp_path: Path, region: str, partition: str) -> None:
    with pytest.raises(SettingsError) as failure:
        synthesize(tmp_path, {"petal:region": region})
    message = str(failure.value)
    assert f"petal:region {region!r} is in the {partition} partition" in message
    assert "commercial partition" in message
    assert "-c petal:region=us-east-1" in message


@pytest.mark.parametrize("region", ["us-east-1", "eu-central-2", "ap-southeast-7", "us-east-9"])
def test_commercial_regions_pass(region: str) -> None:
    check_partition(region)


def test_powertools_layer_arn_takes_the_partition() -> None:
    assert powertools_layer_arn("aws", "us-east-1", 27).startswith(
        "arn:aws:lambda:us-east-1:017000801446:layer:"
    )
    assert powertools_layer_arn("aws-cn", "cn-north-1", 27).startswith("arn:aws-cn:lambda:")


@pytest.mark.parametrize("partition", ["aws", "aws-cn", "aws-us-gov"])
def test_task_permissions_read_any_partition(partition: str) -> None:
    state = {
        "Type": "Task",
        "Resource": f"arn:{partition}:states:::lambda:invoke.waitForTaskToken",
        "Parameters": {"FunctionName": "${BootstrapFunctionArn}"},
    }
    permission = task_permission("S", state)
    assert permission.actions == ("lambda:InvokeFunction",)
    sdk = {"Type": "Task", "Resource": f"arn:{partition}:states:::aws-sdk:ec2:describeSnapshots"}
    assert task_permission("S", sdk).actions == ("ec2:DescribeSnapshots",)


def test_definition_integrations_are_commercial() -> None:
    """The refusal above is what keeps these literal `arn:aws:states:::` resources
    right: if the definition ever names its partition another way, the refusal can go."""
    definition = parse_with_placeholders((REPO_ROOT / "statemachines/build.asl.json").read_text())
    resources = {str(state.get("Resource")) for _, state in iter_tasks(definition)}
    integrations = {r for r in resources if r.startswith("arn:")}
    assert integrations
    assert all(r.startswith("arn:aws:states:::") for r in integrations)


def _code_strings(path: Path) -> list[tuple[int, str]]:
    """Every string constant in `path` but docstrings, with its line."""
    tree = ast.parse(path.read_text())
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in docstrings
    ]


def test_no_literal_commercial_arns_in_code() -> None:
    """A literal `arn:aws:` breaks silently in another partition. The emulator
    (petal/local/) runs in commercial regions only and may spell it."""
    files = sorted((REPO_ROOT / "stacks").rglob("*.py")) + sorted(
        p
        for p in (REPO_ROOT / "petal").rglob("*.py")
        if "local" not in p.relative_to(REPO_ROOT).parts
    )
    found = [
        f"{path.relative_to(REPO_ROOT)}:{line}: {json.dumps(text)}"
        for path in files
        for line, text in _code_strings(path)
        if "arn:aws:" in text
    ]
    assert not found, "\n".join(found)
