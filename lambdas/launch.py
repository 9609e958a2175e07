"""Build step Launch: run the builder instance and create the software volume."""

from __future__ import annotations

from typing import Any

from lambdas.clients import client
from lambdas.observability import correlate, lambda_handler, logger
from petal.build.config import BuildConfig
from petal.build.steps.event import build_id_hint
from petal.build.steps.launch import launch
from petal.build.table import BuildTable


@lambda_handler
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    correlate(build_id_hint(event))
    config = BuildConfig.from_environ()
    result = launch(
        event,
        ec2=client("ec2"),
        table=BuildTable(client("dynamodb"), config.table_name),
        subnet_ids=config.subnet_ids,
        security_group_id=config.security_group_id,
        instance_profile_arn=config.instance_profile_arn,
    )
    logger.info("builder launched", extra=result)
    return result
