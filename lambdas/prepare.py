"""Build step Prepare: validate the request and seed, fingerprint, find the official
AMI; reuse a completed snapshot of the stack, or record the build and take its lock."""

from __future__ import annotations

from typing import Any

from lambdas.clients import client
from lambdas.observability import add_metric, correlate, lambda_handler, logger
from petal import build_steps
from petal.build_config import BuildConfig
from petal.build_records import BuildTable, utc_now
from petal.seed_objects import s3_seed_reader


@lambda_handler
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    correlate(build_steps.build_id_hint(event))
    config = BuildConfig.from_environ()
    result = build_steps.prepare(
        event,
        ec2=client("ec2"),
        read_seed=s3_seed_reader(client("s3")),
        table=BuildTable(client("dynamodb"), config.table_name),
        now=utc_now(),
    )
    correlate(result["build_id"])
    if result["reused"]:
        add_metric("SnapshotReused", 1)
        logger.info(
            "completed snapshot exists: reused", extra={"snapshot_id": result["snapshot_id"]}
        )
    else:
        logger.info("build prepared", extra={"fingerprint": result["fingerprint"]})
    return result
