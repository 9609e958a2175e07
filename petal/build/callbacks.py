"""Completing the parked bootstrap task, from events: the callback and log_heartbeat
functions' logic.

- SSM "EC2 Command Invocation Status-change Notification": Success -> SendTaskSuccess;
  Failed / TimedOut / Cancelled (and the other terminal statuses) -> SendTaskFailure
  with the failing step and the last lines of the build log.
- EC2 "EC2 Instance State-change Notification" (stopping, shutting-down, terminated,
  stopped) of a running build's builder -> SendTaskFailure at once, instead of waiting
  for the heartbeat to time out.
- Build log marker lines (PETAL-STEP / PROGRESS / HEARTBEAT / FAILED) -> SendTaskHeartbeat
  and progress on the build record.

Events arrive at least once and in any order. The token is claimed once, for one
outcome (petal.build.table.BuildTable.claim_token): a duplicate of the same outcome
may retry the send, any other outcome after it is ignored, and a stale token
(TaskTimedOut, InvalidToken) is logged, not raised.

A command can end before the bootstrap function has parked its token: the token's key
is the command id, which exists only once SendCommand has returned, and a command that
fails at once (or an agent that is quick) reports before the put. Dropping that event
would leave the build waiting for its heartbeat to time out. So a status event of a
RUNNING build's builder whose record names no command yet raises TaskTokenNotParked:
EventBridge invokes the function asynchronously, and Lambda runs a failed
asynchronous invocation again (twice, a minute and then two minutes later), by when
the token is parked.

Nothing in an event or a log delivery is taken on its word (docs/ARCHITECTURE.md,
"Trust boundaries"). Every builder may write any stream of the shared build log group,
so a stream's command and instance are claims; an event's fields could name another
build's command or instance. Each field that ties an event to a build is checked
against what petal itself wrote (the parked token, the build record, the instance's
tags and its state as EC2 reports it), and an event that does not match is ignored
with `rejected` set, logged as a warning, before anything is claimed, sent or updated.
Even in the build's own stream, only marker lines whose tag verifies with the build's
log key are its builder's (petal.build.log_markers.read_log): they alone beat the
heart, move the record and make a failure's cause; every other line claiming to be a
marker is logged as rejected, with the reason, and changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from petal.aws import ec2_builder, step_functions
from petal.build.log_events import LogBatch, clip
from petal.build.log_markers import LogEvent, LogRead, read_log
from petal.build.records import BuildRecord, ParkedToken, Progress, iso
from petal.build.table import BuildTable
from petal.deployment_contract import (
    MANAGED_VALUE,
    ROLE_BUILDER,
    TAG_BUILD_ID,
    TAG_MANAGED,
    TAG_ROLE,
)
from petal.errors import PetalStepError, TaskTokenNotParked

SSM_DETAIL_TYPE: Final = "EC2 Command Invocation Status-change Notification"
EC2_DETAIL_TYPE: Final = "EC2 Instance State-change Notification"
# Sources AWS reserves for its own services: no PutEvents caller can send them.
SSM_SOURCE: Final = "aws.ssm"
EC2_SOURCE: Final = "aws.ec2"
SUCCESS: Final = "Success"
TIMED_OUT: Final = "TimedOut"
# SSM's two kinds of TimedOut (GetCommandInvocation's StatusDetails): the agent never
# received the command (the instance was unreachable), or the script ran past its
# executionTimeout. Events may name them in `status`, spaced or not, or in
# `status-details`.
DELIVERY_TIMED_OUT: Final = "DeliveryTimedOut"
EXECUTION_TIMED_OUT: Final = "ExecutionTimedOut"
NOT_DELIVERED_ERROR: Final = "BootstrapNotDelivered"
# Terminal command statuses other than Success, and the error each fails the task with.
FAILURE_ERRORS: Final[dict[str, str]] = {
    "Failed": "BootstrapFailed",
    TIMED_OUT: "BootstrapTimedOut",
    "Cancelled": "BootstrapCancelled",
    "Undeliverable": NOT_DELIVERED_ERROR,
    "Terminated": "BootstrapCancelled",
    DELIVERY_TIMED_OUT: NOT_DELIVERED_ERROR,
    "Delivery Timed Out": NOT_DELIVERED_ERROR,
    EXECUTION_TIMED_OUT: "BootstrapTimedOut",
    "Execution Timed Out": "BootstrapTimedOut",
}
GONE_STATES: Final = frozenset({"stopping", "shutting-down", "terminated", "stopped"})

TailReader = Callable[[str, str], list[str]]  # (command id, instance id) -> last lines

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CallbackResult:
    action: str  # succeeded, failed, ignored, stale
    reason: str
    build_id: str | None = None
    command_id: str | None = None
    # An event that claims to be about a build but does not match its record: forged,
    # or a builder's doing. Ignored like any other, but worth an operator's look.
    rejected: bool | None = None

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


def _rejected(
    reason: str, build_id: str | None = None, command_id: str | None = None
) -> CallbackResult:
    _log.warning("event rejected: %s", reason)
    return CallbackResult("ignored", reason, build_id, command_id, rejected=True)


def _text(detail: Mapping[str, Any], key: str) -> str:
    """A string field of an event's detail; "" when missing or not a string."""
    value = detail.get(key)
    return value if isinstance(value, str) else ""


def handle_event(
    event: object,
    *,
    table: BuildTable,
    sfn: Any,
    ec2: Any,
    read_tail: TailReader,
    document_name: str,
    now: datetime,
) -> CallbackResult:
    if not isinstance(event, Mapping):
        return _rejected(f"the event is not an object but {type(event).__name__}")
    detail_type = event.get("detail-type")
    source = event.get("source")
    detail = event.get("detail")
    if not isinstance(detail, Mapping):
        return CallbackResult("ignored", "the event has no detail")
    if detail_type == SSM_DETAIL_TYPE and source == SSM_SOURCE:
        return on_command_status(
            detail,
            table=table,
            sfn=sfn,
            ec2=ec2,
            read_tail=read_tail,
            document_name=document_name,
            now=now,
        )
    if detail_type == EC2_DETAIL_TYPE and source == EC2_SOURCE:
        return on_instance_state(detail, table=table, sfn=sfn, ec2=ec2, now=now)
    return CallbackResult("ignored", f"not an event petal handles: {detail_type!r} from {source!r}")


def on_command_status(
    detail: Mapping[str, Any],
    *,
    table: BuildTable,
    sfn: Any,
    ec2: Any,
    read_tail: TailReader,
    document_name: str,
    now: datetime,
) -> CallbackResult:
    command_id = _text(detail, "command-id")
    instance_id = _text(detail, "instance-id")
    status = _text(detail, "status")
    document = _text(detail, "document-name")
    # The rule matches petal's document, but an event without one (or with another)
    # is not a bootstrap's: only that document's status may complete a build.
    if document != document_name:
        return _rejected(f"command of another document ({document or 'none named'})")
    if not command_id or not instance_id:
        return _rejected("the event names no command or no instance")
    if status != SUCCESS and status not in FAILURE_ERRORS:
        return CallbackResult("ignored", f"status {status!r} is not final", command_id=command_id)
    parked = table.get_token(command_id)
    if parked is None:
        _, record = builder_build(ec2, table, instance_id)
        if (
            record is not None
            and record.status == "RUNNING"
            and not record.command_id
            and record.instance_id == instance_id
        ):
            raise TaskTokenNotParked(
                f"command {command_id} on {instance_id} ended {status} before build "
                f"{record.build_id} parked its task token; the event is delivered again"
            )
        return CallbackResult("ignored", "no build waits for this command", command_id=command_id)
    record, log_key = table.get_build_and_log_key(parked.build_id)
    mismatch = _command_mismatch(parked, record, command_id, instance_id)
    if mismatch is not None:
        return _rejected(mismatch, parked.build_id, command_id)
    token = table.claim_token(command_id, f"command:{status}", now)
    if token is None:
        existing = table.get_token(command_id) or parked
        return CallbackResult(
            "ignored",
            f"the build already received {existing.outcome}; {status} is a late duplicate",
            build_id=existing.build_id,
            command_id=command_id,
        )
    if status == SUCCESS:
        sent = step_functions.send_success(
            sfn,
            token.task_token,
            {"command_id": command_id, "instance_id": instance_id, "status": status},
        )
        action = "succeeded"
    else:
        unread = None
        try:
            lines = read_tail(command_id, token.instance_id)
        except PetalStepError as problem:
            # The failure must reach the build even when its log cannot be read.
            lines, unread = [], f"(the build log could not be read: {problem})"
        log = read_log(lines, key=log_key, build_id=token.build_id)
        _log_rejected_lines(log, f"the build log of command {command_id}")
        final = final_status(status, _text(detail, "status-details"), log.events)
        error = FAILURE_ERRORS[final]
        cause = bootstrap_failure_cause(final, command_id, log, unread=unread)
        sent = step_functions.send_failure(sfn, token.task_token, error, cause)
        action = "failed"
    table.mark_token_sent(command_id, now)
    if not sent:
        return CallbackResult(
            "stale", "the task had already ended", build_id=token.build_id, command_id=command_id
        )
    return CallbackResult(
        action, f"command {status}", build_id=token.build_id, command_id=command_id
    )


def final_status(status: str, status_details: str, printed: list[LogEvent]) -> str:
    """The command's final status, with a TimedOut told apart: DeliveryTimedOut or
    ExecutionTimedOut, from the event when it says which. When it does not, the build
    log tells: a command the agent never received printed nothing, while the bootstrap
    prints its first PETAL-HEARTBEAT as soon as it starts. Its own markers only
    (`printed`): another builder's lines in the stream would make an undelivered
    command look like one that ran. (GetCommandInvocation's StatusDetails would say
    too, but the callback function may not call SSM.)"""
    for named in (status, status_details):
        compact = named.replace(" ", "")
        if compact in (DELIVERY_TIMED_OUT, EXECUTION_TIMED_OUT):
            return compact
    if status != TIMED_OUT:
        return status
    return EXECUTION_TIMED_OUT if printed else DELIVERY_TIMED_OUT


def bootstrap_failure_cause(
    status: str, command_id: str, log: LogRead, *, unread: str | None = None
) -> str:
    """Why the bootstrap failed, from the command's status and from its builder's own
    markers in the build log: its PETAL-FAILED and the PETAL-TAIL lines before it.
    Nothing else in the log reaches the cause (anyone's builder may have written it);
    `unread` says why the log could not be read."""
    failure = log.failure
    if failure is not None:
        summary = f"the bootstrap failed in its '{failure.step}' step: {failure.message}"
    elif FAILURE_ERRORS.get(status) == NOT_DELIVERED_ERROR:
        summary = (
            f"SSM could not deliver the bootstrap command to the builder ({status}): its "
            "SSM agent never received it, so nothing ran. The instance was unreachable: "
            "it lost its route to Systems Manager, or the agent stopped"
        )
    elif FAILURE_ERRORS.get(status) == "BootstrapTimedOut":
        summary = "the bootstrap ran out of time (SSM stopped it at its execution timeout)"
    elif status in ("Cancelled", "Terminated"):
        summary = f"the bootstrap command was {status.lower()}"
    else:
        summary = f"the bootstrap command ended with status {status}"
    if unread is not None:
        tail = unread
    elif log.tail:
        tail = "\n".join(log.tail)
    else:
        tail = "(none the bootstrap vouched for: `petal build logs` shows the whole log)"
    return clip(f"{summary} (command {command_id}). Last lines of the build log:\n{tail}")


def _log_rejected_lines(log: LogRead, where: str) -> None:
    if log.rejected:
        _log.warning(
            "%d line(s) of %s rejected: %s", len(log.rejected), where, "; ".join(log.rejected)
        )


def on_instance_state(
    detail: Mapping[str, Any],
    *,
    table: BuildTable,
    sfn: Any,
    ec2: Any,
    now: datetime,
) -> CallbackResult:
    instance_id = _text(detail, "instance-id")
    state = _text(detail, "state")
    if state not in GONE_STATES:
        return CallbackResult("ignored", f"state {state!r} does not end a build")
    instance, record = builder_build(ec2, table, instance_id)
    if instance is None:
        return CallbackResult("ignored", f"{instance_id} is not a petal builder")
    build_id = instance.tags.get(TAG_BUILD_ID, "")
    if record is None or record.status != "RUNNING" or not record.command_id:
        # Before the bootstrap, the ready check sees the instance gone; after it, the
        # build is cleaning up (its own cleanup terminates the builder).
        return CallbackResult("ignored", "no bootstrap is waiting on this instance", build_id)
    if record.instance_id != instance_id:
        # Tagged with this build's id, yet not the instance its record names.
        return _rejected(f"{instance_id} is not build {build_id}'s builder", build_id)
    if instance.state not in GONE_STATES:
        # The event says the builder went away; EC2 says it did not.
        return _rejected(
            f"the event says {instance_id} is {state}, EC2 says it is {instance.state}",
            build_id,
            record.command_id,
        )
    parked = table.get_token(record.command_id)
    if parked is not None and (parked.build_id, parked.instance_id) != (build_id, instance_id):
        return _rejected(
            f"command {record.command_id} was parked for another build or instance",
            build_id,
            record.command_id,
        )
    reason = instance.state_reason if instance and instance.state_reason else "no reason given"
    return fail_for_lost_builder(
        table, sfn, record, f"{instance_id} is {state} ({reason})", f"instance:{state}", now
    ) or CallbackResult("ignored", "the bootstrap already ended", build_id, record.command_id)


def fail_for_lost_builder(
    table: BuildTable, sfn: Any, record: BuildRecord, what: str, outcome: str, now: datetime
) -> CallbackResult | None:
    """Fail the parked bootstrap task of a build whose builder is gone (`what` says how:
    "<instance> is terminated (...)"). None when the task was claimed already."""
    command_id = str(record.command_id)
    token = table.claim_token(command_id, outcome, now)
    if token is None:
        return None
    cause = (
        f"the builder instance {what} while the bootstrap was running (command "
        f"{command_id}); the install cannot finish"
    )
    sent = step_functions.send_failure(sfn, token.task_token, "BuilderStopped", cause)
    table.mark_token_sent(command_id, now)
    if not sent:
        return CallbackResult("stale", "the task had already ended", record.build_id, command_id)
    return CallbackResult("failed", f"builder gone: {what}", record.build_id, command_id)


def builder_build(
    ec2: Any, table: BuildTable, instance_id: str
) -> tuple[ec2_builder.InstanceView | None, BuildRecord | None]:
    """A petal builder instance (None for any other) and the record of its build."""
    instance = ec2_builder.describe_instance(ec2, instance_id) if instance_id else None
    tags = instance.tags if instance else {}
    if tags.get(TAG_MANAGED) != MANAGED_VALUE or tags.get(TAG_ROLE) != ROLE_BUILDER:
        return None, None
    return instance, table.get_build(tags.get(TAG_BUILD_ID, ""))


def _command_mismatch(
    token: ParkedToken, record: BuildRecord | None, command_id: str, instance_id: str
) -> str | None:
    """Why (command_id, instance_id), named by an event or a log stream, is not the
    bootstrap command of the build whose token is parked under command_id; None when
    it is. The token was parked by the bootstrap function (with the record's
    instance), the record by the pipeline: both are petal's word, the event is not.
    A record naming no command yet is the moment between parking the token and
    recording the command id (bootstrap.py does both, in that order)."""
    if token.instance_id != instance_id:
        return (
            f"command {command_id} runs on {token.instance_id or 'an unknown instance'}, "
            f"not on {instance_id or 'no instance'}"
        )
    if record is None:
        return f"build {token.build_id} of command {command_id} has no record"
    if record.instance_id != instance_id:
        return f"{instance_id} is not build {record.build_id}'s builder ({record.instance_id})"
    if record.command_id and record.command_id != command_id:
        return f"build {record.build_id} runs command {record.command_id}, not {command_id}"
    return None


# --- the build log subscription ----------------------------------------------------------


@dataclass(frozen=True)
class HeartbeatResult:
    command_id: str
    build_id: str | None
    heartbeat_sent: bool
    events: int
    reason: str
    # The stream does not belong to the build its command names (see CallbackResult).
    rejected: bool = False

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def on_log_batch(batch: LogBatch, *, table: BuildTable, sfn: Any, now: datetime) -> HeartbeatResult:
    """A marker line of the build's builder proves the bootstrap is alive: one heartbeat
    per delivery, and the newest step / progress / failure onto the build record for
    `petal build status`.

    Only from the build's own stream: any builder may write any stream name in the
    group, so the command and instance the name claims must be the build's (its
    parked token and its record), or the delivery changes nothing. And only its
    builder's markers, those whose tag verifies with the build's log key: any other
    line is logged as rejected and changes nothing."""
    command_id = batch.command_id
    stream = batch.stream
    if stream is None:
        reason = f"{batch.log_stream!r} is not an SSM command output stream"
        _log.warning("log delivery rejected: %s", reason)
        return HeartbeatResult(command_id, None, False, 0, reason, rejected=True)
    token = table.get_token(command_id)
    if token is None:
        return HeartbeatResult(command_id, None, False, 0, "no build waits for it")
    if token.outcome is not None:
        return HeartbeatResult(command_id, token.build_id, False, 0, f"already {token.outcome}")
    record, log_key = table.get_build_and_log_key(token.build_id)
    mismatch = _command_mismatch(token, record, command_id, stream.instance_id)
    if mismatch is None and record is not None and record.log_group not in (None, batch.log_group):
        mismatch = f"build {record.build_id} logs to {record.log_group}, not {batch.log_group}"
    if mismatch is not None:
        _log.warning("log delivery rejected (%s): %s", batch.log_stream, mismatch)
        return HeartbeatResult(command_id, token.build_id, False, 0, mismatch, rejected=True)
    reads = batch.read(key=log_key, build_id=token.build_id)
    log = LogRead(
        [event for _, read in reads for event in read.events],
        [reason for _, read in reads for reason in read.rejected],
    )
    _log_rejected_lines(log, f"stream {batch.log_stream}")
    refused = f"; {len(log.rejected)} line(s) rejected" if log.rejected else ""
    if not log.events:
        reason = f"no marker of build {token.build_id}'s builder{refused}"
        return HeartbeatResult(
            command_id, token.build_id, False, 0, reason, rejected=bool(log.rejected)
        )
    sent = step_functions.send_heartbeat(sfn, token.task_token)
    # When the builder's agent uploaded its lines: the events that held none are not
    # its word.
    seen = datetime.fromtimestamp(max(t for t, read in reads if read.events) / 1000, tz=UTC)
    values: dict[str, Any] = {"last_heartbeat_at": iso(seen)}
    # The markers' free text is already free of terminal controls (log_markers).
    for event in log.events:
        if event.kind == "step" and event.step:
            values["bootstrap_step"] = event.step
        elif event.kind == "progress" and event.done is not None and event.total is not None:
            values["progress"] = Progress(event.done, event.total, event.spec or "").__dict__
        elif event.kind == "failed":
            values["failure_line"] = f"{event.step}: {event.message}"
        elif event.kind == "manifest":
            values["manifest_sha256"] = event.sha256
    table.update_build(
        token.build_id,
        values,
        execution_arn=token.execution_arn or None,
        only_if_running=True,
    )
    reason = ("heartbeat sent" if sent else "the task had already ended") + refused
    return HeartbeatResult(
        command_id, token.build_id, sent, len(log.events), reason, rejected=bool(log.rejected)
    )
