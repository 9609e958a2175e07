"""Build step Bootstrap (lambda:invoke.waitForTaskToken): send the bootstrap command
and park the task token under its command id. The task ends by callback."""

from __future__ import annotations

from typing import Any

from lambdas.clients import client
from lambdas.observability import correlate, lambda_handler, logger
from petal import build_steps
from petal.build_config import BuildConfig
from petal.build_records import BuildTable, utc_now


@lambda_handler
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    correlate(build_steps.build_id_hint(event))
    config = BuildConfig.from_environ()
    result = build_steps.bootstrap(
        event,
        ssm=client("ssm"),
        table=BuildTable(client("dynamodb"), config.table_name),
        document_name=config.document_name,
        log_group=config.build_log_group,
        now=utc_now(),
    )
    logger.info("bootstrap command sent", extra=result)
    return result
