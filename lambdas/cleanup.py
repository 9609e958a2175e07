"""Build step CleanUp (after success, and from every step's Catch): remove the builder
and the volume, release the lock, record the outcome, emit the build metrics.

With "record_failure": true (the CleanUpRecordFailure state, after the cleanup itself
failed) it only closes the record FAILED and releases the lock."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from lambdas.clients import client
from lambdas.observability import add_metric, correlate, lambda_handler, logger
from petal.build.config import BuildConfig
from petal.build.records import utc_now
from petal.build.steps.cleanup import cleanup, record_cleanup_failure
from petal.build.steps.event import build_id_hint
from petal.build.table import BuildTable


@lambda_handler
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    correlate(build_id_hint(event))
    config = BuildConfig.from_environ()
    table = BuildTable(client("dynamodb"), config.table_name)
    if event.get("record_failure") is True:
        failed = record_cleanup_failure(event, table=table, now=utc_now())
        add_metric("BuildFailed", 1)
        add_metric("CleanupFailed", 1)
        logger.error(failed.cause or "cleanup failed", extra={"step": failed.failed_step})
        return failed.to_json()
    outcome = cleanup(event, ec2=client("ec2"), table=table, now=utc_now())
    if outcome.status == "SUCCEEDED":
        add_metric("BuildSucceeded", 1)
        logger.info("build succeeded", extra={"snapshot_id": outcome.snapshot_id})
    else:
        add_metric("BuildFailed", 1)
        logger.warning(outcome.cause or "build failed", extra={"step": outcome.failed_step})
    if outcome.duration_seconds is not None:
        add_metric("BuildDurationSeconds", outcome.duration_seconds, MetricUnit.Seconds)
    return outcome.to_json()
