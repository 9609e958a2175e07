"""Build step Snapshot: detach the unmounted volume and snapshot it, tagged."""

from __future__ import annotations

from typing import Any

from lambdas.clients import client
from lambdas.observability import correlate, lambda_handler, logger
from petal.build.config import BuildConfig
from petal.build.steps.event import build_id_hint
from petal.build.steps.snapshot import snapshot
from petal.build.table import BuildTable


@lambda_handler
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    correlate(build_id_hint(event))
    config = BuildConfig.from_environ()
    result = snapshot(
        event, ec2=client("ec2"), table=BuildTable(client("dynamodb"), config.table_name)
    )
    logger.info("snapshot started", extra=result)
    return result
