"""Build step CheckSnapshot: completed (then shared with trusted accounts), error, or
pending. Called in a Wait loop; fails after max_attempts checks."""

from __future__ import annotations

from typing import Any

from lambdas.clients import client
from lambdas.observability import correlate, lambda_handler, logger
from petal.build.config import BuildConfig
from petal.build.steps.check_snapshot import check_snapshot
from petal.build.steps.event import build_id_hint
from petal.build.table import BuildTable


@lambda_handler
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    correlate(build_id_hint(event))
    config = BuildConfig.from_environ()
    result = check_snapshot(
        event,
        ec2=client("ec2"),
        table=BuildTable(client("dynamodb"), config.table_name),
        trusted_accounts=config.trusted_accounts,
    )
    logger.info("snapshot checked", extra=result)
    return result
