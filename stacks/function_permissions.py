"""What each petal function may do, one role per function, nothing shared.

EC2 writes are scoped by tag wherever EC2 supports it: creating calls must tag what
they create (`aws:RequestTag/petal:managed`), calls on existing resources only reach
petal's own (`ec2:ResourceTag/petal:managed`). The only `*` resources are actions
for which AWS offers no resource-level permissions (Describe*, ssm:GetCommandInvocation,
ssm:DescribeInstanceInformation, X-Ray); tests/infra checks that claim against the
IAM service reference data shipped with cfn-lint.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from aws_cdk import ArnFormat
from aws_cdk import aws_iam as iam

from petal.deployment_contract import (
    CALLBACK_FUNCTION,
    ENV_ALLOWED_INSTANCE_TYPES,
    ENV_BUILDER_IMAGE_OWNERS,
    ENV_MAX_BUILD_HOURS,
    ENV_MAX_VOLUME_GB,
    ENV_MAX_VOLUME_IOPS,
    INTAKE_FUNCTION,
    JANITOR_FUNCTION,
    LOG_HEARTBEAT_FUNCTION,
    MANAGED_VALUE,
    RESOLVER_FUNCTION,
    ROLE_BUILDER,
    STEP_FUNCTIONS,
    TAG_MANAGED,
    TAG_ROLE,
)
from stacks.bootstrap_document import BootstrapDocument
from stacks.build_logs import BuildLogs
from stacks.build_state_machine import ArnScope, execution_arns, state_machine_arn
from stacks.builder_identity import BuilderIdentity
from stacks.builder_network import BuilderNetwork
from stacks.builds_table import BuildsTable
from stacks.functions import PetalFunctions
from stacks.nag import acknowledge, acknowledge_wildcard_resource
from stacks.seed_bucket import SeedBucket
from stacks.settings import PetalSettings

PREPARE = STEP_FUNCTIONS["PrepareFunctionArn"]
LAUNCH = STEP_FUNCTIONS["LaunchFunctionArn"]
CHECK_READY = STEP_FUNCTIONS["CheckReadyFunctionArn"]
BOOTSTRAP = STEP_FUNCTIONS["BootstrapFunctionArn"]
SNAPSHOT = STEP_FUNCTIONS["SnapshotFunctionArn"]
CHECK_SNAPSHOT = STEP_FUNCTIONS["CheckSnapshotFunctionArn"]
CLEANUP = STEP_FUNCTIONS["CleanupFunctionArn"]

# ParallelCluster's official AMIs, which the builder boots, are owned by "amazon".
AMI_OWNER = "amazon"


class PermissionSources(ArnScope, Protocol):
    """The parts of PetalStack the policies are written against. A protocol, not
    PetalStack itself: petal_stack imports this module to grant the permissions."""

    settings: PetalSettings
    seeds: SeedBucket
    builds: BuildsTable
    build_logs: BuildLogs
    builder_identity: BuilderIdentity
    builder_network: BuilderNetwork
    document: BootstrapDocument
    functions: PetalFunctions

    @property
    def region(self) -> str: ...

    @property
    def account(self) -> str: ...


def request_tagged() -> dict[str, Any]:
    """Condition: the request tags what it creates as petal's."""
    return {"StringEquals": {f"aws:RequestTag/{TAG_MANAGED}": MANAGED_VALUE}}


def resource_tagged() -> dict[str, Any]:
    """Condition: the existing resource is tagged as petal's."""
    return {"StringEquals": {f"ec2:ResourceTag/{TAG_MANAGED}": MANAGED_VALUE}}


def builder_tagged() -> dict[str, Any]:
    """Condition for SSM: the target instance is a petal builder."""
    return {
        "StringEquals": {
            f"ssm:resourceTag/{TAG_MANAGED}": MANAGED_VALUE,
            f"ssm:resourceTag/{TAG_ROLE}": ROLE_BUILDER,
        }
    }


def statement(
    actions: Iterable[str], resources: Sequence[str], conditions: Mapping[str, Any] | None = None
) -> iam.PolicyStatement:
    return iam.PolicyStatement(
        actions=sorted(actions), resources=list(resources), conditions=dict(conditions or {})
    )


@dataclass
class Arns:
    """ARNs the policies are written against, for one stack."""

    stack: PermissionSources
    wildcard_reasons: dict[str, str] = field(default_factory=dict)

    def ec2(self, resource: str, name: str = "*", *, account: bool = True) -> str:
        arn = self.stack.format_arn(
            service="ec2",
            resource=resource,
            resource_name=name,
            # AMIs and snapshots are regional resources without an account in the ARN.
            account="" if not account else None,
        )
        if "*" in name:
            self.wildcard_reasons[arn] = (
                f"Any EC2 {resource}, but every statement naming it has a condition: the "
                "petal:managed tag in the request (create), on the resource (existing "
                "ones), or tagging only as part of such a create (ec2:CreateAction). "
                "Their ids do not exist before the build creates them."
            )
        return arn

    @property
    def instances(self) -> str:
        return self.ec2("instance")

    @property
    def volumes(self) -> str:
        return self.ec2("volume")

    @property
    def snapshots(self) -> str:
        return self.ec2("snapshot", account=False)

    @property
    def images(self) -> str:
        arn = self.ec2("image", account=False)
        self.wildcard_reasons[arn] = (
            "The builder boots the newest official ParallelCluster AMI, whose id changes "
            "with every release, or a seed's own pcluster-built AMI (build.image); the "
            "statement is limited to AMIs owned by 'amazon', this account and the accounts "
            "of petal:builderImageOwners."
        )
        return arn

    @property
    def network_interfaces(self) -> str:
        arn = self.ec2("network-interface")
        self.wildcard_reasons[arn] = (
            "RunInstances creates the builder's network interface, whose id cannot be "
            "known in advance; the statement limits it to the configured builder subnets."
        )
        return arn

    def subnets(self) -> list[str]:
        return [self.ec2("subnet", s) for s in self.stack.settings.subnet_ids]

    def security_group(self) -> str:
        sg = self.stack.builder_network.security_group.security_group_id
        return self.ec2("security-group", sg)

    def document(self) -> str:
        return self.stack.format_arn(
            service="ssm", resource="document", resource_name=self.stack.document.name
        )

    def state_machine(self) -> str:
        return state_machine_arn(self.stack)

    def executions(self) -> str:
        arn = execution_arns(self.stack)
        self.wildcard_reasons[arn] = (
            "Executions of petal's own build state machine only; execution names are "
            "chosen per build."
        )
        return arn


def _table(stack: PermissionSources) -> list[str]:
    return [stack.builds.table.table_arn, *stack.builds.index_arns()]


def function_statements(
    stack: PermissionSources, arns: Arns
) -> dict[str, list[iam.PolicyStatement]]:
    """Every function's statements beyond writing its own logs and traces.

    Each list is what the handler's code calls (tests/infra/test_iam.py reads the
    handlers and fails on a call that is not allowed here, or a permission never used).
    """
    table = _table(stack)
    seeds = stack.seeds.seed_object_arns()
    for arn in seeds:
        arns.wildcard_reasons[arn] = (
            "Seed objects only (seeds/ prefix of petal's seed bucket): their keys are "
            "chosen by whoever uploads a seed."
        )
    build_log = stack.build_logs.log_group
    build_log_arns = [
        build_log.log_group_arn,
        stack.format_arn(
            service="logs",
            resource="log-group",
            resource_name=build_log.log_group_name,
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        ),
    ]
    builder_role = stack.builder_identity.role.role_arn
    read_seeds = statement(["s3:GetObject", "s3:GetObjectVersion"], seeds)

    statements: dict[str, list[iam.PolicyStatement]] = {
        PREPARE: [
            read_seeds,
            # Reuse check (snapshots of this fingerprint), the official AMI lookup, and
            # which key EBS encrypts with by default (one the functions may not use
            # would fail the launch).
            statement(
                ["ec2:DescribeSnapshots", "ec2:DescribeImages", "ec2:GetEbsDefaultKmsKeyId"],
                ["*"],
            ),
            statement(["dynamodb:GetItem", "dynamodb:PutItem"], table),
        ],
        LAUNCH: [
            # RunInstances authorises every resource it touches separately: what it
            # creates must carry the petal tag, and the instance must be of a type
            # petal:allowedInstanceTypes allows (ec2:InstanceType exists on the instance
            # only); what it uses must be the configured subnets, the builder security
            # group and an AMI of a trusted owner.
            statement(
                ["ec2:RunInstances"],
                [arns.instances],
                {**request_tagged(), **allowed_instance_types(stack)},
            ),
            statement(["ec2:RunInstances"], [arns.volumes], request_tagged()),
            statement(["ec2:RunInstances"], [*arns.subnets(), arns.security_group()]),
            statement(
                ["ec2:RunInstances"],
                [arns.network_interfaces],
                {"ArnEquals": {"ec2:Subnet": arns.subnets()}},
            ),
            statement(
                ["ec2:RunInstances"],
                [arns.images],
                {"StringEquals": {"ec2:Owner": image_owners(stack)}},
            ),
            statement(["ec2:CreateVolume"], [arns.volumes], request_tagged()),
            # A build on a parent (--from) creates its volume from a petal snapshot.
            statement(["ec2:CreateVolume"], [arns.snapshots], resource_tagged()),
            # Tags may only be written as part of creating petal's resources.
            statement(
                ["ec2:CreateTags"],
                [arns.instances, arns.volumes],
                {"StringEquals": {"ec2:CreateAction": ["RunInstances", "CreateVolume"]}},
            ),
            statement(
                ["iam:PassRole"],
                [builder_role],
                {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}},
            ),
            statement(["dynamodb:UpdateItem"], table),
        ],
        CHECK_READY: [
            statement(["ec2:AttachVolume"], [arns.instances, arns.volumes], resource_tagged()),
            statement(
                [
                    "ec2:DescribeInstances",
                    "ec2:DescribeVolumes",
                    "ssm:DescribeInstanceInformation",
                ],
                ["*"],
            ),
        ],
        BOOTSTRAP: [
            # SendCommand is authorised on the document and on each target instance:
            # petal's document only, on instances tagged as petal builders only.
            statement(["ssm:SendCommand"], [arns.document()]),
            statement(["ssm:SendCommand"], [arns.instances], builder_tagged()),
            statement(["ssm:GetCommandInvocation"], ["*"]),
            statement(["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"], table),
        ],
        SNAPSHOT: [
            statement(["ec2:DetachVolume"], [arns.instances, arns.volumes], resource_tagged()),
            statement(["ec2:CreateSnapshot"], [arns.volumes], resource_tagged()),
            statement(["ec2:CreateSnapshot"], [arns.snapshots], request_tagged()),
            statement(
                ["ec2:CreateTags"],
                [arns.snapshots],
                {"StringEquals": {"ec2:CreateAction": "CreateSnapshot"}},
            ),
            statement(["ec2:DescribeSnapshots"], ["*"]),
            statement(["dynamodb:UpdateItem"], table),
        ],
        CHECK_SNAPSHOT: _check_snapshot_statements(stack, arns, table),
        CLEANUP: [
            statement(["ec2:TerminateInstances"], [arns.instances], resource_tagged()),
            statement(["ec2:DetachVolume"], [arns.instances, arns.volumes], resource_tagged()),
            statement(["ec2:DeleteVolume"], [arns.volumes], resource_tagged()),
            statement(["ec2:DescribeInstances", "ec2:DescribeVolumes"], ["*"]),
            statement(
                [
                    "dynamodb:GetItem",
                    "dynamodb:PutItem",
                    "dynamodb:UpdateItem",
                    "dynamodb:DeleteItem",
                ],
                table,
            ),
        ],
        CALLBACK_FUNCTION: [
            # SendTask* is evaluated against the state machine that issued the token.
            statement(["states:SendTaskSuccess", "states:SendTaskFailure"], [arns.state_machine()]),
            # The failed command's last lines go into the task failure's cause.
            statement(["logs:DescribeLogStreams", "logs:GetLogEvents"], build_log_arns),
            statement(["ec2:DescribeInstances"], ["*"]),
            statement(["dynamodb:GetItem", "dynamodb:UpdateItem"], table),
        ],
        LOG_HEARTBEAT_FUNCTION: [
            statement(["states:SendTaskHeartbeat"], [arns.state_machine()]),
            statement(["dynamodb:GetItem", "dynamodb:UpdateItem"], table),
        ],
        INTAKE_FUNCTION: [
            read_seeds,
            statement(["states:StartExecution"], [arns.state_machine()]),
            statement(["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"], table),
        ],
        JANITOR_FUNCTION: [
            # The reconciler: a lost callback event's work, done from AWS's own answers
            # (the command's status, the builder's state), so the same task outcome and
            # the same log tail in its cause as the callback's.
            statement(["ssm:GetCommandInvocation"], ["*"]),
            statement(["states:SendTaskSuccess", "states:SendTaskFailure"], [arns.state_machine()]),
            # Executions that ended before anything recorded them get their record
            # (a conditional PutItem: it never overwrites one).
            statement(["states:ListExecutions"], [arns.state_machine()]),
            statement(["logs:DescribeLogStreams", "logs:GetLogEvents"], build_log_arns),
            statement(["ec2:TerminateInstances"], [arns.instances], resource_tagged()),
            statement(["ec2:DetachVolume"], [arns.instances, arns.volumes], resource_tagged()),
            statement(["ec2:DeleteVolume"], [arns.volumes], resource_tagged()),
            statement(["ec2:DescribeInstances", "ec2:DescribeVolumes"], ["*"]),
            statement(
                ["states:DescribeExecution", "states:GetExecutionHistory"], [arns.executions()]
            ),
            statement(
                [
                    "dynamodb:GetItem",
                    "dynamodb:PutItem",
                    "dynamodb:UpdateItem",
                    "dynamodb:DeleteItem",
                    "dynamodb:Query",
                    "dynamodb:Scan",
                ],
                table,
            ),
        ],
        # Snapshots of any region the request names, so Resource "*" covers them all.
        RESOLVER_FUNCTION: [statement(["ec2:DescribeSnapshots"], ["*"])],
    }
    keys = list(stack.settings.volume_kms_key_arns)
    default_key = stack.settings.ebs_default_kms_key_arn
    if default_key and default_key not in keys:
        keys.append(default_key)
    if keys:
        # A volume encrypted with a customer managed key: creating it (the software
        # volume, or the builder's root volume, encrypted with the account's default
        # key) needs a data key and a grant for EBS, attaching it a grant for the
        # instance. Only through EC2 in this region, and only grants for AWS resources.
        via_ec2 = {
            "StringEquals": {"kms:ViaService": f"ec2.{stack.region}.amazonaws.com"},
        }
        for module in (LAUNCH, CHECK_READY):
            statements[module].append(
                statement(
                    ["kms:DescribeKey", "kms:GenerateDataKeyWithoutPlaintext", "kms:Decrypt"],
                    keys,
                    via_ec2,
                )
            )
            statements[module].append(
                statement(
                    ["kms:CreateGrant"],
                    keys,
                    {**via_ec2, "Bool": {"kms:GrantIsForAWSResource": "true"}},
                )
            )
    return statements


def _check_snapshot_statements(
    stack: PermissionSources, arns: Arns, table: list[str]
) -> list[iam.PolicyStatement]:
    statements = [
        statement(["ec2:DescribeSnapshots"], ["*"]),
        statement(["dynamodb:UpdateItem"], table),
    ]
    accounts = list(stack.settings.trusted_accounts)
    if accounts:
        # Sharing only with the configured accounts, never with a group ("all" =
        # public): ec2:Add/userId must be a subset of the trusted list, and a request
        # that adds a group has ec2:Add/group set and so fails the Null check.
        statements.append(
            statement(
                ["ec2:ModifySnapshotAttribute"],
                [arns.snapshots],
                {
                    **resource_tagged(),
                    "ForAllValues:StringEquals": {"ec2:Add/userId": accounts},
                    "Null": {"ec2:Add/group": "true"},
                },
            )
        )
    return statements


STAR_REASON = (
    "Resource '*' only for actions AWS offers without resource-level permissions: "
    "xray:PutTraceSegments/PutTelemetryRecords (active tracing){extra}."
)


def image_owners(stack: PermissionSources) -> list[str]:
    """Whose AMIs the builder may boot: ParallelCluster's official ones (amazon), and
    user-built ones (rocky8/rocky9 have no official AMI) of this account or of
    petal:builderImageOwners."""
    return [AMI_OWNER, stack.account, *stack.settings.builder_image_owners]


def allowed_instance_types(stack: PermissionSources) -> dict[str, Any]:
    """Condition: the builder is of a type petal:allowedInstanceTypes allows. Prepare
    matches the same patterns the same way (petal.build.config.CostLimits)."""
    return {"StringLike": {"ec2:InstanceType": list(stack.settings.allowed_instance_types)}}


def grant_function_permissions(stack: PermissionSources) -> None:
    # Prepare refuses an image of any other owner up front, naming the setting, rather
    # than leaving Launch to fail on this policy; both read the one list.
    for function in stack.functions.functions.values():
        function.add_environment(
            ENV_BUILDER_IMAGE_OWNERS, ",".join(stack.settings.builder_image_owners)
        )
    # The cost guard rails Prepare holds a build to, from the settings the launch role's
    # instance type condition is written from. Prepare alone reads them.
    stack.functions.functions[PREPARE].add_environment(
        ENV_ALLOWED_INSTANCE_TYPES, ",".join(stack.settings.allowed_instance_types)
    )
    for name, value in (
        (ENV_MAX_VOLUME_GB, stack.settings.max_volume_gb),
        (ENV_MAX_VOLUME_IOPS, stack.settings.max_volume_iops),
        (ENV_MAX_BUILD_HOURS, stack.settings.max_build_hours),
    ):
        stack.functions.functions[PREPARE].add_environment(name, str(value))
    arns = Arns(stack)
    for module, statements in function_statements(stack, arns).items():
        role = stack.functions.roles[module]
        star_actions: set[str] = set()
        wildcard_arns: set[str] = set()
        for st in statements:
            role.add_to_policy(st)
            resources = st.resources
            if "*" in resources:
                star_actions.update(st.actions)
            wildcard_arns.update(r for r in resources if r != "*" and r in arns.wildcard_reasons)
        extra = f", {', '.join(sorted(star_actions))}" if star_actions else ""
        acknowledge(role, "AwsSolutions-IAM5[Resource::*]", STAR_REASON.format(extra=extra))
        for arn in sorted(wildcard_arns):
            acknowledge_wildcard_resource(role, arn, arns.wildcard_reasons[arn])
