"""The one place petal creates boto3 sessions and the CLI's clients.

boto3 already honours AWS_ENDPOINT_URL and AWS_ENDPOINT_URL_<SERVICE>, which is how
local mode points petal at an emulator; going through these functions keeps it that
way for every command (and gives local mode one thing to patch if it needs more).

The region: AWS_REGION, then AWS_DEFAULT_REGION, then the profile's, the order of the
AWS CLI v2 and the other SDKs. boto3 itself reads only the last two, so a session made
here is given AWS_REGION explicitly.
"""

from __future__ import annotations

import functools
import os
import threading
from typing import TYPE_CHECKING, Any, Final

import botocore.loaders
import botocore.session
from botocore.config import Config
from botocore.exceptions import UnknownRegionError

if TYPE_CHECKING:
    import boto3.session

ENV_REGION: Final = "AWS_REGION"
# The ways to give a region without a flag, then with one: every "no region" says them.
REGION_SETTINGS: Final = (
    "set AWS_REGION (or AWS_DEFAULT_REGION), give your AWS profile a region "
    "(`aws configure set region REGION`), or set deployment.region in "
    "~/.petal/config.yaml (or PETAL_REGION)"
)
REGION_SOURCES: Final = f"pass --region REGION, {REGION_SETTINGS}"

_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5}, user_agent_extra="petal")
_loader_lock = threading.Lock()
_loaders: list[botocore.loaders.Loader] = []


class _SearchPaths(list[str]):
    """boto3 appends its data folder to the loader's search paths for every session;
    with one loader for the process that list would grow without end."""

    def append(self, path: str) -> None:
        if path not in self:
            super().append(path)


def _shared_loader() -> botocore.loaders.Loader:
    with _loader_lock:
        if not _loaders:
            loader = botocore.loaders.create_loader()
            loader._search_paths = _SearchPaths(loader.search_paths)  # type: ignore[attr-defined]
            _loaders.append(loader)
        return _loaders[0]


def new_core_session() -> botocore.session.Session:
    """A new botocore session with the shared model loader and AWS_REGION, for code
    that needs clients only (the Lambda handlers): unlike boto3, botocore does not
    import s3transfer, a fifth of a second of a cold start."""
    core = botocore.session.get_session()
    core.register_component("data_loader", _shared_loader())
    # An empty AWS_REGION counts as unset, as it does for the AWS CLI.
    region = os.environ.get(ENV_REGION) or None
    if region:
        core.set_config_variable("region", region)
    return core


def new_session() -> boto3.session.Session:
    """A new boto3 session: it reads credentials, region and endpoints from the
    environment now. Sessions share one model loader, so a service's model (the EC2
    one takes a quarter of a second to parse) is read once per process, not per session."""
    import boto3.session  # here: boto3 costs s3transfer's import, which handlers avoid

    return boto3.session.Session(botocore_session=new_core_session())


def client(service: str, region: str | None = None) -> Any:
    """A boto3 client for `service` in `region` (default: `default_region()`)."""
    # A new session per call: sessions snapshot the environment, and local mode (or a
    # test) may change AWS_ENDPOINT_URL or credentials between calls.
    return new_session().client(service, region_name=region, config=_CONFIG)  # type: ignore[call-overload]


def default_region() -> str | None:
    """The configured AWS region: AWS_REGION, else AWS_DEFAULT_REGION, else the profile's
    (None when there is none)."""
    region: str | None = new_session().region_name
    return region


def partition_of(region: str) -> str | None:
    """The partition of `region` (aws, aws-cn, aws-us-gov, aws-iso...), from botocore's
    bundled endpoint data, which also matches regions newer than it by name; None when
    the name fits no partition."""
    try:
        partition: str = new_session().get_partition_for_region(region)
    except UnknownRegionError:
        return None
    return partition


@functools.cache
def known_regions() -> frozenset[str]:
    """Every region botocore knows, all partitions. Read from botocore's bundled
    endpoint data: no network, so typos are caught before any call."""
    session = new_session()
    regions: set[str] = set()
    for partition in session.get_available_partitions():
        regions.update(session.get_available_regions("ec2", partition_name=partition))
    return frozenset(regions)


def region_problem(value: str, flag: str) -> str | None:
    """Why `value` (given as `flag`) is not a region botocore knows, naming the regions
    it could have meant (or, for a name like none of them, the commercial ones); None
    when it is one."""
    region = value.strip()
    if region in known_regions():
        return None
    near = sorted(r for r in known_regions() if r.split("-")[0] == region.split("-")[0])
    if near:
        hint = f" (known regions like it: {', '.join(near[:8])})"
    else:
        hint = f" (known regions: {', '.join(sorted(new_session().get_available_regions('ec2')))})"
    return (
        f"{flag}: {region!r} is not an AWS region{hint}; use a name like us-east-1. "
        "A region newer than this installation needs an upgraded boto3/botocore."
    )
