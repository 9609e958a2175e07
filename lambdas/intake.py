"""EventBridge target: a seed uploaded to the seed bucket -> start its build, once."""

from __future__ import annotations

from typing import Any

from lambdas.clients import client
from lambdas.observability import add_metric, correlate, lambda_handler, logger
from petal.build.config import BuildConfig
from petal.build.intake import on_seed_uploaded
from petal.build.records import utc_now
from petal.build.seed_reader import s3_object_size, s3_seed_reader
from petal.build.table import BuildTable


@lambda_handler
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    config = BuildConfig.from_environ()
    s3 = client("s3")
    result = on_seed_uploaded(
        event,
        read_seed=s3_seed_reader(s3),
        seed_bucket=config.seed_bucket,
        object_size=s3_object_size(s3),
        table=BuildTable(client("dynamodb"), config.table_name),
        sfn=client("stepfunctions"),
        state_machine_arn=config.state_machine_arn,
        now=utc_now(),
    )
    correlate(result.build_id)
    if result.error is not None:
        add_metric("BuildFailed", 1)
    logger.info(result.reason, extra=result.to_json())
    return result.to_json()
