"""Build step CheckReady: instance running, SSM agent Online, volume available;
then attach the volume. Called in a Wait loop; fails after max_attempts checks."""

from __future__ import annotations

from typing import Any

from lambdas.clients import client
from lambdas.observability import correlate, lambda_handler, logger
from petal.build.steps.check_ready import check_ready
from petal.build.steps.event import build_id_hint


@lambda_handler
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    correlate(build_id_hint(event))
    result = check_ready(event, ec2=client("ec2"), ssm=client("ssm"))
    logger.info("builder readiness checked", extra=result)
    return result
