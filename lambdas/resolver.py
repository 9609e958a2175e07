"""Resolver function: seed or fingerprint -> software snapshot + ParallelCluster config.

Input (all but one of seed/fingerprint optional):
    {"seed": <seed mapping or YAML text> | "fingerprint": "sha256:...",
     "region": "us-east-1", "os": "alinux2023", "architecture": "x86_64",
     "min_size_gb": 500, "cluster_name": "research",
     "overrides": {"subnet_id": "subnet-...", "key_name": ..., "queues": [...], ...}}
Output: {"found": true, "snapshot": {...}, "source", "owner", "reason", "warnings",
"skipped", "config_yaml", ...} or {"found": false, "skipped": [...], "build_hint"}.
Invalid input raises ResolverInputError, whose message names the field; AWS failures
raise AwsRequestFailed (both retry-safe: the function changes nothing).

Settings come from the environment (petal.user_config.config_from_environment):
PETAL_REGISTRY_URL, PETAL_TRUSTED_ACCOUNTS, PETAL_USE_PUBLIC_SNAPSHOTS,
PETAL_SNAPSHOT_SOURCES, PETAL_NODE_SETUP_URI.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from botocore.config import Config

from lambdas.observability import add_metric, lambda_handler, logger
from petal.aws.errors import AwsRequestFailed
from petal.aws.session import new_session
from petal.cluster.config import config_for_snapshot
from petal.cluster.overrides import overrides_from_mapping
from petal.cluster.resolution import (
    InvalidRequest,
    ResolutionError,
    SnapshotNotFound,
    make_request,
    resolve,
)
from petal.cluster.settings import ConfigError, check_cluster_name, cluster_settings
from petal.errors import PetalStepError
from petal.identifiers import FINGERPRINT
from petal.registry.client import RegistryClient
from petal.seed.fingerprint import fingerprint as seed_fingerprint
from petal.seed.model import Seed, SeedError, parse_seed, parse_seed_mapping
from petal.user_config import SnapshotSource, UserConfig, UserConfigError, config_from_environment

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client

# Lambda's home is read-only; /tmp survives between warm invocations.
CACHE_DIR = Path("/tmp/petal-cache")  # noqa: S108 - the Lambda's only writable place
_CONFIG = Config(retries={"mode": "standard", "max_attempts": 3})


class ResolverInputError(PetalStepError, ValueError):
    """The request cannot be resolved as given; the message names the field."""


def _ec2(region: str) -> EC2Client:
    # The target region may differ from the function's, so lambdas.clients (one client
    # per service, in the function's region) does not fit. A client per invocation
    # keeps following AWS_ENDPOINT_URL when local mode switches emulators.
    client: EC2Client = new_session().client("ec2", region_name=region, config=_CONFIG)
    return client


def _registry_factory(config: UserConfig) -> Callable[[SnapshotSource], RegistryClient]:
    def factory(source: SnapshotSource) -> RegistryClient:
        return RegistryClient(
            source.url or config.registry.url,
            cache_dir=CACHE_DIR,
            ttl_seconds=config.registry.cache_ttl_seconds,
            timeout=config.registry.timeout_seconds,
        )

    return factory


@lambda_handler
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    result = resolve_event(event, ec2_for_region=_ec2)
    add_metric("SnapshotResolved" if result["found"] else "SnapshotNotFound", 1)
    return result


def resolve_event(
    event: Mapping[str, Any],
    *,
    ec2_for_region: Callable[[str], EC2Client],
    config: UserConfig | None = None,
    registry_for: Callable[[SnapshotSource], RegistryClient] | None = None,
) -> dict[str, Any]:
    """The handler's work, with its AWS clients and settings injectable for tests."""
    if not isinstance(event, Mapping):
        raise ResolverInputError("the input must be a JSON object")
    try:
        settings_config = config or config_from_environment()
    except UserConfigError as error:
        raise ResolverInputError(f"function environment: {error}") from None
    seed = _seed(event.get("seed"))
    fingerprint = _fingerprint(event.get("fingerprint"), seed)
    try:
        overrides = overrides_from_mapping(event.get("overrides"))
        if event.get("min_size_gb") is not None:
            size = event["min_size_gb"]
            if isinstance(size, bool) or not isinstance(size, int):
                raise ConfigError("min_size_gb", f"must be a whole number of GiB, not {size!r}")
            overrides = replace(overrides, size_gb=size)
        overrides = replace(
            overrides,
            region=_optional_str(event, "region"),
            os=_optional_str(event, "os"),
            architecture=_optional_str(event, "architecture"),
        )
        cluster_name = event.get("cluster_name")
        if cluster_name is not None:
            check_cluster_name(str(cluster_name))
        settings = cluster_settings(
            seed,
            overrides,
            default_region=settings_config.deployment.region or os.environ.get("AWS_REGION"),
            default_node_setup_uri=settings_config.deployment.node_setup_uri,
        )
    except ConfigError as error:
        raise ResolverInputError(str(error)) from None
    try:
        request = make_request(
            fingerprint,
            settings.region,
            settings.os,
            settings.architecture,
            settings.volume.size_gb,
            seed.name if seed else None,
        )
    except InvalidRequest as error:
        raise ResolverInputError(str(error)) from None
    logger.info("resolving", extra={"request": asdict(request)})
    try:
        resolution = resolve(
            request,
            ec2=ec2_for_region(request.region),
            config=settings_config,
            registry_for=registry_for or _registry_factory(settings_config),
        )
    except ResolutionError as error:
        raise AwsRequestFailed(str(error)) from None
    except SnapshotNotFound as missing:
        logger.info("no snapshot", extra={"skipped": [s.format() for s in missing.skipped]})
        return {
            "found": False,
            "fingerprint": fingerprint,
            "message": str(missing),
            "sources": list(missing.sources),
            "skipped": [asdict(s) for s in missing.skipped],
            "build_hint": "build the stack first: petal build --seed <seed file>",
        }
    resolved = config_for_snapshot(
        settings,
        resolution,
        cluster_name=str(cluster_name) if cluster_name else None,
        seed_name=seed.name if seed else None,
        fingerprint=fingerprint,
    )
    logger.info(
        "resolved",
        extra={"snapshot_id": resolution.snapshot_id, "source": resolution.source},
    )
    output = resolution.to_dict()
    return {
        "found": True,
        "fingerprint": fingerprint,
        "cluster_name": cluster_name,
        "snapshot": {
            "snapshot_id": resolution.snapshot_id,
            "region": resolution.region,
            "os": resolution.os,
            "architecture": resolution.architecture,
            "size_gb": resolution.snapshot_size_gb,
            "volume_size_gb": resolution.volume_size_gb,
            "start_time": resolution.start_time,
            "encrypted": resolution.encrypted,
            "stack_name": resolution.stack_name,
            "registry_url": resolution.registry_url,
        },
        "source": resolution.source,
        "source_label": resolution.source_label,
        "owner": resolution.owner,
        "reason": resolution.reason,
        "warnings": [*settings.warnings, *output["warnings"]],
        "skipped": output["skipped"],
        "config": resolved.config,
        "config_yaml": resolved.text,
    }


def _optional_str(event: Mapping[str, Any], key: str) -> str | None:
    value = event.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigError(key, f"must be text, not {value!r}")
    return value


def _seed(value: Any) -> Seed | None:
    if value is None:
        return None
    try:
        if isinstance(value, str):
            return parse_seed(value, "seed")
        return parse_seed_mapping(value, "seed")
    except SeedError as error:
        raise ResolverInputError(str(error)) from None


def _fingerprint(value: Any, seed: Seed | None) -> str:
    if seed is not None:
        computed = seed_fingerprint(seed)
        if value is not None and value != computed:
            raise ResolverInputError(
                f"fingerprint: {value!r} is not the seed's fingerprint {computed}; "
                "send one of seed or fingerprint"
            )
        return computed
    if value is None:
        raise ResolverInputError("seed or fingerprint is required")
    if not isinstance(value, str):
        raise ResolverInputError(f"fingerprint: must be text, not {value!r}")
    if not FINGERPRINT.match(value):
        raise ResolverInputError(
            f"fingerprint: {value!r} is not sha256: followed by 64 hex digits "
            "(`petal seed fingerprint FILE` prints it)"
        )
    return value
