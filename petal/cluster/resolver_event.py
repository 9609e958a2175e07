"""The resolver Lambda's contract: its event, read into a prepared cluster plan, and its
result.

Event (all but one of seed/fingerprint optional):
    {"seed": <seed mapping or YAML text> | "fingerprint": "sha256:...",
     "region": "us-east-1", "os": "alinux2023", "architecture": "x86_64",
     "min_size_gb": 500, "cluster_name": "research", "strict_node_check": false,
     "overrides": {"subnet_id": "subnet-...", "key_name": ..., "queues": [...], ...}}
Result: {"found": true, "snapshot": {...}, "source", "owner", "reason", "warnings",
"skipped", "config_yaml", ...} or {"found": false, "skipped": [...], "build_hint"}.
Invalid input raises ResolverInputError, whose message names the field.

Settings come from the environment (petal.user_config.config_from_environment):
PETAL_REGISTRY_URL, PETAL_TRUSTED_ACCOUNTS, PETAL_USE_PUBLIC_SNAPSHOTS,
PETAL_SNAPSHOT_SOURCES, PETAL_NODE_SETUP_URI.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from petal.aws.errors import AwsRequestFailed
from petal.cluster.overrides import overrides_from_mapping
from petal.cluster.plan import ClusterPlan, PreparedPlan, Software, plan_cluster, prepare_plan
from petal.cluster.resolution import (
    InvalidRequest,
    RegistryFactory,
    ResolutionError,
    SnapshotNotFound,
    default_registry_factory,
)
from petal.cluster.settings import ClusterOverrides, ConfigError
from petal.errors import EXIT_INVALID, PetalStepError
from petal.identifiers import FINGERPRINT
from petal.seed.model import Seed, SeedError
from petal.user_config import UserConfig, UserConfigError, config_from_environment

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client

BUILD_HINT: Final = "build the stack first: petal build --seed <seed file>"


class ResolverInputError(PetalStepError, ValueError):
    """The request cannot be resolved as given; the message names the field."""

    exit_code = EXIT_INVALID


@dataclass(frozen=True)
class ResolverEvent:
    config: UserConfig  # the function's settings
    prepared: PreparedPlan


def parse_event(event: object, config: UserConfig | None = None) -> ResolverEvent:
    """The event, checked and prepared for `plan_cluster`; `config` defaults to the
    function's environment. Raises ResolverInputError."""
    if not isinstance(event, Mapping):
        raise ResolverInputError("the input must be a JSON object")
    try:
        settings_config = config or config_from_environment()
    except UserConfigError as error:
        raise ResolverInputError(f"function environment: {error}") from None
    try:
        software = _software(event)
        overrides = _overrides(event)
        name = event.get("cluster_name")
        prepared = prepare_plan(
            software,
            overrides,
            cluster_name=None if name is None else str(name),
            default_region=settings_config.deployment.region or os.environ.get("AWS_REGION"),
            default_node_setup_uri=settings_config.deployment.node_setup_uri,
        )
    except (ConfigError, InvalidRequest) as error:
        raise ResolverInputError(str(error)) from None
    return ResolverEvent(settings_config, prepared)


def found_result(plan: ClusterPlan) -> dict[str, Any]:
    resolution = plan.resolution
    output = resolution.to_dict()
    return {
        "found": True,
        "fingerprint": plan.prepared.software.fingerprint,
        "cluster_name": plan.prepared.cluster_name,
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
        "warnings": list(plan.warnings),
        "skipped": output["skipped"],
        "config": plan.config.config,
        "config_yaml": plan.config.text,
    }


def not_found_result(missing: SnapshotNotFound) -> dict[str, Any]:
    """No snapshot is an answer, not an error: the caller learns what was checked."""
    return {
        "found": False,
        "fingerprint": missing.request.fingerprint,
        "message": str(missing),
        "sources": list(missing.sources),
        "skipped": [asdict(s) for s in missing.skipped],
        "build_hint": BUILD_HINT,
    }


def _software(event: Mapping[str, Any]) -> Software:
    seed = _seed(event.get("seed"))
    value = event.get("fingerprint")
    if seed is not None:
        return Software.from_seed(seed, claimed=value)
    if value is None:
        raise ResolverInputError("seed or fingerprint is required")
    if not isinstance(value, str):
        raise ResolverInputError(f"fingerprint: must be text, not {value!r}")
    if not FINGERPRINT.match(value):
        raise ResolverInputError(
            f"fingerprint: {value!r} is not sha256: followed by 64 hex digits "
            "(`petal seed fingerprint FILE` prints it)"
        )
    return Software(value)


def _seed(value: Any) -> Seed | None:
    if value is None:
        return None
    # Here: only events that carry a seed pay for the seed loader (a cold start's cost).
    from petal.seed.loading import parse_seed, parse_seed_mapping

    try:
        if isinstance(value, str):
            return parse_seed(value, "seed")
        return parse_seed_mapping(value, "seed")
    except SeedError as error:
        raise ResolverInputError(str(error)) from None


def _overrides(event: Mapping[str, Any]) -> ClusterOverrides:
    overrides = overrides_from_mapping(event.get("overrides"))
    size = event.get("min_size_gb")
    if size is not None:
        if isinstance(size, bool) or not isinstance(size, int):
            raise ConfigError("min_size_gb", f"must be a whole number of GiB, not {size!r}")
        overrides = replace(overrides, size_gb=size)
    strict = event.get("strict_node_check")
    if strict is not None and not isinstance(strict, bool):
        raise ConfigError("strict_node_check", f"must be true or false, not {strict!r}")
    return replace(
        overrides,
        strict_node_check=strict,
        region=_optional_str(event, "region"),
        os=_optional_str(event, "os"),
        architecture=_optional_str(event, "architecture"),
    )


def _optional_str(event: Mapping[str, Any], key: str) -> str | None:
    value = event.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigError(key, f"must be text, not {value!r}")
    return value


def resolve_event(
    event: Mapping[str, Any],
    *,
    ec2_for_region: Callable[[str], EC2Client],
    log: logging.Logger | Any,
    cache_dir: Path,
    config: UserConfig | None = None,
    registry_for: RegistryFactory | None = None,
) -> dict[str, Any]:
    """The resolver Lambda's work: the event in, the result out. `log` is the
    function's logger (Powertools' is a logging.Logger work-alike)."""
    parsed = parse_event(event, config)
    request = parsed.prepared.request
    log.info("resolving", extra={"request": asdict(request)})
    try:
        plan = plan_cluster(
            parsed.prepared,
            ec2=ec2_for_region(request.region),
            config=parsed.config,
            registry_for=registry_for or default_registry_factory(parsed.config, cache_dir),
        )
    except ResolutionError as error:
        raise AwsRequestFailed(str(error)) from None
    except SnapshotNotFound as missing:
        log.info("no snapshot", extra={"skipped": [s.format() for s in missing.skipped]})
        return not_found_result(missing)
    resolution = plan.resolution
    log.info("resolved", extra={"snapshot_id": resolution.snapshot_id, "source": resolution.source})
    return found_result(plan)
