"""Build step Bootstrap: send the install command and park the task token."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, Final

from petal.aws import ssm_commands
from petal.build.bootstrap_document import command_parameters
from petal.build.build_cache import BuildCache, bootstrap_parameters
from petal.build.log_markers import log_key_parameter, new_log_key
from petal.build.records import LOG_KEY_ATTRIBUTE
from petal.build.table import BuildTable
from petal.errors import PetalStepError

# A parked token outlives its task by this much (then DynamoDB's TTL removes it).
TOKEN_GRACE: Final = timedelta(days=1)


def bootstrap(
    event: Mapping[str, Any],
    *,
    ssm: Any,
    table: BuildTable,
    document_name: str,
    log_group: str,
    now: datetime,
    seed_bucket: str = "",
    build_cache: BuildCache | None = None,
) -> dict[str, Any]:
    """Send the bootstrap and park the task token under the command's id.

    The token never leaves AWS: the instance gets only the command, and the callback
    function finds the token by the command id in SSM's status-change events.

    The build's log key is made here, stored on its record before the command goes out
    (its first marker may arrive before SendCommand returns) and handed to the builder
    as a command parameter: neither the execution's input nor this step's result holds
    it. It is kept for the build: a command sent again (a retry after the first ended)
    tags its lines with the same key.
    """
    build, resources = event["build"], event["resources"]
    build_id, instance_id = str(build["build_id"]), str(resources["instance_id"])
    execution_arn = str(build["execution_arn"])
    expires_at = now + timedelta(seconds=int(build["task_timeout_seconds"])) + TOKEN_GRACE

    def park_token(command_id: str) -> None:
        table.park_token(
            command_id,
            task_token=event["task_token"],
            build_id=build_id,
            instance_id=instance_id,
            execution_arn=execution_arn,
            now=now,
            expires_at=expires_at,
        )

    record, log_key = table.get_build_and_log_key(build_id)
    if record is not None and record.command_id:
        status = ssm_commands.command_status(ssm, record.command_id, instance_id)
        if status not in ssm_commands.TERMINAL_STATUSES:
            # A retry of this step after the command went out: one command per build,
            # so the new token is parked under the command that is already running.
            park_token(record.command_id)
            return {"command_id": record.command_id, "sent": False}

    parameters = command_parameters(
        volume_id=str(resources["volume_id"]),
        spack_version=str(build["spack_version"]),
        spack_yaml=str(build["spack_yaml"]),
        build_id=build_id,
        fingerprint=str(build["fingerprint"]),
        execution_timeout_seconds=int(build["command_timeout_seconds"]),
        heartbeat_seconds=int(build["script_heartbeat_seconds"]),
        parent_snapshot=str(build.get("parent_snapshot_id") or ""),
    )
    if log_key is None:
        log_key = new_log_key()
        if not table.update_build(
            build_id, {LOG_KEY_ATTRIBUTE: log_key}, execution_arn=execution_arn
        ):
            # The consumer would refuse every line of a build without a key on record.
            raise PetalStepError(
                f"build {build_id} has no record of execution {execution_arn} to hold its "
                "log key; nothing was sent to the builder"
            )
    parameters.update(log_key_parameter(log_key))
    parameters.update(bootstrap_parameters(build_id, seed_bucket=seed_bucket, cache=build_cache))
    command_id = ssm_commands.send_bootstrap_command(
        ssm,
        document_name=document_name,
        instance_id=instance_id,
        parameters=parameters,
        log_group=log_group,
        comment=f"petal build {build_id}",
    )
    park_token(command_id)
    table.update_build(
        build_id,
        {"step": "bootstrap", "command_id": command_id, "log_group": log_group},
        execution_arn=execution_arn,
    )
    return {"command_id": command_id, "sent": True}
