"""SSM adapter of the build: is the builder's agent online, send the bootstrap command.

Every function takes a boto3 SSM client (moto's in tests; moto does not implement
DescribeInstanceInformation, which petal.local.emulator provides).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from botocore.exceptions import ClientError

from petal.aws.errors import aws_call, error_code, translate

# How long SSM may take to hand the command to the agent (not the run time).
DELIVERY_TIMEOUT_SECONDS: Final = 600
TERMINAL_STATUSES: Final = frozenset(
    {"Success", "Failed", "TimedOut", "Cancelled", "Undeliverable", "Terminated"}
)
COMMENT_LIMIT: Final = 100


def agent_online(ssm: Any, instance_id: str) -> bool:
    with aws_call("SSM DescribeInstanceInformation"):
        response = ssm.describe_instance_information(
            Filters=[{"Key": "InstanceIds", "Values": [instance_id]}]
        )
    return any(
        info.get("InstanceId") == instance_id and info.get("PingStatus") == "Online"
        for info in response.get("InstanceInformationList", [])
    )


def send_bootstrap_command(
    ssm: Any,
    *,
    document_name: str,
    instance_id: str,
    parameters: Mapping[str, Sequence[str]],
    log_group: str,
    comment: str,
) -> str:
    """Start the bootstrap; its output streams to `log_group` (CloudWatchOutputConfig),
    which is how progress and heartbeats leave the instance while it runs."""
    with aws_call(f"SSM SendCommand {document_name} to {instance_id}"):
        response = ssm.send_command(
            DocumentName=document_name,
            InstanceIds=[instance_id],
            Parameters={k: list(v) for k, v in parameters.items()},
            TimeoutSeconds=DELIVERY_TIMEOUT_SECONDS,
            Comment=comment[:COMMENT_LIMIT],
            CloudWatchOutputConfig={
                "CloudWatchLogGroupName": log_group,
                "CloudWatchOutputEnabled": True,
            },
        )
    return str(response["Command"]["CommandId"])


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


def command_status(ssm: Any, command_id: str, instance_id: str) -> str | None:
    """The invocation's status, or None if SSM does not know it (yet)."""
    invocation = command_invocation(ssm, command_id, instance_id)
    return (invocation.status or None) if invocation is not None else None
