"""Build step Prepare: validate the request and seed, fingerprint, find the official
AMI; reuse a completed snapshot of the same software, or record the build and take its lock."""

from __future__ import annotations

from typing import Any

from lambdas.clients import client
from lambdas.observability import add_metric, correlate, lambda_handler, logger
from petal.build.config import BuildConfig
from petal.build.records import utc_now
from petal.build.seed_reader import s3_seed_reader
from petal.build.steps.event import build_id_hint
from petal.build.steps.prepare import prepare
from petal.build.table import BuildTable


@lambda_handler
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    correlate(build_id_hint(event))
    config = BuildConfig.from_environ()
    result = prepare(
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
