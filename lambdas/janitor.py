"""Scheduled: end the bootstrap of any build whose command has ended or whose builder
is gone, when no event did (the reconciler); then remove builder instances and volumes
that outlived the build timeout and belong to no running build, release their locks
and close their records.

The event may set "older_than_minutes" to sweep sooner (e.g. after stopping a build).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from lambdas.clients import client
from lambdas.observability import add_metric, lambda_handler, logger
from petal.build.config import BuildConfig
from petal.build.janitor import MARGIN, Reconciler, sweep
from petal.build.log_events import tail_command_output
from petal.build.records import utc_now
from petal.build.table import BuildTable
from petal.errors import InvalidBuildRequest


@lambda_handler
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    config = BuildConfig.from_environ()
    max_age = timedelta(minutes=config.build_timeout_minutes) + MARGIN
    override = event.get("older_than_minutes") if isinstance(event, dict) else None
    if override is not None:
        if not isinstance(override, int) or isinstance(override, bool) or override < 0:
            raise InvalidBuildRequest(
                f"older_than_minutes must be a whole number of minutes >= 0, not {override!r}"
            )
        max_age = timedelta(minutes=override)
    log_group = config.build_log_group

    def read_tail(command_id: str, instance_id: str) -> list[str]:
        return tail_command_output(client("logs"), log_group, command_id, instance_id)

    report = sweep(
        ec2=client("ec2"),
        sfn=client("stepfunctions"),
        table=BuildTable(client("dynamodb"), config.table_name),
        now=utc_now(),
        max_age=max_age,
        reconciler=Reconciler(
            ssm=client("ssm"), read_tail=read_tail, document_name=config.document_name
        ),
        state_machine_arn=config.state_machine_arn,
    )
    add_metric("JanitorTerminatedInstances", len(report.terminated_instances))
    add_metric("JanitorDeletedVolumes", len(report.deleted_volumes))
    # Each one is a build whose ending event was lost (or is still in a dead-letter
    # queue): worth an alarm if it is ever more than rare.
    add_metric("JanitorReconciledBuilds", len(report.reconciled))
    logger.info("janitor sweep", extra=report.to_json())
    return report.to_json()
