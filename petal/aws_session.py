"""The one place the CLI creates boto3 clients.

boto3 already honours AWS_ENDPOINT_URL and AWS_ENDPOINT_URL_<SERVICE>, which is how
local mode points petal at an emulator; going through these functions keeps it that
way for every command (and gives local mode one thing to patch if it needs more).
"""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config

_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5}, user_agent_extra="petal")


def client(service: str, region: str | None = None) -> Any:
    """A boto3 client for `service` in `region` (default: the session's region)."""
    # A new session per call: sessions snapshot the environment, and local mode (or a
    # test) may change AWS_ENDPOINT_URL or credentials between calls.
    session = boto3.session.Session()
    return session.client(service, region_name=region, config=_CONFIG)  # type: ignore[call-overload]


def default_region() -> str | None:
    """The region boto3 would use: AWS_REGION, AWS_DEFAULT_REGION or the profile's."""
    region: str | None = boto3.session.Session().region_name
    return region
