"""Every petal Lambda function: one shared code asset, the AWS-managed Powertools
layer, and per function its own role, its own log group and active tracing.

Roles start with nothing but writing their own log group (and, through active
tracing, X-Ray); what each function may do beyond that is granted, and acknowledged
for cdk-nag, in function_permissions.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from petal.aws.session import partition_of
from petal.deployment_contract import (
    CALLBACK_FUNCTION,
    INTAKE_FUNCTION,
    JANITOR_FUNCTION,
    LOG_HEARTBEAT_FUNCTION,
    RESOLVER_FUNCTION,
    STEP_FUNCTIONS,
)
from petal.lambda_bundle import COMPLETE_MARKER, LAMBDA_PYTHON_VERSION, build_bundle
from stacks.nag import acknowledge
from stacks.paths import BUILD_DIR, REPO_ROOT

POWERTOOLS_ACCOUNT = "017000801446"
POWERTOOLS_SERVICE_NAME = "petal"
POWERTOOLS_METRICS_NAMESPACE = "Petal"


@dataclass(frozen=True)
class FunctionSpec:
    description: str
    timeout_minutes: int = 1
    memory_mb: int = 256


# Every handler module under lambdas/, with what it is for.
FUNCTION_SPECS: dict[str, FunctionSpec] = {
    STEP_FUNCTIONS["PrepareFunctionArn"]: FunctionSpec(
        "Build step: read the seed, fingerprint it, take the build lock",
        timeout_minutes=2,
    ),
    STEP_FUNCTIONS["LaunchFunctionArn"]: FunctionSpec(
        "Build step: launch the builder instance and create the software volume"
    ),
    STEP_FUNCTIONS["CheckReadyFunctionArn"]: FunctionSpec(
        "Build step: wait for the builder to be online in SSM and attach the volume"
    ),
    STEP_FUNCTIONS["BootstrapFunctionArn"]: FunctionSpec(
        "Build step: send the bootstrap command and park the task token"
    ),
    STEP_FUNCTIONS["SnapshotFunctionArn"]: FunctionSpec(
        "Build step: detach the software volume and snapshot it"
    ),
    STEP_FUNCTIONS["CheckSnapshotFunctionArn"]: FunctionSpec(
        "Build step: wait for the snapshot, then share it with the trusted accounts"
    ),
    STEP_FUNCTIONS["CleanupFunctionArn"]: FunctionSpec(
        "Build step: terminate the builder, delete the volume, release the lock"
    ),
    CALLBACK_FUNCTION: FunctionSpec(
        "SSM command and EC2 state events -> Step Functions task success/failure"
    ),
    LOG_HEARTBEAT_FUNCTION: FunctionSpec("Build log marker lines -> task heartbeat and progress"),
    INTAKE_FUNCTION: FunctionSpec("Seed uploaded to the seed bucket -> start a build"),
    JANITOR_FUNCTION: FunctionSpec(
        "Scheduled sweep of builds that outlived the build timeout",
        timeout_minutes=5,
    ),
    RESOLVER_FUNCTION: FunctionSpec(
        "Fingerprint -> snapshot and ParallelCluster SharedStorage settings"
    ),
}


def construct_name(module: str) -> str:
    """`check_ready` -> `CheckReady`: stable construct ids, so logical ids stay put."""
    return "".join(part.capitalize() for part in module.split("_"))


def powertools_layer_arn(partition: str, region: str, version: int) -> str:
    # POWERTOOLS_ACCOUNT publishes the layer in the commercial partition only; the stack
    # refuses other partitions (petal_stack.check_partition), so this ARN never names a
    # layer that does not exist.
    python = "python" + LAMBDA_PYTHON_VERSION.replace(".", "")
    return (
        f"arn:{partition}:lambda:{region}:{POWERTOOLS_ACCOUNT}:layer:"
        f"AWSLambdaPowertoolsPythonV3-{python}-x86_64:{version}"
    )


class PetalFunctions(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        environment: Mapping[str, str],
        retention: logs.RetentionDays,
        powertools_layer_version: int,
        reserved_concurrency: Mapping[str, int | None],
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        # One asset for all functions: a handler is `lambdas.<module>.handler`.
        bundle = build_bundle(REPO_ROOT, BUILD_DIR)
        code = lambda_.Code.from_asset(str(bundle), exclude=[COMPLETE_MARKER])
        # The region is always concrete (settings fix it), so the partition is a literal
        # too and the template names the layer plainly; the token is the fallback.
        partition = partition_of(stack.region) or stack.partition
        layer = lambda_.LayerVersion.from_layer_version_arn(
            self,
            "Powertools",
            powertools_layer_arn(partition, stack.region, powertools_layer_version),
        )
        runtime = lambda_.Runtime(f"python{LAMBDA_PYTHON_VERSION}", lambda_.RuntimeFamily.PYTHON)
        env = {
            **environment,
            "POWERTOOLS_SERVICE_NAME": POWERTOOLS_SERVICE_NAME,
            "POWERTOOLS_METRICS_NAMESPACE": POWERTOOLS_METRICS_NAMESPACE,
        }
        self.functions: dict[str, lambda_.Function] = {}
        self.roles: dict[str, iam.Role] = {}
        for module, spec in FUNCTION_SPECS.items():
            name = construct_name(module)
            log_group = logs.LogGroup(
                self,
                f"{name}Logs",
                retention=retention,
                removal_policy=RemovalPolicy.DESTROY,
            )
            # A role per function, so each one's permissions are exactly its own.
            role = iam.Role(
                self,
                f"{name}Role",
                assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
                description=f"petal {module} function",
            )
            role.add_to_policy(
                iam.PolicyStatement(
                    actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                    resources=[log_group.log_group_arn],
                )
            )
            function = lambda_.Function(
                self,
                name,
                description=spec.description,
                runtime=runtime,
                architecture=lambda_.Architecture.X86_64,
                handler=f"lambdas.{module}.handler",
                code=code,
                layers=[layer],
                role=role,
                log_group=log_group,
                tracing=lambda_.Tracing.ACTIVE,
                timeout=Duration.minutes(spec.timeout_minutes),
                memory_size=spec.memory_mb,
                environment=env,
                reserved_concurrent_executions=reserved_concurrency.get(module),
            )
            acknowledge(
                function,
                "AwsSolutions-L1",
                f"Pinned to python{LAMBDA_PYTHON_VERSION}: the AWS-managed Powertools layer "
                "and the compiled wheels in the code asset are built for this exact "
                "version; LAMBDA_PYTHON_VERSION in petal/lambda_bundle.py moves all three "
                "together.",
            )
            self.functions[module] = function
            self.roles[module] = role

    @property
    def step_timeout_seconds(self) -> int:
        """The longest timeout of a build state machine step function."""
        return 60 * max(FUNCTION_SPECS[m].timeout_minutes for m in STEP_FUNCTIONS.values())

    def __getitem__(self, module: str) -> lambda_.Function:
        return self.functions[module]
