"""Deployment settings, read from CDK context (`cdk.json`, or `-c key=value`).

Every key, its default and its meaning is listed in DEFAULTS and documented in
docs/ARCHITECTURE.md. Values given with `-c` arrive as strings, so lists accept a
comma-separated string as well as a JSON list, and numbers accept numeric strings.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from aws_cdk import aws_logs as logs
from constructs import Node

from petal.identifiers import ACCOUNT_ID, REGION, SUBNET_ID

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
    # Also allow plain HTTP (port 80) out of the builder. Off: HTTPS only. Ubuntu's EC2
    # package mirrors and a few Spack sources are HTTP-only; apt and Spack verify
    # what they fetch (signatures, checksums), so turning this on is a network policy
    # choice, not an integrity one.
    "builderHttpEgress": False,
    # Create interface endpoints for SSM, SSM messages, EC2 messages and CloudWatch
    # Logs in the builder subnets, so the agent's traffic stays in the VPC.
    "createVpcEndpoints": False,
    # Snapshot registry index the resolver and prepare step consult; "" = none.
    "registryUrl": "",
    # AWS account ids snapshots are shared with.
    "trustedAccounts": [],
    # Customer managed KMS keys (ARNs) seeds may name in volume.kms_key_id. Snapshots
    # encrypted with the AWS managed key cannot be shared, so sharing needs one; the
    # launch and check-ready functions may use these keys through EC2 only.
    "volumeKmsKeyArns": [],
    # A build running longer than this is stuck: the janitor cleans it up.
    "buildTimeoutMinutes": 360,
    # Polling of the build state machine: how long to wait between checks that the
    # builder is up (instance running, SSM agent online) and how many checks before
    # giving up; the same for the snapshot completing.
    "readyWaitSeconds": 20,
    "readyMaxAttempts": 45,
    "snapshotWaitSeconds": 60,
    "snapshotMaxAttempts": 240,
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

_VPC_ID = re.compile(r"^vpc-[0-9a-f]{8,17}$")
_STACK_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,63}$")
_KMS_KEY_ARN = re.compile(r"^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/[A-Za-z0-9-]+$")
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


def _list(key: str, value: Any) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return [v.strip() for v in value]
    raise SettingsError(f"{PREFIX}{key} must be a list of strings or a comma-separated string")


def _int(key: str, value: Any, minimum: int) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise SettingsError(f"{PREFIX}{key} must be an integer, got {value!r}") from None
    if isinstance(value, bool) or number < minimum or str(number) != str(value).strip():
        raise SettingsError(f"{PREFIX}{key} must be an integer >= {minimum}, got {value!r}")
    return number


def _optional_int(key: str, value: Any, minimum: int) -> int | None:
    if value is None or value in ("", "null", "none"):
        return None
    return _int(key, value, minimum)


def _bool(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise SettingsError(f"{PREFIX}{key} must be true or false, got {value!r}")


@dataclass(frozen=True)
class PetalSettings:
    stack_name: str
    region: str
    vpc_id: str
    subnet_ids: tuple[str, ...]
    builder_http_egress: bool
    create_vpc_endpoints: bool
    registry_url: str
    trusted_accounts: tuple[str, ...]
    volume_kms_key_arns: tuple[str, ...]
    build_timeout_minutes: int
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
        unknown = sorted(set(values) - set(DEFAULTS))
        if unknown:
            raise SettingsError(f"unknown petal settings: {[PREFIX + k for k in unknown]}")
        # null means "none" where that is a choice (no reserved concurrency) and
        # "not set" everywhere else.
        v = {
            **DEFAULTS,
            **{k: x for k, x in values.items() if x is not None or k in NULLABLE},
        }

        stack_name = str(v["stackName"])
        if not _STACK_NAME.match(stack_name):
            raise SettingsError(
                f"{PREFIX}stackName {stack_name!r}: letters, digits and '-', at most 64"
            )
        region = str(v["region"])
        if not REGION.match(region):
            raise SettingsError(f"{PREFIX}region {region!r} is not a region name")
        vpc_id = str(v["vpcId"] or "")
        subnet_ids = tuple(_list("subnetIds", v["subnetIds"]))
        if not vpc_id or not subnet_ids:
            raise SettingsError(
                f"set {PREFIX}vpcId and {PREFIX}subnetIds (the builder's network) in "
                f"cdk.json or with -c {PREFIX}vpcId=vpc-... -c {PREFIX}subnetIds=subnet-a,subnet-b"
            )
        if not _VPC_ID.match(vpc_id):
            raise SettingsError(f"{PREFIX}vpcId {vpc_id!r} is not a VPC id")
        bad = [s for s in subnet_ids if not SUBNET_ID.match(s)]
        if bad:
            raise SettingsError(f"{PREFIX}subnetIds {bad} are not subnet ids")
        accounts = tuple(_list("trustedAccounts", v["trustedAccounts"]))
        bad = [a for a in accounts if not ACCOUNT_ID.match(a)]
        if bad:
            raise SettingsError(f"{PREFIX}trustedAccounts {bad} are not 12-digit account ids")
        keys = tuple(_list("volumeKmsKeyArns", v["volumeKmsKeyArns"]))
        bad = [k for k in keys if not _KMS_KEY_ARN.match(k)]
        if bad:
            raise SettingsError(
                f"{PREFIX}volumeKmsKeyArns {bad} are not KMS key ARNs (arn:aws:kms:...:key/...)"
            )
        registry_url = str(v["registryUrl"] or "")
        if registry_url and not registry_url.startswith("https://"):
            raise SettingsError(f"{PREFIX}registryUrl must be an https:// URL")
        retention = _int("logRetentionDays", v["logRetentionDays"], 1)
        if retention not in RETENTION:
            raise SettingsError(
                f"{PREFIX}logRetentionDays {retention} is not one of {sorted(RETENTION)}"
            )
        return cls(
            stack_name=stack_name,
            region=region,
            vpc_id=vpc_id,
            subnet_ids=subnet_ids,
            builder_http_egress=_bool("builderHttpEgress", v["builderHttpEgress"]),
            create_vpc_endpoints=_bool("createVpcEndpoints", v["createVpcEndpoints"]),
            registry_url=registry_url,
            trusted_accounts=accounts,
            volume_kms_key_arns=keys,
            build_timeout_minutes=_int("buildTimeoutMinutes", v["buildTimeoutMinutes"], 10),
            janitor_rate_minutes=_int("janitorRateMinutes", v["janitorRateMinutes"], 1),
            ready_wait_seconds=_int("readyWaitSeconds", v["readyWaitSeconds"], 1),
            ready_max_attempts=_int("readyMaxAttempts", v["readyMaxAttempts"], 1),
            snapshot_wait_seconds=_int("snapshotWaitSeconds", v["snapshotWaitSeconds"], 1),
            snapshot_max_attempts=_int("snapshotMaxAttempts", v["snapshotMaxAttempts"], 1),
            bootstrap_heartbeat_seconds=_int(
                "bootstrapHeartbeatSeconds", v["bootstrapHeartbeatSeconds"], 60
            ),
            log_retention_days=retention,
            powertools_layer_version=_int("powertoolsLayerVersion", v["powertoolsLayerVersion"], 1),
            callback_concurrency=_optional_int("callbackConcurrency", v["callbackConcurrency"], 1),
            intake_concurrency=_optional_int("intakeConcurrency", v["intakeConcurrency"], 1),
        )

    @classmethod
    def from_context(cls, node: Node) -> PetalSettings:
        """Settings from the CDK context of `node` (cdk.json, -c, or App(context=...))."""
        # Reading every petal: key (not only the known ones) makes a misspelt key an
        # error instead of a silently ignored setting.
        context = node.get_all_context()
        values = {k.removeprefix(PREFIX): x for k, x in context.items() if k.startswith(PREFIX)}
        return cls.from_mapping(values)
