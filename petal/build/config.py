"""What the build functions read from their environment (set by the CDK stack, and by
petal.local.emulator in local mode), with an error naming any variable that is missing."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from petal.deployment_contract import (
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
        raw = self.environ.get(ENV_MIRROR_BUCKETS, "")
        return frozenset(b.strip() for b in raw.split(",") if b.strip())

    @property
    def ebs_default_kms_key_arn(self) -> str:
        """petal:ebsDefaultKmsKeyArn: the customer managed default EBS key petal may use."""
        return self.environ.get(ENV_EBS_DEFAULT_KMS_KEY, "").strip()
