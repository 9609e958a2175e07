"""Resolver function: seed or fingerprint -> software snapshot + ParallelCluster config.

The event and result are petal.cluster.resolver_event's. Invalid input raises
ResolverInputError, whose message names the field; AWS failures raise AwsRequestFailed
(both retry-safe: the function changes nothing).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lambdas.observability import add_metric, lambda_handler, logger
from petal.aws import session as aws_session
from petal.aws.errors import AwsRequestFailed
from petal.cluster.plan import plan_cluster
from petal.cluster.resolution import (
    RegistryFactory,
    ResolutionError,
    SnapshotNotFound,
    default_registry_factory,
)
from petal.cluster.resolver_event import found_result, not_found_result, parse_event
from petal.user_config import UserConfig

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client

# Lambda's home is read-only; /tmp survives between warm invocations.
CACHE_DIR = Path("/tmp/petal-cache")  # noqa: S108 - the Lambda's only writable place


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
    registry_for: RegistryFactory | None = None,
) -> dict[str, Any]:
    """The handler's work, with its AWS clients and settings injectable for tests."""
    parsed = parse_event(event, config)
    request = parsed.prepared.request
    logger.info("resolving", extra={"request": asdict(request)})
    try:
        plan = plan_cluster(
            parsed.prepared,
            ec2=ec2_for_region(request.region),
            config=parsed.config,
            registry_for=registry_for or default_registry_factory(parsed.config, CACHE_DIR),
        )
    except ResolutionError as error:
        raise AwsRequestFailed(str(error)) from None
    except SnapshotNotFound as missing:
        logger.info("no snapshot", extra={"skipped": [s.format() for s in missing.skipped]})
        return not_found_result(missing)
    resolution = plan.resolution
    logger.info(
        "resolved", extra={"snapshot_id": resolution.snapshot_id, "source": resolution.source}
    )
    return found_result(plan)


def _ec2(region: str) -> EC2Client:
    # The target region may differ from the function's, so lambdas.clients (one client
    # per service, in the function's region) does not fit; petal.aws.session makes a
    # new session per call, which keeps following AWS_ENDPOINT_URL in local mode.
    client: EC2Client = aws_session.client("ec2", region)
    return client
