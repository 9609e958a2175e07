"""EventBridge target: SSM command status changes of the bootstrap document, and EC2
instance state changes -> complete or fail the parked bootstrap task."""

from __future__ import annotations

from typing import Any

from lambdas.clients import client
from lambdas.observability import add_metric, correlate, lambda_handler, logger
from petal.build.callbacks import handle_event
from petal.build.config import BuildConfig
from petal.build.log_events import tail_command_output
from petal.build.records import utc_now
from petal.build.table import BuildTable


@lambda_handler
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    config = BuildConfig.from_environ()
    log_group = config.build_log_group

    def read_tail(command_id: str, instance_id: str) -> list[str]:
        return tail_command_output(client("logs"), log_group, command_id, instance_id)

    result = handle_event(
        event,
        table=BuildTable(client("dynamodb"), config.table_name),
        sfn=client("stepfunctions"),
        ec2=client("ec2"),
        read_tail=read_tail,
        document_name=config.document_name,
        now=utc_now(),
    )
    correlate(result.build_id)
    if result.rejected:
        # Forged or misdirected: worth an alarm, not a failed invocation.
        add_metric("CallbackRejected", 1)
    logger.info(f"callback {result.action}: {result.reason}", extra=result.to_json())
    return result.to_json()
