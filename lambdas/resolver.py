"""Resolver function: seed or fingerprint -> software snapshot + ParallelCluster config.

The event, the result and the work are petal.cluster.resolver_event's. Invalid input
raises ResolverInputError, whose message names the field; AWS failures raise
AwsRequestFailed (both retry-safe: the function changes nothing).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lambdas.observability import add_metric, lambda_handler, logger
from petal.aws import session as aws_session
from petal.cluster import resolver_event

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client

# Lambda's home is read-only; /tmp survives between warm invocations.
CACHE_DIR = Path("/tmp/petal-cache")  # noqa: S108 - the Lambda's only writable place

# The handler's work, with its AWS clients and settings injectable for tests.
resolve_event = functools.partial(resolver_event.resolve_event, log=logger, cache_dir=CACHE_DIR)


@lambda_handler
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    result = resolve_event(event, ec2_for_region=_ec2)
    add_metric("SnapshotResolved" if result["found"] else "SnapshotNotFound", 1)
    return result


def _ec2(region: str) -> EC2Client:
    # The target region may differ from the function's, so lambdas.clients (one client
    # per service, in the function's region) does not fit; petal.aws.session makes a
    # new session per call, which keeps following AWS_ENDPOINT_URL in local mode.
    client: EC2Client = aws_session.client("ec2", region)
    return client
