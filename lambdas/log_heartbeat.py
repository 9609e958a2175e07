"""CloudWatch Logs subscription of the build log group: marker lines -> task heartbeat
and progress on the build record."""

from __future__ import annotations

from typing import Any

from lambdas.clients import client
from lambdas.observability import add_metric, correlate, lambda_handler, logger
from petal.build.callbacks import on_log_batch
from petal.build.config import BuildConfig
from petal.build.log_events import decode_subscription_event
from petal.build.records import utc_now
from petal.build.table import BuildTable


@lambda_handler
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    batch = decode_subscription_event(event)
    if batch is None:
        return {"ignored": "control message"}
    config = BuildConfig.from_environ()
    result = on_log_batch(
        batch,
        table=BuildTable(client("dynamodb"), config.table_name),
        sfn=client("stepfunctions"),
        now=utc_now(),
    )
    correlate(result.build_id)
    if result.rejected:
        # Forged or misdirected: worth an alarm, not a failed invocation.
        add_metric("LogDeliveryRejected", 1)
    logger.info(result.reason, extra=result.to_json())
    return result.to_json()
