"""Build step Bootstrap (lambda:invoke.waitForTaskToken): send the bootstrap command
and park the task token under its command id. The task ends by callback."""

from __future__ import annotations

import os
from typing import Any

from lambdas.clients import client
from lambdas.observability import correlate, lambda_handler, logger
from petal.build.build_cache import BuildCache
from petal.build.config import BuildConfig
from petal.build.records import utc_now
from petal.build.steps.bootstrap import bootstrap
from petal.build.steps.event import build_id_hint
from petal.build.table import BuildTable


@lambda_handler
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    correlate(build_id_hint(event))
    config = BuildConfig.from_environ()
    result = bootstrap(
        event,
        ssm=client("ssm"),
        table=BuildTable(client("dynamodb"), config.table_name),
        document_name=config.document_name,
        log_group=config.build_log_group,
        now=utc_now(),
        seed_bucket=config.seed_bucket,
        build_cache=BuildCache.from_environ(os.environ),
    )
    logger.info("bootstrap command sent", extra=result)
    return result
