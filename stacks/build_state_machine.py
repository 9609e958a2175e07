"""The build state machine: a STANDARD workflow defined by statemachines/build.asl.json.

The ASL is loaded and passed inline (DefinitionBody.from_string) rather than as an S3
asset, so cfn-lint validates the definition. Its `${Name}` placeholders are filled by
CloudFormation DefinitionSubstitutions: `petal.build.definition.definition_substitutions`
(the step functions' ARNs, keys of STEP_FUNCTIONS, and numbers: waits, attempts,
timeouts), plus the table name.

The state machine has a fixed name derived from the stack name, so functions that
need its ARN (intake starts executions, callback completes tasks) compute it with
`state_machine_arn` instead of referencing the resource, which would close a cycle:
the state machine already references those functions' ARNs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from aws_cdk import ArnFormat, RemovalPolicy, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from petal.build.definition import (
    PLACEHOLDER,
    StateMachineSettings,
    definition_path,
    definition_substitutions,
    placeholders,
)
from petal.deployment_contract import STATE_MACHINE_FILE, STEP_FUNCTIONS
from stacks.nag import acknowledge
from stacks.paths import REPO_ROOT
from stacks.settings import PetalSettings

UNESCAPED_QUOTE = re.compile(r'(?<!\\)"')
TABLE_PLACEHOLDER = "BuildsTableName"


class ArnScope(Protocol):
    """What the ARN helpers read from a stack (any CDK Stack has it)."""

    @property
    def stack_name(self) -> str: ...

    def format_arn(
        self,
        *,
        resource: str,
        service: str,
        account: str | None = None,
        arn_format: ArnFormat | None = None,
        resource_name: str | None = None,
    ) -> str: ...


def state_machine_name(stack_name: str) -> str:
    return f"{stack_name}-build"


def state_machine_arn(stack: ArnScope) -> str:
    return stack.format_arn(
        service="states",
        resource="stateMachine",
        resource_name=state_machine_name(stack.stack_name),
        arn_format=ArnFormat.COLON_RESOURCE_NAME,
    )


def execution_arns(stack: ArnScope) -> str:
    """ARN pattern of every execution of the build state machine."""
    return stack.format_arn(
        service="states",
        resource="execution",
        resource_name=f"{state_machine_name(stack.stack_name)}:*",
        arn_format=ArnFormat.COLON_RESOURCE_NAME,
    )


def parse_with_placeholders(asl_text: str) -> dict[str, Any]:
    """The definition as JSON, with every placeholder replaced by a stand-in.

    A numeric placeholder (`"Seconds": ${Wait}`) makes the raw file invalid JSON;
    a stand-in number there, and the placeholder name in strings, keeps the structure.
    """

    def stand_in(match: re.Match[str]) -> str:
        quotes = len(UNESCAPED_QUOTE.findall(asl_text, 0, match.start()))
        inside_string = quotes % 2 == 1
        return match.group(0) if inside_string else "1"

    parsed: dict[str, Any] = json.loads(PLACEHOLDER.sub(stand_in, asl_text))
    return parsed


def iter_tasks(definition: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """(state name, state) of every Task state, in branches and Map processors too."""
    for name, state in definition.get("States", {}).items():
        if state.get("Type") == "Task":
            yield name, state
        for branch in state.get("Branches", []):
            yield from iter_tasks(branch)
        for key in ("ItemProcessor", "Iterator"):
            if key in state:
                yield from iter_tasks(state[key])


@dataclass(frozen=True)
class TaskPermission:
    """What one Task state needs from the state machine's role."""

    actions: tuple[str, ...]
    # Placeholder names of functions (for lambda:invoke), or "table" / "*".
    target: str


# A service integration's Resource is `arn:<partition>:states:::<integration>`: the
# partition differs outside the commercial one (arn:aws-cn:states:::lambda:invoke), so
# the integration is read without it.
SERVICE_INTEGRATION = re.compile(r"^arn:aws[a-z-]*:states:::(?P<integration>.+)$")
LAMBDA_INVOKE = "lambda:invoke"
DYNAMODB_PREFIX = "dynamodb:"
SDK_PREFIX = "aws-sdk:"
# SDK integrations the definition may use and the resource they are scoped to.
# Describe/Get-style EC2 and SSM calls have no resource-level permissions.
KNOWN_SDK_CALLS: dict[str, str] = {
    "ec2:DescribeSnapshots": "*",
    "ec2:DescribeInstances": "*",
    "ec2:DescribeVolumes": "*",
    "ssm:DescribeInstanceInformation": "*",
    "ssm:GetCommandInvocation": "*",
}


def task_permission(state_name: str, state: Mapping[str, Any]) -> TaskPermission:
    resource = str(state.get("Resource", ""))
    integration = SERVICE_INTEGRATION.fullmatch(resource)
    base = integration.group("integration") if integration else ""
    base = base.split(".waitForTaskToken")[0].split(".sync")[0]
    args = state.get("Parameters") or state.get("Arguments") or {}
    direct = PLACEHOLDER.fullmatch(resource)
    function = direct.group(0) if direct else str(args.get("FunctionName", ""))
    if direct or base == LAMBDA_INVOKE:
        match = PLACEHOLDER.fullmatch(function)
        if not match or match.group(1) not in STEP_FUNCTIONS:
            raise ValueError(
                f"state {state_name}: invokes {function!r}; it must be one of the "
                f"placeholders {sorted(STEP_FUNCTIONS)}"
            )
        return TaskPermission(("lambda:InvokeFunction",), match.group(1))
    if base.startswith(DYNAMODB_PREFIX):
        op = base.removeprefix(DYNAMODB_PREFIX)
        return TaskPermission((f"dynamodb:{op[:1].upper()}{op[1:]}",), "table")
    if base.startswith(SDK_PREFIX):
        service, _, op = base.removeprefix(SDK_PREFIX).partition(":")
        action = f"{service}:{op[:1].upper()}{op[1:]}"
        if action not in KNOWN_SDK_CALLS:
            raise ValueError(
                f"state {state_name}: no IAM mapping for SDK integration {resource}; "
                "add it to KNOWN_SDK_CALLS in stacks/build_state_machine.py"
            )
        return TaskPermission((action,), KNOWN_SDK_CALLS[action])
    raise ValueError(f"state {state_name}: unsupported Task resource {resource!r}")


class BuildStateMachine(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        functions: Mapping[str, lambda_.IFunction],
        table: dynamodb.ITable,
        settings: StateMachineSettings,
        retention: logs.RetentionDays,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        asl_text = definition_path(REPO_ROOT).read_text()
        arns = {key: functions[module].function_arn for key, module in STEP_FUNCTIONS.items()}
        available = definition_substitutions(arns, settings)
        available[TABLE_PLACEHOLDER] = table.table_name
        used = placeholders(asl_text)
        missing = sorted(used - set(available))
        if missing:
            raise ValueError(
                f"{STATE_MACHINE_FILE} uses placeholders the stack does not provide: {missing}"
            )
        self.substitutions = {key: available[key] for key in sorted(used)}

        self.log_group = logs.LogGroup(
            self,
            "ExecutionLogs",
            # The /aws/vendedlogs/ prefix keeps Step Functions from adding an entry per
            # log group to the account's CloudWatch Logs resource policy, whose size
            # limit a few stacks would otherwise reach.
            log_group_name=f"/aws/vendedlogs/states/{state_machine_name(stack.stack_name)}",
            retention=retention,
            removal_policy=RemovalPolicy.DESTROY,
        )
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("states.amazonaws.com"),
            description="petal build state machine",
        )
        self._grant_tasks(parse_with_placeholders(asl_text), table)
        self.state_machine = sfn.StateMachine(
            self,
            "StateMachine",
            state_machine_name=state_machine_name(stack.stack_name),
            state_machine_type=sfn.StateMachineType.STANDARD,
            definition_body=sfn.DefinitionBody.from_string(asl_text),
            definition_substitutions=self.substitutions,
            role=self.role,
            logs=sfn.LogOptions(
                destination=self.log_group, level=sfn.LogLevel.ALL, include_execution_data=True
            ),
            tracing_enabled=True,
        )
        acknowledge(
            self.role,
            "AwsSolutions-IAM5[Resource::*]",
            "Required by AWS for execution logging (logs:CreateLogDelivery and the other "
            "vended-log-delivery actions) and X-Ray tracing (xray:PutTraceSegments, "
            "GetSamplingRules...), none of which support resource-level permissions; "
            "Describe-style SDK calls in the definition are '*' by AWS's design too.",
        )

    def _grant_tasks(self, definition: Mapping[str, Any], table: dynamodb.ITable) -> None:
        functions: set[str] = set()
        table_actions: set[str] = set()
        unscoped_actions: set[str] = set()
        for name, state in iter_tasks(definition):
            permission = task_permission(name, state)
            if permission.target == "table":
                table_actions.update(permission.actions)
            elif permission.target == "*":
                unscoped_actions.update(permission.actions)
            else:
                functions.add(permission.target)
        if functions:
            self.role.add_to_policy(
                iam.PolicyStatement(
                    actions=["lambda:InvokeFunction"],
                    # Unqualified ARNs: the definition invokes $LATEST, never a version.
                    resources=[self.substitution_value(key) for key in sorted(functions)],
                )
            )
        if table_actions:
            self.role.add_to_policy(
                iam.PolicyStatement(actions=sorted(table_actions), resources=[table.table_arn])
            )
        if unscoped_actions:
            self.role.add_to_policy(
                iam.PolicyStatement(actions=sorted(unscoped_actions), resources=["*"])
            )

    def substitution_value(self, key: str) -> str:
        if key not in self.substitutions:
            raise ValueError(f"{STATE_MACHINE_FILE} invokes ${{{key}}}, which it never defines")
        return self.substitutions[key]


def state_machine_settings(
    settings: PetalSettings, lambda_timeout_seconds: int
) -> StateMachineSettings:
    """The definition's numbers, from the stack's settings and the functions' timeout."""
    return StateMachineSettings(
        ready_wait_seconds=settings.ready_wait_seconds,
        ready_max_attempts=settings.ready_max_attempts,
        snapshot_wait_seconds=settings.snapshot_wait_seconds,
        snapshot_max_attempts=settings.snapshot_max_attempts,
        bootstrap_heartbeat_seconds=settings.bootstrap_heartbeat_seconds,
        # A task outlives its function by a minute: Lambda's own timeout fires first
        # and reports why, instead of a bare States.Timeout.
        lambda_task_timeout_seconds=lambda_timeout_seconds + 60,
    )
