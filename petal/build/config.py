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
