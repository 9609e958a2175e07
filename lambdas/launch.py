"""Build step Launch: run the builder instance and create the software volume."""

from __future__ import annotations

from typing import Any

from lambdas.clients import client
from lambdas.observability import correlate, lambda_handler, logger
from petal import build_steps
from petal.build_config import BuildConfig
from petal.build_records import BuildTable


@lambda_handler
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    correlate(build_steps.build_id_hint(event))
    config = BuildConfig.from_environ()
    result = build_steps.launch(
        event,
        ec2=client("ec2"),
        table=BuildTable(client("dynamodb"), config.table_name),
        subnet_ids=config.subnet_ids,
        security_group_id=config.security_group_id,
        instance_profile_arn=config.instance_profile_arn,
    )
    logger.info("builder launched", extra=result)
    return result
