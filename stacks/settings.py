"""Deployment settings, read from CDK context (`cdk.json`, or `-c key=value`).

Every key, its default and its meaning is listed in DEFAULTS and documented in
docs/ARCHITECTURE.md. Values given with `-c` arrive as strings, so lists accept a
comma-separated string as well as a JSON list, and numbers accept numeric strings.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Final

from aws_cdk import aws_logs as logs
from constructs import Node

from petal.build.config import (
    DEFAULT_ALLOWED_INSTANCE_TYPES,
    DEFAULT_MAX_BUILD_HOURS,
    DEFAULT_MAX_VOLUME_GB,
    DEFAULT_MAX_VOLUME_IOPS,
)
from petal.validation import JSON, load_schema, problems

PREFIX: Final = "petal:"

# Defaults when a key is neither in cdk.json nor given with -c. `vpcId` and
# `subnetIds` have none: the builder must run in a network the operator chose.
DEFAULTS: Final[dict[str, Any]] = {
    # CloudFormation stack name; also prefixes the state machine and SSM document names.
    "stackName": "petal",
    # Region to deploy to. The account comes from the CLI's credentials
    # (CDK_DEFAULT_ACCOUNT), so the same cdk.json works in any account.
    "region": "us-east-1",
    # VPC of the builder instance, and the subnets to launch it in (tried in order,
    # e.g. one per AZ so an AZ without capacity does not fail the build). The subnets
    # need outbound HTTPS (NAT gateway or public IP) for Spack sources and SSM.
    "vpcId": None,
    "subnetIds": [],
    # The Availability Zone of each subnet in subnetIds, in the same order. Needed only
    # with createVpcEndpoints: an interface endpoint takes at most one subnet per AZ,
    # and subnet ids alone do not tell the AZ without a lookup at synth time.
    "subnetAvailabilityZones": [],
    # Allow plain HTTP (port 80) out of the builder as well as HTTPS. On by default:
    # the Ubuntu images' apt sources are Canonical's EC2 mirrors, which serve HTTP
    # only, and a few Spack sources are HTTP-only. apt checks the archive's signatures
    # and Spack each source's checksum, so HTTP costs no integrity. Off: HTTPS only,
    # and Prepare refuses Ubuntu builds, which could not install their prerequisites.
    "builderHttpEgress": True,
    # Create interface endpoints for SSM, SSM messages, EC2 messages and CloudWatch
    # Logs in the builder subnets (one per AZ), so the agent's traffic stays in the VPC.
    "createVpcEndpoints": False,
    # S3 buckets (names) seeds may use as s3:// Spack mirrors: the builder role may
    # read (GetObject, ListBucket) exactly these; Prepare refuses any other s3:// mirror.
    "mirrorBuckets": [],
    # The shared build cache: "" = none; "create" = a bucket petal creates; else the name
    # of an existing bucket. Builders try it before every other mirror and push what they
    # built to it, signed; they may read and write only its build-cache/ prefix.
    "buildCache": "",
    # Snapshot registry index the resolver and prepare step consult; "" = none.
    "registryUrl": "",
    # AWS account ids snapshots are shared with.
    "trustedAccounts": [],
    # Accounts besides this one whose AMIs a seed's build.image may name (rocky8/rocky9
    # have no official ParallelCluster AMI, so their builds boot a pcluster-built image).
    # The launch function may boot AMIs of amazon, this account and these only.
    "builderImageOwners": [],
    # Customer managed KMS keys (ARNs) seeds may name in volume.kms_key_id. Snapshots
    # encrypted with the AWS managed key cannot be shared, so sharing needs one; the
    # launch and check-ready functions may use these keys through EC2 only.
    "volumeKmsKeyArns": [],
    # The account's default EBS encryption key (GetEbsDefaultKmsKeyId) when it is a
    # customer managed key: the builder's root volume, and the software volume of a
    # seed without volume.kms_key_id, are encrypted with it, so launch and check_ready
    # need to use it (through EC2 only). "" = the AWS managed key alias/aws/ebs, which
    # needs no grant; Prepare refuses a build when the account's default is another key.
    "ebsDefaultKmsKeyArn": "",
    # A build running longer than this is stuck: the janitor cleans it up.
    "buildTimeoutMinutes": 360,
    # Cost guard rails: what a seed may ask of a build. Prepare refuses a build beyond
    # them, naming the seed field and the setting; the launch role may start only
    # instance types matching allowedInstanceTypes (IAM StringLike patterns: `*`, `?`).
    # Default: the c, m and r families up to 16xlarge (no GPU or accelerator types).
    "allowedInstanceTypes": list(DEFAULT_ALLOWED_INSTANCE_TYPES),
    "maxVolumeGb": DEFAULT_MAX_VOLUME_GB,
    "maxVolumeIops": DEFAULT_MAX_VOLUME_IOPS,
    "maxBuildHours": DEFAULT_MAX_BUILD_HOURS,
    # Polling of the build state machine: how long to wait between checks that the
    # builder is up (instance running, SSM agent online) and how many checks before
    # giving up; the same for the snapshot completing.
    "readyWaitSeconds": 20,
    "readyMaxAttempts": 45,
    "snapshotWaitSeconds": 30,
    "snapshotMaxAttempts": 50,
    # The bootstrap task fails if no heartbeat (PETAL- marker line in the build log)
    # arrives for this long: a hung or vanished builder is noticed within it.
    "bootstrapHeartbeatSeconds": 900,
    # How often the janitor sweeps for orphaned instances, volumes and locks.
    "janitorRateMinutes": 60,
    # Retention of every log group the stack creates (a CloudWatch Logs retention value).
    "logRetentionDays": 30,
    # Version of the AWS-managed Powertools for AWS Lambda (Python) v3 layer.
    "powertoolsLayerVersion": 27,
    # Reserved concurrency; null leaves the function on the account's shared pool
    # (needed in accounts whose concurrency limit is too low to reserve any).
    "callbackConcurrency": 5,
    "intakeConcurrency": 2,
}

# Settings for which null is a value of its own rather than "use the default".
NULLABLE: Final = frozenset({"callbackConcurrency", "intakeConcurrency"})

# The shape of every setting; petal/schemas/stack_settings.schema.json spells the
# patterns of petal.identifiers and the retention values below.
SCHEMA: Final = "stack_settings.schema.json"
_WORDS: Final = replace(JSON, key="setting")
# The retention values CloudWatch Logs accepts, in days.
RETENTION: Final[dict[int, logs.RetentionDays]] = {
    1: logs.RetentionDays.ONE_DAY,
    3: logs.RetentionDays.THREE_DAYS,
    5: logs.RetentionDays.FIVE_DAYS,
    7: logs.RetentionDays.ONE_WEEK,
    14: logs.RetentionDays.TWO_WEEKS,
    30: logs.RetentionDays.ONE_MONTH,
    60: logs.RetentionDays.TWO_MONTHS,
    90: logs.RetentionDays.THREE_MONTHS,
    120: logs.RetentionDays.FOUR_MONTHS,
    150: logs.RetentionDays.FIVE_MONTHS,
    180: logs.RetentionDays.SIX_MONTHS,
    365: logs.RetentionDays.ONE_YEAR,
    400: logs.RetentionDays.THIRTEEN_MONTHS,
    545: logs.RetentionDays.EIGHTEEN_MONTHS,
    731: logs.RetentionDays.TWO_YEARS,
    1096: logs.RetentionDays.THREE_YEARS,
    1827: logs.RetentionDays.FIVE_YEARS,
    2192: logs.RetentionDays.SIX_YEARS,
    2557: logs.RetentionDays.SEVEN_YEARS,
    2922: logs.RetentionDays.EIGHT_YEARS,
    3288: logs.RetentionDays.NINE_YEARS,
    3653: logs.RetentionDays.TEN_YEARS,
}


class SettingsError(ValueError):
    """A context value is missing or malformed; the message names the key."""


def _from_context(value: Any, schema: Mapping[str, Any]) -> Any:
    """`value` read as the type its setting has: `-c key=value` gives text."""
    declared = schema.get("type", [])
    types = [declared] if isinstance(declared, str) else declared
    if "array" in types and isinstance(value, list | tuple):
        return [item.strip() if isinstance(item, str) else item for item in value]
    if not isinstance(value, str):
        return value
    text = value.strip()
    if "array" in types:
        return [item.strip() for item in text.split(",") if item.strip()]
    if "null" in types and text.lower() in ("", "null", "none"):
        return None
    if "integer" in types and re.fullmatch(r"-?[0-9]+", text):
        return int(text)
    if "boolean" in types and text.lower() in ("true", "false"):
        return text.lower() == "true"
    return value


def _check_zones(v: Mapping[str, Any]) -> None:
    """subnetAvailabilityZones pairs with subnetIds; the endpoints cannot do without it."""
    zones, subnets = v["subnetAvailabilityZones"], v["subnetIds"]
    lookup = (
        f"aws ec2 describe-subnets --subnet-ids {' '.join(subnets)} "
        "--query 'Subnets[].[SubnetId,AvailabilityZone]'"
    )
    if zones and len(zones) != len(subnets):
        raise SettingsError(
            f"{PREFIX}subnetAvailabilityZones lists {len(zones)} zones for "
            f"{len(subnets)} subnets in {PREFIX}subnetIds: give the zone of each subnet, "
            f"in the same order ({lookup})"
        )
    if v["createVpcEndpoints"] and not zones:
        raise SettingsError(
            f"{PREFIX}createVpcEndpoints needs {PREFIX}subnetAvailabilityZones: the "
            f"Availability Zone of each subnet in {PREFIX}subnetIds, in the same order "
            f"(an interface endpoint takes one subnet per zone; {lookup})"
        )


@dataclass(frozen=True)
class PetalSettings:
    stack_name: str
    region: str
    vpc_id: str
    subnet_ids: tuple[str, ...]
    subnet_availability_zones: tuple[str, ...]
    builder_http_egress: bool
    create_vpc_endpoints: bool
    mirror_buckets: tuple[str, ...]
    build_cache: str
    registry_url: str
    trusted_accounts: tuple[str, ...]
    builder_image_owners: tuple[str, ...]
    volume_kms_key_arns: tuple[str, ...]
    ebs_default_kms_key_arn: str
    build_timeout_minutes: int
    allowed_instance_types: tuple[str, ...]
    max_volume_gb: int
    max_volume_iops: int
    max_build_hours: int
    janitor_rate_minutes: int
    ready_wait_seconds: int
    ready_max_attempts: int
    snapshot_wait_seconds: int
    snapshot_max_attempts: int
    bootstrap_heartbeat_seconds: int
    log_retention_days: int
    powertools_layer_version: int
    callback_concurrency: int | None
    intake_concurrency: int | None

    @property
    def log_retention(self) -> logs.RetentionDays:
        return RETENTION[self.log_retention_days]

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> PetalSettings:
        """Settings from `values` (keys without the prefix), DEFAULTS filling gaps."""
        properties = load_schema(SCHEMA)["properties"]
        # null means "none" where that is a choice (no reserved concurrency) and
        # "not set" everywhere else.
        given = {k: x for k, x in values.items() if x is not None or k in NULLABLE}
        v = {k: _from_context(x, properties.get(k, {})) for k, x in {**DEFAULTS, **given}.items()}
        found = problems(v, SCHEMA, vocabulary=_WORDS)
        if found:
            raise SettingsError("; ".join(f"{PREFIX}{problem}" for problem in found))
        if not v["vpcId"] or not v["subnetIds"]:
            raise SettingsError(
                f"set {PREFIX}vpcId and {PREFIX}subnetIds (the builder's network) in "
                f"cdk.json or with -c {PREFIX}vpcId=vpc-... -c {PREFIX}subnetIds=subnet-a,subnet-b"
            )
        _check_zones(v)
        return cls(
            stack_name=v["stackName"],
            region=v["region"],
            vpc_id=v["vpcId"],
            subnet_ids=tuple(v["subnetIds"]),
            subnet_availability_zones=tuple(v["subnetAvailabilityZones"]),
            builder_http_egress=v["builderHttpEgress"],
            create_vpc_endpoints=v["createVpcEndpoints"],
            mirror_buckets=tuple(dict.fromkeys(v["mirrorBuckets"])),
            build_cache=v["buildCache"],
            registry_url=v["registryUrl"],
            trusted_accounts=tuple(v["trustedAccounts"]),
            builder_image_owners=tuple(dict.fromkeys(v["builderImageOwners"])),
            volume_kms_key_arns=tuple(v["volumeKmsKeyArns"]),
            ebs_default_kms_key_arn=v["ebsDefaultKmsKeyArn"],
            build_timeout_minutes=v["buildTimeoutMinutes"],
            allowed_instance_types=tuple(dict.fromkeys(v["allowedInstanceTypes"])),
            max_volume_gb=v["maxVolumeGb"],
            max_volume_iops=v["maxVolumeIops"],
            max_build_hours=v["maxBuildHours"],
            janitor_rate_minutes=v["janitorRateMinutes"],
            ready_wait_seconds=v["readyWaitSeconds"],
            ready_max_attempts=v["readyMaxAttempts"],
            snapshot_wait_seconds=v["snapshotWaitSeconds"],
            snapshot_max_attempts=v["snapshotMaxAttempts"],
            bootstrap_heartbeat_seconds=v["bootstrapHeartbeatSeconds"],
            log_retention_days=v["logRetentionDays"],
            powertools_layer_version=v["powertoolsLayerVersion"],
            callback_concurrency=v["callbackConcurrency"],
            intake_concurrency=v["intakeConcurrency"],
        )

    @classmethod
    def from_context(cls, node: Node) -> PetalSettings:
        """Settings from the CDK context of `node` (cdk.json, -c, or App(context=...))."""
        # Reading every petal: key (not only the known ones) makes a misspelt key an
        # error instead of a silently ignored setting.
        context = node.get_all_context()
        values = {k.removeprefix(PREFIX): x for k, x in context.items() if k.startswith(PREFIX)}
        return cls.from_mapping(values)
