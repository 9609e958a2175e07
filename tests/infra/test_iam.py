"""Least privilege, checked on the synthesized policies.

Where a check needs to know what AWS supports (which actions have resource-level
permissions, which condition keys apply to which resource), it reads the IAM service
reference data cfn-lint ships (cfnlint/data/AdditionalSpecs/Policies.json), so "AWS
forces '*' here" is verified rather than asserted.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import cfnlint
import pytest

from petal.build.config import DEFAULT_ALLOWED_INSTANCE_TYPES
from petal.deployment_contract import (
    CALLBACK_FUNCTION,
    ENV_ALLOWED_INSTANCE_TYPES,
    ENV_MAX_BUILD_HOURS,
    ENV_MAX_VOLUME_GB,
    ENV_MAX_VOLUME_IOPS,
    INTAKE_FUNCTION,
    JANITOR_FUNCTION,
    LOG_HEARTBEAT_FUNCTION,
    RESOLVER_FUNCTION,
    ROLE_BUILDER,
    STEP_FUNCTIONS,
    TAG_MANAGED,
    TAG_ROLE,
)
from stacks.dead_letters import DEAD_LETTER_FUNCTIONS
from tests.infra.aws_calls import implied_actions, iter_candidates, reachable_calls
from tests.infra.conftest import TEST_SUBNETS, TEST_TRUSTED_ACCOUNTS, Synth

PREPARE = STEP_FUNCTIONS["PrepareFunctionArn"]
LAUNCH = STEP_FUNCTIONS["LaunchFunctionArn"]
BOOTSTRAP = STEP_FUNCTIONS["BootstrapFunctionArn"]
CHECK_SNAPSHOT = STEP_FUNCTIONS["CheckSnapshotFunctionArn"]
ALL_MODULES = sorted(
    {
        *STEP_FUNCTIONS.values(),
        CALLBACK_FUNCTION,
        LOG_HEARTBEAT_FUNCTION,
        INTAKE_FUNCTION,
        JANITOR_FUNCTION,
        RESOLVER_FUNCTION,
    }
)
# SendTask* have no resource types in the service reference, yet AWS evaluates them
# against the state machine that issued the token (its ARN is the resource in the
# AccessDenied message), so they are scoped to petal's state machine.
SCOPED_WITHOUT_RESOURCE_TYPES = {
    "states:SendTaskSuccess",
    "states:SendTaskFailure",
    "states:SendTaskHeartbeat",
}
# Condition keys that belong to the action rather than to a resource type.
ACTION_CONDITION_KEYS = {"ec2:CreateAction", "iam:PassedToService"}
MANAGED = f"{TAG_MANAGED}"


@cache
def service_reference() -> dict[str, Any]:
    path = Path(cfnlint.__file__).parent / "data" / "AdditionalSpecs" / "Policies.json"
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def resource_types(action: str) -> list[str]:
    service, name = action.split(":")
    entry = service_reference()[service]["Actions"][name.lower()]
    types: list[str] = entry.get("Resources", [])
    return types


@dataclass(frozen=True)
class Statement:
    policy: str
    effect: str
    actions: tuple[str, ...]
    resources: tuple[str, ...]  # each resource rendered as compact JSON
    condition: dict[str, Any]

    @property
    def wildcard(self) -> bool:
        return self.resources == ('"*"',)

    def has_resource(self, fragment: str) -> bool:
        return any(fragment in r for r in self.resources)


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def statements_of_role(synth: Synth, role_id: str) -> list[Statement]:
    found: list[Statement] = []
    for logical_id, res in synth.of_type("AWS::IAM::Policy").items():
        roles = res["Properties"].get("Roles", [])
        if {"Ref": role_id} not in roles:
            continue
        for st in res["Properties"]["PolicyDocument"]["Statement"]:
            found.append(
                Statement(
                    policy=logical_id,
                    effect=st["Effect"],
                    actions=tuple(_as_list(st["Action"])),
                    resources=tuple(
                        json.dumps(r, separators=(",", ":"), sort_keys=True)
                        for r in _as_list(st.get("Resource", st.get("NotResource")))
                    ),
                    condition=st.get("Condition", {}),
                )
            )
    return found


def function_role(synth: Synth, module: str) -> str:
    props = synth.resources[synth.function_ids()[module]]["Properties"]
    role: str = props["Role"]["Fn::GetAtt"][0]
    return role


def allowed(synth: Synth, module: str) -> list[Statement]:
    return [
        s for s in statements_of_role(synth, function_role(synth, module)) if s.effect == "Allow"
    ]


def actions_of(synth: Synth, module: str) -> set[str]:
    return {a for s in allowed(synth, module) for a in s.actions}


def petal_roles(synth: Synth) -> dict[str, str]:
    """Role logical id -> what it is, for the roles petal defines itself."""
    roles = {function_role(synth, m): m for m in ALL_MODULES}
    for logical_id in synth.of_type("AWS::IAM::Role"):
        if logical_id.startswith(("BuilderIdentity", "BuildStateMachine")):
            roles[logical_id] = logical_id
    return roles


def petal_statements(synth: Synth) -> Iterator[tuple[str, Statement]]:
    for role_id, name in petal_roles(synth).items():
        for st in statements_of_role(synth, role_id):
            if st.effect == "Allow":
                yield name, st


def condition_keys(condition: dict[str, Any]) -> set[str]:
    return {key for block in condition.values() for key in block}


# --- checks against AWS's own data ---------------------------------------------------


def test_wildcard_resources_only_where_aws_forces_them(synth: Synth) -> None:
    offenders = [
        (name, action)
        for name, st in petal_statements(synth)
        if st.wildcard
        for action in st.actions
        if resource_types(action)
    ]
    assert offenders == [], "these actions support resource-level permissions: scope them"


def test_scoped_statements_only_for_actions_that_support_scoping(synth: Synth) -> None:
    offenders = [
        (name, action)
        for name, st in petal_statements(synth)
        if not st.wildcard
        for action in st.actions
        if not resource_types(action) and action not in SCOPED_WITHOUT_RESOURCE_TYPES
    ]
    assert offenders == [], "AWS ignores a resource for these actions: they would be denied"


def _arn_resource_type(resource: str) -> str | None:
    if ":ec2:" not in resource:
        return None
    match = re.search(r'[:"]([a-z][a-z-]*)/', resource)
    return match.group(1) if match else None


def test_ec2_condition_keys_exist_for_the_resources_they_guard(synth: Synth) -> None:
    ec2 = service_reference()["ec2"]["Resources"]
    checked = 0
    for name, st in petal_statements(synth):
        if not any(a.startswith("ec2:") for a in st.actions) or not st.condition:
            continue
        for resource in st.resources:
            rtype = _arn_resource_type(resource)
            assert rtype, (name, resource)
            known = {
                k.replace("${TagKey}", "").replace("${AttributeName}", "")
                for k in ec2[rtype]["ConditionKeys"]
            }
            for key in condition_keys(st.condition) - ACTION_CONDITION_KEYS:
                base = key.split("/")[0] + "/" if "/" in key else key
                assert base in known or key in known, f"{name}: {key} not valid on {rtype}"
                checked += 1
    assert checked


# --- EC2 writes are scoped by tag -----------------------------------------------------


EC2_WRITES = {
    "ec2:RunInstances",
    "ec2:CreateVolume",
    "ec2:AttachVolume",
    "ec2:DetachVolume",
    "ec2:DeleteVolume",
    "ec2:TerminateInstances",
    "ec2:CreateSnapshot",
    "ec2:DeleteSnapshot",
    "ec2:ModifySnapshotAttribute",
    "ec2:CopySnapshot",
    "ec2:CreateTags",
    "ec2:DeleteTags",
}


def _tag_guarded(st: Statement) -> bool:
    keys = condition_keys(st.condition)
    return (
        f"aws:RequestTag/{MANAGED}" in keys
        or f"ec2:ResourceTag/{MANAGED}" in keys
        or "ec2:CreateAction" in keys
    )


def test_ec2_writes_on_instances_volumes_snapshots_need_the_petal_tag(synth: Synth) -> None:
    for name, st in petal_statements(synth):
        writes = set(st.actions) & EC2_WRITES
        if not writes:
            continue
        for kind in ("instance/", "volume/", "snapshot/"):
            if st.has_resource(kind):
                assert _tag_guarded(st), f"{name}: {sorted(writes)} on {kind} without tag"


def test_run_instances_touches_only_what_it_must(synth: Synth) -> None:
    assert [m for m in ALL_MODULES if "ec2:RunInstances" in actions_of(synth, m)] == [LAUNCH]
    run = [s for s in allowed(synth, LAUNCH) if "ec2:RunInstances" in s.actions]
    by_kind: dict[str, Statement] = {}
    for st in run:
        for resource in st.resources:
            rtype = _arn_resource_type(resource)
            assert rtype, resource
            by_kind.setdefault(rtype, st)
    assert set(by_kind) == {
        "instance",
        "volume",
        "image",
        "subnet",
        "security-group",
        "network-interface",
    }
    request_tag = {"StringEquals": {f"aws:RequestTag/{MANAGED}": "true"}}
    # The builder only of a type petal:allowedInstanceTypes allows;
    # the volume statement has no such key, which EC2 sets on the instance only.
    assert by_kind["instance"].condition == {
        **request_tag,
        "StringLike": {"ec2:InstanceType": list(DEFAULT_ALLOWED_INSTANCE_TYPES)},
    }
    assert by_kind["instance"].resources != by_kind["volume"].resources
    assert by_kind["volume"].condition == request_tag
    # Official AMIs (amazon) and this account's own pcluster-built images (rocky8/9 have
    # no official AMI); petal:builderImageOwners adds accounts (tests/infra/test_options).
    assert by_kind["image"].condition == {
        "StringEquals": {"ec2:Owner": ["amazon", {"Ref": "AWS::AccountId"}]}
    }
    subnet_resources = [r for r in by_kind["subnet"].resources if "subnet/" in r]
    assert len(subnet_resources) == len(TEST_SUBNETS)
    for subnet in TEST_SUBNETS:
        assert by_kind["subnet"].has_resource(f"subnet/{subnet}")
    assert "ec2:Subnet" in json.dumps(by_kind["network-interface"].condition)
    sg = [r for r in by_kind["security-group"].resources if "security-group/" in r]
    assert len(sg) == 1 and "BuilderNetworkBuilderSecurityGroup" in sg[0]


def test_prepare_refuses_what_the_launch_role_would_deny(synth: Synth) -> None:
    """Prepare holds a build to the same instance type patterns the launch role's
    ec2:InstanceType condition allows, and to the volume and time limits (defaults)."""
    (instance,) = [
        s
        for s in allowed(synth, LAUNCH)
        if "ec2:RunInstances" in s.actions and s.has_resource(":instance/")
    ]
    patterns = instance.condition["StringLike"]["ec2:InstanceType"]
    prepare = synth.resources[synth.function_ids()[PREPARE]]["Properties"]
    variables = prepare["Environment"]["Variables"]
    assert variables[ENV_ALLOWED_INSTANCE_TYPES].split(",") == patterns
    assert (
        variables[ENV_MAX_VOLUME_GB],
        variables[ENV_MAX_VOLUME_IOPS],
        variables[ENV_MAX_BUILD_HOURS],
    ) == ("2000", "6000", "12")
    # Prepare alone reads them.
    for module in ALL_MODULES:
        if module != PREPARE:
            props = synth.resources[synth.function_ids()[module]]["Properties"]
            assert ENV_MAX_BUILD_HOURS not in props["Environment"]["Variables"], module


def test_tags_are_written_only_while_creating_or_on_petal_resources(synth: Synth) -> None:
    for name, st in petal_statements(synth):
        if "ec2:CreateTags" in st.actions or "ec2:DeleteTags" in st.actions:
            keys = condition_keys(st.condition)
            assert "ec2:CreateAction" in keys or f"ec2:ResourceTag/{MANAGED}" in keys, name


def test_snapshots_are_shared_only_with_trusted_accounts(synth: Synth) -> None:
    share = [
        s for s in allowed(synth, CHECK_SNAPSHOT) if "ec2:ModifySnapshotAttribute" in s.actions
    ]
    for st in share:
        assert st.condition["ForAllValues:StringEquals"]["ec2:Add/userId"] == list(
            TEST_TRUSTED_ACCOUNTS
        )
        assert st.condition["Null"] == {"ec2:Add/group": "true"}
        assert st.condition["StringEquals"] == {f"ec2:ResourceTag/{MANAGED}": "true"}


# --- identity, SSM, Step Functions -----------------------------------------------------


def test_pass_role_only_the_builder_role_to_ec2(synth: Synth) -> None:
    holders = [m for m in ALL_MODULES if "iam:PassRole" in actions_of(synth, m)]
    assert holders == [LAUNCH]
    (st,) = [s for s in allowed(synth, LAUNCH) if "iam:PassRole" in s.actions]
    assert st.actions == ("iam:PassRole",)
    (resource,) = st.resources
    assert "BuilderIdentityRole" in resource
    assert st.condition == {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}}


def test_send_command_only_petal_document_on_petal_builders(synth: Synth) -> None:
    holders = [m for m in ALL_MODULES if "ssm:SendCommand" in actions_of(synth, m)]
    assert holders == [BOOTSTRAP]
    send = [s for s in allowed(synth, BOOTSTRAP) if "ssm:SendCommand" in s.actions]
    assert len(send) == 2
    document = next(s for s in send if s.has_resource(":document/"))
    assert document.resources == (
        '{"Fn::Join":["",["arn:aws:ssm:us-east-1:",{"Ref":"AWS::AccountId"},":document/petal-bootstrap"]]}',
    )
    instance = next(s for s in send if s.has_resource(":instance/"))
    assert instance.condition == {
        "StringEquals": {
            f"ssm:resourceTag/{TAG_MANAGED}": "true",
            f"ssm:resourceTag/{TAG_ROLE}": ROLE_BUILDER,
        }
    }


STATE_MACHINE_ARN = ":stateMachine:petal-build"


@pytest.mark.parametrize(
    ("action", "holders"),
    [
        # The janitor's reconciler does the callback's work when every event is lost.
        ("states:SendTaskSuccess", [CALLBACK_FUNCTION, JANITOR_FUNCTION]),
        ("states:SendTaskFailure", [CALLBACK_FUNCTION, JANITOR_FUNCTION]),
        ("states:SendTaskHeartbeat", [LOG_HEARTBEAT_FUNCTION]),
        ("states:StartExecution", [INTAKE_FUNCTION]),
    ],
)
def test_state_machine_actions_only_on_the_build_state_machine(
    synth: Synth, action: str, holders: list[str]
) -> None:
    assert [m for m in ALL_MODULES if action in actions_of(synth, m)] == holders
    for module in holders:
        for st in allowed(synth, module):
            if action in st.actions:
                (resource,) = st.resources
                assert STATE_MACHINE_ARN in resource


def test_seed_objects_are_read_only_under_seeds(synth: Synth) -> None:
    for name, st in petal_statements(synth):
        s3_actions = [a for a in st.actions if a.startswith("s3:")]
        if st.actions == ("s3:PutObject",) and name.startswith("BuilderIdentity"):
            # The builder's manifest copy (petal.build.manifest), and nothing else.
            (resource,) = st.resources
            assert resource.endswith('/manifests/*"]]}'), resource
        elif s3_actions:
            assert set(s3_actions) <= {"s3:GetObject", "s3:GetObjectVersion"}, name
            for resource in st.resources:
                assert "/seeds/*" in resource, (name, resource)


def test_node_setup_deployment_cannot_write_outside_its_prefix(synth: Synth) -> None:
    policies = [
        res
        for logical_id, res in synth.of_type("AWS::IAM::Policy").items()
        if logical_id.startswith("NodeSetupDeployment")
    ]
    (policy,) = policies
    denies = [
        s for s in policy["Properties"]["PolicyDocument"]["Statement"] if s["Effect"] == "Deny"
    ]
    (deny,) = denies
    assert "s3:PutObject*" in deny["Action"] and "s3:DeleteObject*" in deny["Action"]
    assert "node-setup/*" in json.dumps(deny["NotResource"])


@pytest.mark.parametrize("module", ALL_MODULES)
def test_every_function_writes_only_its_own_log_group(synth: Synth, module: str) -> None:
    log_group = synth.resources[synth.function_ids()[module]]["Properties"]["LoggingConfig"][
        "LogGroup"
    ]["Ref"]
    for st in allowed(synth, module):
        if {"logs:CreateLogStream", "logs:PutLogEvents"} & set(st.actions):
            assert st.resources == (
                json.dumps({"Fn::GetAtt": [log_group, "Arn"]}, separators=(",", ":")),
            )


def builder_role_id(synth: Synth) -> str:
    return next(r for r in synth.of_type("AWS::IAM::Role") if r.startswith("BuilderIdentity"))


# Everything the builder does with its role: the SSM agent's Run Command calls
# (amazon-ssm-agent: the health ping, the association poller, the ssmmessages control
# channel and its ec2messages fallback) and writing the command output to the build log.
BUILDER_AGENT_ACTIONS = {
    "ssm:UpdateInstanceInformation",
    "ssm:ListInstanceAssociations",
    "ssmmessages:CreateControlChannel",
    "ssmmessages:CreateDataChannel",
    "ssmmessages:OpenControlChannel",
    "ssmmessages:OpenDataChannel",
    "ec2messages:AcknowledgeMessage",
    "ec2messages:DeleteMessage",
    "ec2messages:FailMessage",
    "ec2messages:GetEndpoint",
    "ec2messages:GetMessages",
    "ec2messages:SendReply",
}
BUILDER_LOG_ACTIONS = {
    "logs:CreateLogStream",
    "logs:PutLogEvents",
    "logs:DescribeLogStreams",
    "logs:DescribeLogGroups",
}


def test_builder_role_is_the_agents_calls_plus_its_log_group(synth: Synth) -> None:
    role_id = builder_role_id(synth)
    statements = statements_of_role(synth, role_id)
    assert {a for s in statements for a in s.actions} == (
        BUILDER_AGENT_ACTIONS | BUILDER_LOG_ACTIONS | {"s3:PutObject"}
    )
    assert all(s.effect == "Allow" for s in statements)
    for st in statements:
        if {"logs:CreateLogStream", "logs:PutLogEvents"} & set(st.actions):
            assert len(st.resources) == 1 and "BuildLogs" in st.resources[0]
        if "ssm:UpdateInstanceInformation" in st.actions:
            assert len(st.resources) == 1 and ":instance/*" in st.resources[0]
        # The manifest's copy, and nothing else of the seed bucket (petal.build.manifest).
        if "s3:PutObject" in st.actions:
            assert st.actions == ("s3:PutObject",) and len(st.resources) == 1
            assert "Seeds" in st.resources[0] and st.resources[0].endswith('/manifests/*"]]}')


def test_builder_role_has_no_ssm_core_and_cannot_read_parameters(synth: Synth) -> None:
    role = synth.resources[builder_role_id(synth)]["Properties"]
    assert "AmazonSSMManagedInstanceCore" not in json.dumps(role)
    assert "ManagedPolicyArns" not in role
    actions = {a for s in statements_of_role(synth, builder_role_id(synth)) for a in s.actions}
    for action in actions:
        assert "*" not in action
        assert not action.startswith(("ssm:GetParameter", "ssm:GetDocument", "kms:"))
        # S3: only the manifest's upload (test_builder_role_is_the_agents_calls_...).
        assert not action.startswith("s3:") or action == "s3:PutObject"


# --- the roles match the code ----------------------------------------------------------

# Granted to every function for its runtime, not for its handler's calls.
RUNTIME_ACTIONS = {
    "logs:CreateLogStream",
    "logs:PutLogEvents",
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
}


@pytest.mark.parametrize("module", ALL_MODULES)
def test_role_allows_every_call_its_handler_can_make(synth: Synth, module: str) -> None:
    calls = reachable_calls(module)
    granted = actions_of(synth, module)
    missing = {
        method: sorted(actions) for method, actions in calls.items() if not actions & granted
    }
    assert missing == {}, f"lambdas/{module}.py would get AccessDenied for these calls"


# Lambda itself sends a failed asynchronous invocation to the function's dead-letter
# queue (its on-failure destination), with the function's role.
DESTINATION_ACTIONS = {"sqs:SendMessage"}


@pytest.mark.parametrize("module", ALL_MODULES)
def test_role_allows_nothing_its_handler_does_not_call(synth: Synth, module: str) -> None:
    used = set(iter_candidates(reachable_calls(module)))
    granted = actions_of(synth, module) - RUNTIME_ACTIONS
    if module in DEAD_LETTER_FUNCTIONS:
        granted -= DESTINATION_ACTIONS
    unused = granted - used - implied_actions(used)
    assert unused == set(), f"lambdas/{module}.py never calls these: remove them from its role"


@pytest.mark.parametrize("module", ALL_MODULES)
def test_only_dead_lettered_functions_may_send_to_a_queue_and_only_to_their_own(
    synth: Synth, module: str
) -> None:
    sends = [s for s in allowed(synth, module) if any(a.startswith("sqs:") for a in s.actions)]
    if module not in DEAD_LETTER_FUNCTIONS:
        assert sends == []
        return
    (st,) = sends
    assert st.actions == ("sqs:SendMessage",)
    (resource,) = st.resources
    queue = json.loads(resource)["Fn::GetAtt"][0]
    assert queue.startswith(f"DeadLetters{module.capitalize()}Queue")
