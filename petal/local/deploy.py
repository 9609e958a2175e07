"""What the CDK stack creates, created on moto: the emulated petal deployment.

The builder's role, instance profile and network, fake official ParallelCluster AMIs,
the builds table, the seed bucket, the bootstrap document, the build log group, the
Lambda functions (placeholders: petal/local/handlers.py runs the real ones) and the
build state machine from the real statemachines/build.asl.json with the same
substitutions the stack makes.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from petal.build.bootstrap_document import render_bootstrap_document
from petal.build.build_cache import (
    ENV_BUILD_CACHE_URL,
    ENV_SIGNING_KEY_SECRET,
    NO_KEY_YET,
    cache_url,
)
from petal.build.definition import StateMachineSettings, definition_substitutions, render_definition
from petal.build.table import table_definition
from petal.deployment_contract import (
    CALLBACK_FUNCTION,
    ENV_BUILD_LOG_GROUP,
    ENV_BUILD_TIMEOUT_MINUTES,
    ENV_DOCUMENT,
    ENV_INSTANCE_PROFILE,
    ENV_SECURITY_GROUP,
    ENV_SEED_BUCKET,
    ENV_STATE_MACHINE,
    ENV_SUBNETS,
    ENV_TABLE,
    ENV_TRUSTED_ACCOUNTS,
    INTAKE_FUNCTION,
    JANITOR_FUNCTION,
    LOG_HEARTBEAT_FUNCTION,
    OUTPUT_BUILD_LOG_GROUP,
    OUTPUT_DEAD_LETTER_ALARMS,
    OUTPUT_DEAD_LETTER_FUNCTIONS,
    OUTPUT_DEAD_LETTER_QUEUES,
    OUTPUT_DOCUMENT,
    OUTPUT_SEED_BUCKET,
    OUTPUT_STATE_MACHINE_ARN,
    OUTPUT_TABLE,
    STATE_MACHINE_FILE,
    STEP_FUNCTIONS,
)
from petal.local.moto_fixes import BACKEND_LOCK
from petal.platforms import ARCHITECTURES, OPERATING_SYSTEMS, official_ami_name_pattern

ACCOUNT_ID: Final = "123456789012"
# The functions with a dead-letter queue (stacks/dead_letters.py DEAD_LETTER_FUNCTIONS).
DEAD_LETTER_FUNCTIONS: Final = tuple(OUTPUT_DEAD_LETTER_QUEUES)
# Owner of the official ParallelCluster AMIs; DescribeImages(Owners=["amazon"]) matches
# its alias.
AMAZON_AMI_OWNER: Final = "247102896272"
STACK_NAME: Final = "petal-local"
HANDLER_MODULES: Final = (
    *STEP_FUNCTIONS.values(),
    CALLBACK_FUNCTION,
    LOG_HEARTBEAT_FUNCTION,
    INTAKE_FUNCTION,
    JANITOR_FUNCTION,
)
_EC2_TRUST: Final = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": "ec2.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    ],
}

Client = Callable[[str], Any]


@dataclass(frozen=True)
class LocalDeployment:
    """The names and ids of the emulated deployment (what the stack's outputs give)."""

    region: str
    table_name: str
    seed_bucket: str
    document_name: str
    build_log_group: str
    state_machine_arn: str
    instance_profile_arn: str
    security_group_id: str
    subnet_ids: tuple[str, ...]
    function_arns: dict[str, str]
    image_ids: dict[str, str]  # "<version>/<os>/<arch>" -> ami id
    # Handler module -> URL of its dead-letter queue (stacks/dead_letters.py).
    dead_letter_queues: dict[str, str] = field(default_factory=dict)
    # petal:buildCache in local mode: the seed bucket's build-cache/ prefix and the
    # secret of its (never created: the builder is simulated) signing key.
    build_cache_url: str = ""
    signing_key_secret: str = ""

    def outputs(self) -> dict[str, str]:
        """The stack's CloudFormation outputs, as `petal` discovers them."""
        return {
            OUTPUT_STATE_MACHINE_ARN: self.state_machine_arn,
            OUTPUT_SEED_BUCKET: self.seed_bucket,
            OUTPUT_TABLE: self.table_name,
            OUTPUT_BUILD_LOG_GROUP: self.build_log_group,
            OUTPUT_DOCUMENT: self.document_name,
            **{OUTPUT_DEAD_LETTER_QUEUES[m]: url for m, url in self.dead_letter_queues.items()},
            **{OUTPUT_DEAD_LETTER_ALARMS[m]: dead_letter_alarm(m) for m in self.dead_letter_queues},
            **{
                OUTPUT_DEAD_LETTER_FUNCTIONS[m]: self.function_arns[m].rsplit(":", 1)[-1]
                for m in self.dead_letter_queues
            },
        }

    def environment(self, build_timeout_minutes: int) -> dict[str, str]:
        return {
            ENV_TABLE: self.table_name,
            ENV_SEED_BUCKET: self.seed_bucket,
            ENV_DOCUMENT: self.document_name,
            ENV_INSTANCE_PROFILE: self.instance_profile_arn,
            ENV_SECURITY_GROUP: self.security_group_id,
            ENV_SUBNETS: ",".join(self.subnet_ids),
            ENV_BUILD_LOG_GROUP: self.build_log_group,
            ENV_STATE_MACHINE: self.state_machine_arn,
            ENV_TRUSTED_ACCOUNTS: "",
            ENV_BUILD_TIMEOUT_MINUTES: str(build_timeout_minutes),
            ENV_BUILD_CACHE_URL: self.build_cache_url,
            ENV_SIGNING_KEY_SECRET: self.signing_key_secret,
        }


def deploy(
    client: Client,
    *,
    region: str,
    repo_root: Path,
    settings: StateMachineSettings,
    pcluster_versions: Sequence[str],
) -> LocalDeployment:
    """Create the stack's resources with `client(service)`, a client of the emulator."""
    instance_profile_arn, service_role = _create_roles(client("iam"))
    subnet_ids, security_group_id = _create_network(client("ec2"), region)
    image_ids = _register_official_images(region, pcluster_versions)
    table_name = _create_table(client("dynamodb"))
    seed_bucket = _create_seed_bucket(client("s3"), region)
    signing_key_secret = client("secretsmanager").create_secret(
        Name=f"{STACK_NAME}-build-cache-key", SecretString=NO_KEY_YET
    )["ARN"]
    document_name = _create_document(client("ssm"), repo_root)
    build_log_group = _create_log_group(client("logs"))
    function_arns = _create_functions(client("lambda"), service_role)
    dead_letter_queues = _create_dead_letter_queues(client("sqs"), client("cloudwatch"))
    state_machine_arn = _create_state_machine(
        client("stepfunctions"), repo_root, settings, function_arns, service_role
    )
    return LocalDeployment(
        region=region,
        table_name=table_name,
        seed_bucket=seed_bucket,
        document_name=document_name,
        build_log_group=build_log_group,
        state_machine_arn=state_machine_arn,
        instance_profile_arn=instance_profile_arn,
        security_group_id=security_group_id,
        subnet_ids=subnet_ids,
        function_arns=function_arns,
        image_ids=image_ids,
        dead_letter_queues=dead_letter_queues,
        build_cache_url=cache_url(seed_bucket),
        signing_key_secret=signing_key_secret,
    )


def _create_roles(iam: Any) -> tuple[str, str]:
    """The builder's instance profile and the role the functions and state machine use."""
    trust = json.dumps(_EC2_TRUST)
    iam.create_role(RoleName=f"{STACK_NAME}-builder", AssumeRolePolicyDocument=trust)
    profile = iam.create_instance_profile(InstanceProfileName=f"{STACK_NAME}-builder")
    iam.add_role_to_instance_profile(
        InstanceProfileName=f"{STACK_NAME}-builder", RoleName=f"{STACK_NAME}-builder"
    )
    service_role = iam.create_role(
        RoleName=f"{STACK_NAME}-service", AssumeRolePolicyDocument=trust
    )["Role"]["Arn"]
    return str(profile["InstanceProfile"]["Arn"]), str(service_role)


def _create_network(ec2: Any, region: str) -> tuple[tuple[str, ...], str]:
    """Two subnets in two zones (so launch can move on to the next) and the builder's SG."""
    vpc = ec2.create_vpc(CidrBlock="10.42.0.0/16")["Vpc"]["VpcId"]
    subnets = tuple(
        str(
            ec2.create_subnet(
                VpcId=vpc, CidrBlock=f"10.42.{index}.0/24", AvailabilityZone=f"{region}{az}"
            )["Subnet"]["SubnetId"]
        )
        for index, az in enumerate(("a", "b"))
    )
    security_group = ec2.create_security_group(
        GroupName=f"{STACK_NAME}-builder", Description="petal builder", VpcId=vpc
    )["GroupId"]
    return subnets, str(security_group)


def _register_official_images(region: str, pcluster_versions: Sequence[str]) -> dict[str, str]:
    """Fake official ParallelCluster AMIs, owned by "amazon" as DescribeImages sees it.

    moto registers images only for the caller's account through its API, so they
    go straight into its EC2 backend with the owner alias ParallelCluster's AMIs have.
    Only for the OSes AWS publishes them for: none for rocky8/rocky9, whose builds need
    a user-built image (build.image), as in AWS.
    """
    from moto.ec2.models import ec2_backends
    from moto.ec2.models.amis import Ami
    from moto.ec2.utils import random_ami_id

    backend = ec2_backends[ACCOUNT_ID][region]
    created = datetime(2025, 1, 1, tzinfo=UTC)
    ids: dict[str, str] = {}
    with BACKEND_LOCK:
        for version in pcluster_versions:
            for os_name, os_ in OPERATING_SYSTEMS.items():
                if not os_.official_ami:
                    continue
                for arch in ARCHITECTURES:
                    ami_id = random_ami_id()
                    prefix = official_ami_name_pattern(version, os_name, arch).rstrip("*")
                    backend.amis[ami_id] = Ami(
                        backend,
                        ami_id,
                        name=f"{prefix} 2025-01-01T00-00-00.000Z",
                        description=f"AWS ParallelCluster AMI {version} (petal local mode)",
                        owner_id=AMAZON_AMI_OWNER,
                        owner_alias="amazon",
                        public=True,
                        architecture=arch,
                        virtualization_type="hvm",
                        root_device_type="ebs",
                        root_device_name="/dev/xvda",
                        creation_date=created,
                        region_name=f"{region}a",
                    )
                    ids[f"{version}/{os_name}/{arch}"] = ami_id
    return ids


def _create_table(dynamodb: Any) -> str:
    table_name = f"{STACK_NAME}-builds"
    dynamodb.create_table(**table_definition(table_name))
    dynamodb.update_time_to_live(
        TableName=table_name,
        TimeToLiveSpecification={"Enabled": True, "AttributeName": "ttl"},
    )
    return table_name


def _create_seed_bucket(s3: Any, region: str) -> str:
    bucket = f"{STACK_NAME}-seeds-{ACCOUNT_ID}"
    # S3 refuses a LocationConstraint of us-east-1, its default.
    if region == "us-east-1":
        s3.create_bucket(Bucket=bucket)
    else:
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": region})
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    return bucket


def _create_document(ssm: Any, repo_root: Path) -> str:
    document_name = f"{STACK_NAME}-bootstrap"
    ssm.create_document(
        Name=document_name,
        Content=json.dumps(render_bootstrap_document(repo_root)),
        DocumentType="Command",
        DocumentFormat="JSON",
    )
    return document_name


def _create_log_group(logs: Any) -> str:
    log_group = f"/{STACK_NAME}/builds"
    logs.create_log_group(logGroupName=log_group)
    return log_group


def _create_functions(lambda_client: Any, service_role: str) -> dict[str, str]:
    """One function per handler module; returns their ARNs by module."""
    return {
        module: str(
            lambda_client.create_function(
                FunctionName=f"{STACK_NAME}-{module}",
                Runtime="python3.12",
                Role=service_role,
                Handler=f"lambdas.{module}.handler",
                Code={"ZipFile": _placeholder_zip()},
            )["FunctionArn"]
        )
        for module in HANDLER_MODULES
    }


def dead_letter_alarm(module: str) -> str:
    """The name of the alarm on `module`'s dead-letter queue, as the stack names it."""
    return f"{STACK_NAME}-{module}-dead-letters"


def _create_dead_letter_queues(sqs: Any, cloudwatch: Any) -> dict[str, str]:
    """A dead-letter queue per asynchronously invoked function, encrypted (SSE-SQS) and
    with an alarm on its depth, as stacks/dead_letters.py creates them; returns their
    URLs by handler module. petal/local/event_bus.py sends what a handler failed on."""
    urls: dict[str, str] = {}
    for module in DEAD_LETTER_FUNCTIONS:
        url = str(
            sqs.create_queue(
                QueueName=f"{STACK_NAME}-{module}-dead-letters",
                Attributes={"SqsManagedSseEnabled": "true", "MessageRetentionPeriod": "1209600"},
            )["QueueUrl"]
        )
        name = url.rsplit("/", 1)[-1]
        cloudwatch.put_metric_alarm(
            AlarmName=dead_letter_alarm(module),
            Namespace="AWS/SQS",
            MetricName="ApproximateNumberOfMessagesVisible",
            Dimensions=[{"Name": "QueueName", "Value": name}],
            Statistic="Maximum",
            Period=300,
            EvaluationPeriods=1,
            Threshold=0,
            ComparisonOperator="GreaterThanThreshold",
            TreatMissingData="notBreaching",
        )
        urls[module] = url
    return urls


def _create_state_machine(
    sfn: Any,
    repo_root: Path,
    settings: StateMachineSettings,
    function_arns: dict[str, str],
    service_role: str,
) -> str:
    arns = {key: function_arns[module] for key, module in STEP_FUNCTIONS.items()}
    definition = render_definition(
        (repo_root / STATE_MACHINE_FILE).read_text(encoding="utf-8"),
        definition_substitutions(arns, settings),
    )
    return str(
        sfn.create_state_machine(
            name=f"{STACK_NAME}-build", definition=definition, roleArn=service_role, type="STANDARD"
        )["stateMachineArn"]
    )


def _placeholder_zip() -> bytes:
    """Code for create_function: moto only needs a zip; the real handlers run instead."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("README.txt", "petal local mode runs lambdas/ from the repository")
    return buffer.getvalue()
