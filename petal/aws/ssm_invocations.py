"""SSM adapter of the janitor's reconciler: how a command invocation stands.

Takes a boto3 SSM client. GetCommandInvocation answers with the status and, for a
TimedOut, which kind (StatusDetails: DeliveryTimedOut or ExecutionTimedOut), which is
what the callback's status event would have said.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from petal.aws.errors import error_code, translate


@dataclass(frozen=True)
class CommandInvocation:
    command_id: str
    instance_id: str
    status: str  # Pending, InProgress, Delayed, Success, Failed, TimedOut, Cancelled, ...
    status_details: str


def command_invocation(ssm: Any, command_id: str, instance_id: str) -> CommandInvocation | None:
    """The invocation of `command_id` on `instance_id`, or None if SSM does not know it
    (not yet, or no longer: SSM keeps command history for 30 days)."""
    try:
        response = ssm.get_command_invocation(CommandId=command_id, InstanceId=instance_id)
    except ClientError as error:
        if error_code(error) in ("InvocationDoesNotExist", "InvalidCommandId"):
            return None
        raise translate("SSM GetCommandInvocation", error) from error
    return CommandInvocation(
        command_id=command_id,
        instance_id=instance_id,
        status=str(response.get("Status") or ""),
        status_details=str(response.get("StatusDetails") or ""),
    )
