"""Build step Bootstrap: send the install command and park the task token."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, Final

from petal.aws import ssm_commands
from petal.build.bootstrap_document import command_parameters
from petal.build.table import BuildTable

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
) -> dict[str, Any]:
    """Send the bootstrap and park the task token under the command's id.

    The token never leaves AWS: the instance gets only the command, and the callback
    function finds the token by the command id in SSM's status-change events.
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

    record = table.get_build(build_id)
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
    )
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
