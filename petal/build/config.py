"""What the build functions read from their environment (set by the CDK stack, and by
petal.local.emulator in local mode), with an error naming any variable that is missing."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from petal.deployment_contract import (
    ENV_ALLOWED_INSTANCE_TYPES,
    ENV_BUILD_LOG_GROUP,
    ENV_BUILD_TIMEOUT_MINUTES,
    ENV_BUILDER_IMAGE_OWNERS,
    ENV_DOCUMENT,
    ENV_INSTANCE_PROFILE,
    ENV_MAX_BUILD_HOURS,
    ENV_MAX_VOLUME_GB,
    ENV_MAX_VOLUME_IOPS,
    ENV_SECURITY_GROUP,
    ENV_SEED_BUCKET,
    ENV_STATE_MACHINE,
    ENV_SUBNETS,
    ENV_TABLE,
    ENV_TRUSTED_ACCOUNTS,
)
from petal.errors import ConfigurationError

DEFAULT_BUILD_TIMEOUT_MINUTES: Final = 360

# Deployment settings Prepare checks a build against, so a build the deployment cannot
# carry out fails at once with the setting to change rather than minutes later in AWS.
# The stack sets them (stacks/petal_stack.py); unset, each means its setting's default,
# which is what local mode (petal.local) deploys.
ENV_BUILDER_HTTP_EGRESS: Final = "PETAL_BUILDER_HTTP_EGRESS"  # "true" / "false"
ENV_MIRROR_BUCKETS: Final = "PETAL_MIRROR_BUCKETS"  # comma-separated bucket names
ENV_EBS_DEFAULT_KMS_KEY: Final = "PETAL_EBS_DEFAULT_KMS_KEY_ARN"  # key ARN or ""

# Cost guard rails: the defaults of petal:allowedInstanceTypes, petal:maxVolumeGb,
# petal:maxVolumeIops and petal:maxBuildHours (stacks/settings.py reads them from here).
# Builders of the compute (c), general purpose (m) and memory optimized (r) families, up
# to 16xlarge (64 vCPUs): no GPU, accelerator (p, g, inf, trn, dl, f), high memory (x,
# u-), bare metal, Mac or 24xlarge-and-larger type. A pattern is an IAM StringLike value:
# `*` any run of characters (dots included), `?` one character; `c*.2xlarge` matches
# c7g.2xlarge and c7i-flex.2xlarge, not c7i.12xlarge.
COST_LIMITED_FAMILIES: Final = ("c", "m", "r")
COST_LIMITED_SIZES: Final = (
    "large",
    "xlarge",
    "2xlarge",
    "4xlarge",
    "8xlarge",
    "12xlarge",
    "16xlarge",
)
DEFAULT_ALLOWED_INSTANCE_TYPES: Final[tuple[str, ...]] = tuple(
    f"{family}*.{size}" for family in COST_LIMITED_FAMILIES for size in COST_LIMITED_SIZES
)
DEFAULT_MAX_VOLUME_GB: Final = 2000
DEFAULT_MAX_VOLUME_IOPS: Final = 6000
DEFAULT_MAX_BUILD_HOURS: Final = 12


def iam_like(pattern: str) -> re.Pattern[str]:
    """`pattern` as IAM's StringLike reads it: `*` any characters, `?` one, the rest
    literally and case-sensitively, matched against the whole value."""
    parts = (".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile("".join(parts), re.DOTALL)


@dataclass(frozen=True)
class CostLimits:
    """What a build may ask for (the cost guard rails of the deployment's settings)."""

    allowed_instance_types: tuple[str, ...] = DEFAULT_ALLOWED_INSTANCE_TYPES
    max_volume_gb: int = DEFAULT_MAX_VOLUME_GB
    max_volume_iops: int = DEFAULT_MAX_VOLUME_IOPS
    max_build_hours: int = DEFAULT_MAX_BUILD_HOURS

    def allows_instance_type(self, instance_type: str) -> bool:
        """As the launch role's `StringLike ec2:InstanceType` condition decides."""
        return any(
            iam_like(pattern).fullmatch(instance_type) for pattern in self.allowed_instance_types
        )


@dataclass(frozen=True)
class BuildConfig:
    environ: Mapping[str, str]

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> BuildConfig:
        return cls(dict(os.environ if environ is None else environ))

    def _required(self, name: str) -> str:
        value = self.environ.get(name, "").strip()
        if not value:
            raise ConfigurationError(
                f"environment variable {name} is not set: the function was deployed without "
                "it; redeploy the petal stack (local mode: petal.local.emulator sets it)"
            )
        return value

    @property
    def table_name(self) -> str:
        return self._required(ENV_TABLE)

    @property
    def document_name(self) -> str:
        return self._required(ENV_DOCUMENT)

    @property
    def instance_profile_arn(self) -> str:
        return self._required(ENV_INSTANCE_PROFILE)

    @property
    def security_group_id(self) -> str:
        return self._required(ENV_SECURITY_GROUP)

    @property
    def subnet_ids(self) -> tuple[str, ...]:
        return tuple(s.strip() for s in self._required(ENV_SUBNETS).split(",") if s.strip())

    @property
    def build_log_group(self) -> str:
        return self._required(ENV_BUILD_LOG_GROUP)

    @property
    def state_machine_arn(self) -> str:
        return self._required(ENV_STATE_MACHINE)

    @property
    def seed_bucket(self) -> str:
        return self._required(ENV_SEED_BUCKET)

    @property
    def trusted_accounts(self) -> tuple[str, ...]:
        raw = self.environ.get(ENV_TRUSTED_ACCOUNTS, "")
        return tuple(a.strip() for a in raw.split(",") if a.strip())

    @property
    def build_timeout_minutes(self) -> int:
        raw = self.environ.get(ENV_BUILD_TIMEOUT_MINUTES, "").strip()
        if not raw:
            return DEFAULT_BUILD_TIMEOUT_MINUTES
        try:
            value = int(raw)
        except ValueError:
            value = 0
        if value < 1:
            raise ConfigurationError(
                f"environment variable {ENV_BUILD_TIMEOUT_MINUTES} must be a number of "
                f"minutes, not {raw!r}"
            )
        return value

    @property
    def builder_http_egress(self) -> bool:
        """petal:builderHttpEgress: whether the builder may reach port 80 (default yes)."""
        raw = self.environ.get(ENV_BUILDER_HTTP_EGRESS, "").strip().lower()
        if raw in ("", "true"):
            return True
        if raw == "false":
            return False
        raise ConfigurationError(
            f"environment variable {ENV_BUILDER_HTTP_EGRESS} must be true or false, not {raw!r}"
        )

    @property
    def mirror_buckets(self) -> frozenset[str]:
        """petal:mirrorBuckets: the S3 buckets the builder role may read."""
        return frozenset(self._names(ENV_MIRROR_BUCKETS))

    @property
    def builder_image_owners(self) -> tuple[str, ...]:
        """petal:builderImageOwners: accounts besides this one whose images may be booted."""
        return self._names(ENV_BUILDER_IMAGE_OWNERS)

    def _names(self, variable: str) -> tuple[str, ...]:
        """A comma-separated setting (unset: none)."""
        raw = self.environ.get(variable, "")
        return tuple(name.strip() for name in raw.split(",") if name.strip())

    @property
    def ebs_default_kms_key_arn(self) -> str:
        """petal:ebsDefaultKmsKeyArn: the customer managed default EBS key petal may use."""
        return self.environ.get(ENV_EBS_DEFAULT_KMS_KEY, "").strip()

    def _limit(self, name: str, default: int) -> int:
        raw = self.environ.get(name, "").strip()
        if not raw:
            return default
        if not re.fullmatch(r"[0-9]+", raw) or int(raw) < 1:
            raise ConfigurationError(
                f"environment variable {name} must be a whole number of at least 1, not "
                f"{raw!r}: redeploy the petal stack"
            )
        return int(raw)

    @property
    def cost_limits(self) -> CostLimits:
        """petal:allowedInstanceTypes, maxVolumeGb, maxVolumeIops, maxBuildHours; each
        unset variable means its setting's default (what local mode deploys)."""
        raw = self.environ.get(ENV_ALLOWED_INSTANCE_TYPES, "")
        patterns = tuple(p.strip() for p in raw.split(",") if p.strip())
        return CostLimits(
            allowed_instance_types=patterns or DEFAULT_ALLOWED_INSTANCE_TYPES,
            max_volume_gb=self._limit(ENV_MAX_VOLUME_GB, DEFAULT_MAX_VOLUME_GB),
            max_volume_iops=self._limit(ENV_MAX_VOLUME_IOPS, DEFAULT_MAX_VOLUME_IOPS),
            max_build_hours=self._limit(ENV_MAX_BUILD_HOURS, DEFAULT_MAX_BUILD_HOURS),
        )
