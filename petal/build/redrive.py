"""Redrive: the events in petal's dead-letter queues, handed back to their functions.

Each asynchronously invoked function (callback, intake, janitor) has a dead-letter
queue (stacks/dead_letters.py) holding two kinds of message: an event EventBridge
could not deliver (the body is the event) and an invocation the function failed on
after Lambda's retries (the body is Lambda's on-failure record, the event under
`requestPayload`). `redrive` reads either, invokes the queue's function with the
event, synchronously, and deletes the message once the function has succeeded.

Why invoke the function rather than send the event back the way it came: EventBridge
cannot replay one event to one rule's target (PutEvents would reach every matching
rule, and refuses the `aws.*` sources these events have), and an asynchronous invoke
would hide the outcome and turn a second failure into a new message minutes later.
A synchronous invoke shows the operator each outcome now, and a message whose replay
fails again stays in its queue, with the reason in the report.

A replay is safe because every handler is idempotent: the callback claims a build's
task token once (an event already applied is "ignored"), intake starts one build per
seed object version, and a janitor sweep removes only what is still there. So an event
that was applied meanwhile (by a later event, or by the janitor's reconciler) changes
nothing, and neither does a redrive run twice.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from petal.aws import dead_letter_queues as queues
from petal.aws.deployment import DeadLetterQueue
from petal.errors import PetalError

# Lambda's on-failure record (and function-level DLQ messages) vs. EventBridge's.
_LAMBDA_RECORD_KEYS: Final = ("requestContext", "requestPayload")
# What EventBridge puts on a message it dead-letters, and Lambda on a DLQ message.
_ERROR_ATTRIBUTES: Final = ("ERROR_CODE", "ERROR_MESSAGE", "ErrorCode", "ErrorMessage")
_SUMMARY_LIMIT: Final = 160


class UnknownQueue(PetalError, ValueError):
    """`--queue` named a queue the deployment does not have."""


class UnreadableLetter(ValueError):
    """A message whose body is not an event petal sent (left in its queue)."""


@dataclass(frozen=True)
class Letter:
    """A dead-lettered event and why it was dead-lettered."""

    event: dict[str, Any]
    why: str


@dataclass(frozen=True)
class Replay:
    queue: str
    message_id: str
    action: str  # replayed, failed, would replay, unreadable
    event: str  # what the event was, in a few words
    detail: str  # why it was dead-lettered, or what the replay led to
    result: Any = None

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass
class RedriveReport:
    dry_run: bool
    queues: list[str] = field(default_factory=list)
    replays: list[Replay] = field(default_factory=list)

    def count(self, action: str) -> int:
        return sum(1 for r in self.replays if r.action == action)

    @property
    def failed(self) -> bool:
        return any(r.action in ("failed", "unreadable") for r in self.replays)

    def to_json(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "queues": self.queues,
            "replayed": self.count("replayed"),
            "failed": self.count("failed"),
            "unreadable": self.count("unreadable"),
            "would_replay": self.count("would replay"),
            "messages": [r.to_json() for r in self.replays],
        }

    def lines(self) -> list[str]:
        if not self.replays:
            return [f"The dead-letter queues ({', '.join(self.queues)}) are empty."]
        lines = [
            f"{r.queue}: {r.action}: {r.event}: {r.detail} (message {r.message_id})"
            for r in self.replays
        ]
        if self.dry_run:
            lines.append(
                f"{self.count('would replay')} message(s) would be replayed; nothing was "
                "changed. Run it without --dry-run to replay them."
            )
        else:
            lines.append(
                f"Replayed {self.count('replayed')}; {self.count('failed')} failed again and "
                f"{self.count('unreadable')} could not be read: those stay in their queue."
            )
        return lines


def select_queues(available: Sequence[DeadLetterQueue], name: str | None) -> list[DeadLetterQueue]:
    if name is None:
        return list(available)
    chosen = [q for q in available if q.name == name]
    if not chosen:
        names = ", ".join(q.name for q in available) or "none"
        raise UnknownQueue(f"no dead-letter queue named {name!r}; the stack has: {names}")
    return chosen


def read_letter(message: queues.QueuedMessage) -> Letter:
    """The event a dead-letter message holds, and why it is there."""
    try:
        body = json.loads(message.body)
    except ValueError:
        raise UnreadableLetter("the message body is not JSON") from None
    if not isinstance(body, dict):
        raise UnreadableLetter("the message body is not a JSON object")
    if all(key in body for key in _LAMBDA_RECORD_KEYS):
        event = body["requestPayload"]
        context = body.get("requestContext") or {}
        response = body.get("responsePayload") or {}
        why = (
            f"{context.get('condition', 'failed')} after "
            f"{context.get('approximateInvokeCount', '?')} attempt(s): "
            f"{response.get('errorType', 'error')}: {response.get('errorMessage', '')}"
        )
    else:
        event = body
        errors = [message.attributes[a] for a in _ERROR_ATTRIBUTES if message.attributes.get(a)]
        why = "not delivered: " + (": ".join(errors) or "no reason given")
    if not isinstance(event, dict):
        raise UnreadableLetter("the dead-lettered event is not a JSON object")
    return Letter(event=event, why=_clip(why))


def describe_event(event: Mapping[str, Any]) -> str:
    """A few words naming an event: its type and what it is about."""
    detail = event.get("detail")
    detail = detail if isinstance(detail, Mapping) else {}
    kind = str(event.get("detail-type") or event.get("source") or "event")
    if "command-id" in detail:
        return f"{kind} (command {detail['command-id']}: {detail.get('status')})"
    if "instance-id" in detail:
        return f"{kind} ({detail['instance-id']}: {detail.get('state')})"
    obj = detail.get("object")
    if isinstance(obj, Mapping) and "key" in obj:
        bucket = (detail.get("bucket") or {}).get("name", "?")
        return f"{kind} (s3://{bucket}/{obj['key']})"
    return kind


def redrive(
    dead_letter_queues: Sequence[DeadLetterQueue],
    *,
    sqs: Any,
    lambda_client: Any,
    dry_run: bool,
) -> RedriveReport:
    report = RedriveReport(dry_run=dry_run, queues=[q.name for q in dead_letter_queues])
    for queue in dead_letter_queues:
        if queues.visible_messages(sqs, queue.queue_url) == 0:
            continue
        _drain(queue, sqs=sqs, lambda_client=lambda_client, dry_run=dry_run, report=report)
    return report


def _drain(
    queue: DeadLetterQueue, *, sqs: Any, lambda_client: Any, dry_run: bool, report: RedriveReport
) -> None:
    # Messages that stay (dry run, failed again, unreadable) are kept invisible until
    # the queue is drained, so each is handled once, then released for the next run.
    held: list[queues.QueuedMessage] = []
    seen: set[str] = set()
    try:
        while True:
            batch = [m for m in queues.receive(sqs, queue.queue_url) if m.message_id not in seen]
            if not batch:
                return
            for message in batch:
                seen.add(message.message_id)
                replay, keep = _replay(queue, message, lambda_client, dry_run)
                report.replays.append(replay)
                if keep:
                    held.append(message)
                else:
                    queues.delete(sqs, queue.queue_url, message)
    finally:
        for message in held:
            queues.release(sqs, queue.queue_url, message)


def _replay(
    queue: DeadLetterQueue, message: queues.QueuedMessage, lambda_client: Any, dry_run: bool
) -> tuple[Replay, bool]:
    """What happened to one message, and whether it stays in the queue."""
    try:
        letter = read_letter(message)
    except UnreadableLetter as problem:
        return Replay(queue.name, message.message_id, "unreadable", "?", str(problem)), True
    what = describe_event(letter.event)
    if dry_run:
        return Replay(queue.name, message.message_id, "would replay", what, letter.why), True
    invocation = queues.invoke(lambda_client, queue.function_name, letter.event)
    if not invocation.ok:
        error = invocation.payload if isinstance(invocation.payload, Mapping) else {}
        detail = _clip(
            f"{queue.function_name} failed again: {error.get('errorType', 'error')}: "
            f"{error.get('errorMessage', invocation.payload)}"
        )
        return Replay(queue.name, message.message_id, "failed", what, detail), True
    return (
        Replay(
            queue.name,
            message.message_id,
            "replayed",
            what,
            _summary(invocation.payload),
            result=invocation.payload,
        ),
        False,
    )


def _summary(result: Any) -> str:
    """The handler's own words for what it did (callback: action and reason; intake:
    its reason), else its result as JSON."""
    if isinstance(result, Mapping):
        words = [str(result[k]) for k in ("action", "reason") if result.get(k)]
        if words:
            return _clip(": ".join(words))
    return _clip(json.dumps(result, default=str))


def _clip(text: str) -> str:
    return text if len(text) <= _SUMMARY_LIMIT else text[: _SUMMARY_LIMIT - 1] + "…"
