"""The build log: what the bootstrap prints, streamed by SSM to CloudWatch Logs.

SSM names each stream `<command id>/<instance id>/<step>/stdout` (and `.../stderr`).
The agent does not send a line per event: about once a second it joins every line the
command printed since into ONE event, each line ending in a newline (amazon-ssm-agent,
cloudwatchlogsservice.go: `getNextMessage` reads the output file up to its last newline
and keeps a line still being written for the next upload). The log group's
subscription delivers the events that contain a marker to the log_heartbeat function,
several per invocation, as base64-encoded gzip JSON. This module decodes those
deliveries, cuts each message into whole lines, and reads the tail of a command's
output (for the cause of a failed build).

Everything in the group is the builders' to write: the builder role may write any
stream of it (IAM cannot tie a stream name to the calling instance, see
stacks/builder_identity.py). So a stream's name is a claim, not a proof: `parse_stream`
only reads it, and petal.build.callbacks checks it against the build record. Nor is a
line in the stream proof: only a marker whose tag verifies with the build's log key
(petal.build.log_markers.read_log) is its builder's. Text leaves here with its terminal
controls neutralised (petal.text).
"""

from __future__ import annotations

import base64
import gzip
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from botocore.exceptions import ClientError

from petal.aws.errors import error_code, translate
from petal.build.log_markers import LogRead, read_log
from petal.errors import PetalStepError
from petal.text import terminal_safe

# Lines of the build log the callback reads back for a failure's cause: the bootstrap's
# authenticated last lines (20 PETAL-TAIL lines, then PETAL-FAILED) are among the last
# of its stdout, unless something wrote many lines into the stream after them.
TAIL_READ_LINES: Final = 500
TAIL_CHARACTERS: Final = 3000
# SSM's CloudWatchOutputConfig stream: <command id>/<instance id>/<plugin>/stdout|stderr.
_STREAM: Final = re.compile(
    r"(?P<command_id>[^/]+)/(?P<instance_id>m?i-[0-9a-f]+)/(?P<plugin>[^/]+)/(?:stdout|stderr)"
)


@dataclass(frozen=True)
class StreamName:
    """What a stream's name claims: the command and the instance it is the output of."""

    command_id: str
    instance_id: str
    plugin: str


def parse_stream(log_stream: str) -> StreamName | None:
    """The parts of an SSM command output stream's name; None for any other name."""
    match = _STREAM.fullmatch(log_stream)
    if match is None:
        return None
    return StreamName(match["command_id"], match["instance_id"], match["plugin"])


@dataclass(frozen=True)
class LogBatch:
    log_group: str
    log_stream: str
    messages: tuple[tuple[int, str], ...]  # (timestamp ms, message)

    @property
    def command_id(self) -> str:
        return command_id_of_stream(self.log_stream)

    @property
    def stream(self) -> StreamName | None:
        return parse_stream(self.log_stream)

    def read(self, *, key: str | None, build_id: str) -> list[tuple[int, LogRead]]:
        """Each event's timestamp and the markers of its whole lines that verify with
        the build's log key, in the order printed."""
        return [
            (timestamp, read_log(whole_lines(message), key=key, build_id=build_id))
            for timestamp, message in self.messages
        ]


class BadLogDelivery(PetalStepError, ValueError):
    """The event is not a CloudWatch Logs subscription delivery."""


def whole_lines(message: str) -> str:
    """The lines of an event's message whose newline has arrived.

    A marker counts only once its whole line is in hand. The agent uploads up to the
    last newline, so every line it sends is whole; only a line longer than its 200 KB
    event limit is cut, and any other writer may cut where it likes. What follows the
    last newline is such a piece: read as a marker, "PETAL-PROGRESS 3/12 zl" would
    report a spec that does not exist. It is not carried over to the next delivery
    either: the subscription forwards only events containing a marker, so the event
    with the rest of the line ("ib@1.3" and compiler output) usually never reaches the
    function, and the next one that does is not its continuation. A marker lost so is
    overtaken by the next (the bootstrap prints a heartbeat every third of the
    heartbeat window); a PETAL-FAILED line reaches the failure's cause anyway, through
    the log tail the callback reads, and the log group keeps every byte.
    """
    end = message.rfind("\n")
    return message[: end + 1]


def command_id_of_stream(log_stream: str) -> str:
    return log_stream.split("/", 1)[0]


def stream_prefix(command_id: str, instance_id: str | None = None) -> str:
    return f"{command_id}/{instance_id}/" if instance_id else f"{command_id}/"


def decode_subscription_event(event: Mapping[str, Any]) -> LogBatch | None:
    """The batch of a subscription delivery; None for CloudWatch's CONTROL_MESSAGE."""
    try:
        raw = base64.b64decode(event["awslogs"]["data"])
        payload = json.loads(gzip.decompress(raw))
    except (KeyError, TypeError, ValueError, OSError) as error:
        raise BadLogDelivery(f"not a CloudWatch Logs subscription event: {error}") from None
    if payload.get("messageType") != "DATA_MESSAGE":
        return None
    return LogBatch(
        log_group=str(payload.get("logGroup", "")),
        log_stream=str(payload.get("logStream", "")),
        messages=tuple(
            (int(e.get("timestamp", 0)), str(e.get("message", "")))
            for e in payload.get("logEvents", [])
        ),
    )


def encode_subscription_event(
    *,
    log_group: str,
    log_stream: str,
    messages: list[tuple[int, str]],
    owner: str,
    filter_name: str = "petal-markers",
) -> dict[str, Any]:
    """A subscription delivery in CloudWatch's shape (local mode and tests send these)."""
    payload = {
        "messageType": "DATA_MESSAGE",
        "owner": owner,
        "logGroup": log_group,
        "logStream": log_stream,
        "subscriptionFilters": [filter_name],
        "logEvents": [
            {"id": str(index), "timestamp": timestamp, "message": message}
            for index, (timestamp, message) in enumerate(messages)
        ],
    }
    data = base64.b64encode(gzip.compress(json.dumps(payload).encode())).decode("ascii")
    return {"awslogs": {"data": data}}


def tail_command_output(
    logs: Any, log_group: str, command_id: str, instance_id: str, lines: int = TAIL_READ_LINES
) -> list[str]:
    """The last `lines` lines of each stream the command wrote (stdout, then stderr),
    oldest first, with their terminal controls neutralised, for the failure's cause,
    which the CLI prints and the execution shows: only the markers among them that
    verify with the build's key may reach it (read_log). Empty when the log group or
    streams do not exist (the command never started)."""
    prefix = stream_prefix(command_id, instance_id)
    collected: list[str] = []
    try:
        streams = logs.describe_log_streams(logGroupName=log_group, logStreamNamePrefix=prefix)
        names = sorted(
            (str(s["logStreamName"]) for s in streams.get("logStreams", [])),
            key=lambda name: (not name.endswith("stdout"), name),
        )
        for name in names:
            response = logs.get_log_events(
                logGroupName=log_group, logStreamName=name, startFromHead=False, limit=lines
            )
            stream_lines: list[str] = []
            for event in response.get("events", []):
                message = str(event.get("message", ""))
                stream_lines.extend(terminal_safe(line) for line in message.splitlines())
            collected.extend(stream_lines[-lines:])
    except ClientError as error:
        if error_code(error) == "ResourceNotFoundException":
            return collected
        raise translate("CloudWatch Logs read of the build log", error) from error
    return collected


def clip(text: str, limit: int = TAIL_CHARACTERS) -> str:
    return text if len(text) <= limit else "..." + text[-(limit - 3) :]
