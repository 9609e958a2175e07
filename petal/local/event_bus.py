"""EventBridge, as petal's rules use it: events delivered to the real handlers, later.

The stack's rules send SSM command status changes and EC2 state changes of builders
to callback, S3 "Object Created" of seeds to intake. Here the emulator builds the
same events and `EventBus` hands them to a handler on its own thread, as EventBridge
invokes a function asynchronously: the sender never sees the handler's result.

A handler that raises is run again, as Lambda runs a failed asynchronous invocation
twice more (stacks/dead_letters.py ASYNC_RETRY_ATTEMPTS), though here after the events
queued meanwhile rather than a minute or two later; after the last attempt the event
goes to the function's dead-letter queue as Lambda's on-failure destination record
(`on_failure_record`), where `petal admin redrive` finds it. A function without a
queue (log_heartbeat) loses it, as Lambda would. `drop(module)` makes the bus lose
every event for a function before it runs (the reconciler's tests: no event at all).
"""

from __future__ import annotations

import queue
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final

from petal.deployment_contract import (
    CALLBACK_FUNCTION,
    MANAGED_VALUE,
    ROLE_BUILDER,
    TAG_MANAGED,
    TAG_ROLE,
)
from petal.local.deploy import ACCOUNT_ID

# (handler module, event, the handler's result or the exception it raised, or DROPPED)
EventResult = tuple[str, dict[str, Any], Any]
# Lambda's attempts at an asynchronous invocation: the first and two retries.
MAX_ATTEMPTS: Final = 3
# Called with (module, event, the last error, attempts) once the attempts are used up.
DeadLetter = Callable[[str, dict[str, Any], BaseException, int], None]


class Dropped:
    """The outcome recorded for an event the bus was told to lose."""

    def __repr__(self) -> str:
        return "DROPPED"


DROPPED: Final = Dropped()


class EventBus:
    """Delivers queued events one at a time, recording what each one led to."""

    def __init__(
        self,
        invoke: Callable[[str, Any], dict[str, Any]],
        results: list[EventResult],
        dead_letter: DeadLetter | None = None,
    ) -> None:
        self._invoke = invoke
        self._results = results
        self._dead_letter = dead_letter
        self._events: queue.Queue[tuple[str, dict[str, Any], int] | None] = queue.Queue()
        self._pending = 0
        self._pending_lock = threading.Lock()
        self._dropped: set[str] = set()

    def drop(self, module: str) -> None:
        """Lose every event for `module` from now on: none reaches its handler."""
        self._dropped.add(module)

    def start(self) -> None:
        worker = threading.Thread(target=self._work, name="local-eventbridge", daemon=True)
        worker.start()

    def close(self) -> None:
        """Let the worker end once the events queued so far are delivered."""
        self._events.put(None)

    def deliver(self, module: str, event: dict[str, Any], attempt: int = 1) -> None:
        """Queue an event for a function; returns at once."""
        with self._pending_lock:
            self._pending += 1
        self._events.put((module, event, attempt))

    def invoke_now(self, module: str, event: dict[str, Any]) -> Any:
        """The first attempt on the caller's thread (for a test that wants its effect at
        once), the retries and the dead-letter queue as for `deliver`; never raises."""
        if module in self._dropped:
            self._results.append((module, event, DROPPED))
            return DROPPED
        return self._attempt(module, event, 1)

    def idle(self) -> bool:
        """Every event queued so far has been handled."""
        with self._pending_lock:
            return self._pending == 0

    def _work(self) -> None:
        while True:
            item = self._events.get()
            if item is None:
                return
            module, event, attempt = item
            try:
                if module in self._dropped:
                    self._results.append((module, event, DROPPED))
                else:
                    self._attempt(module, event, attempt)
            finally:
                with self._pending_lock:
                    self._pending -= 1

    def _attempt(self, module: str, event: dict[str, Any], attempt: int) -> Any:
        try:
            outcome: Any = self._invoke(module, event)
        except Exception as error:  # Lambda runs it again; tests look at it
            outcome = error
        self._results.append((module, event, outcome))
        if isinstance(outcome, Exception):
            if attempt < MAX_ATTEMPTS:
                self.deliver(module, event, attempt + 1)
            elif self._dead_letter is not None:
                self._dead_letter(module, event, outcome, attempt)
        return outcome


def on_failure_record(
    function_arn: str, event: dict[str, Any], error: BaseException, attempts: int
) -> dict[str, Any]:
    """What Lambda sends an on-failure destination once an asynchronous invocation's
    retries are used up: the event under requestPayload, the error under
    responsePayload."""
    return {
        "version": "1.0",
        "timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
        "requestContext": {
            "requestId": str(uuid.uuid4()),
            "functionArn": f"{function_arn}:$LATEST",
            "condition": "RetriesExhausted",
            "approximateInvokeCount": attempts,
        },
        "requestPayload": event,
        "responseContext": {
            "statusCode": 200,
            "executedVersion": "$LATEST",
            "functionError": "Unhandled",
        },
        "responsePayload": {
            "errorMessage": str(error),
            "errorType": type(error).__name__,
            "requestId": "",
            "stackTrace": [],
        },
    }


def _event(
    detail_type: str, source: str, region: str, resource: str, detail: dict[str, Any]
) -> dict[str, Any]:
    """The envelope EventBridge puts around every AWS service event."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": detail_type,
        "source": source,
        "account": ACCOUNT_ID,
        "time": _now_text(),
        "region": region,
        "resources": [resource],
        "detail": detail,
    }


def _instance_arn(instance_id: str, region: str) -> str:
    return f"arn:aws:ec2:{region}:{ACCOUNT_ID}:instance/{instance_id}"


def seed_created_event(
    bucket: str, key: str, size: int, put: dict[str, Any], region: str
) -> dict[str, Any]:
    """S3's "Object Created" for a seed PutObject (`put` is its response)."""
    obj = {
        "key": key,
        "size": size,
        "etag": str(put.get("ETag", "")).strip('"'),
        "version-id": put.get("VersionId"),
        "sequencer": uuid.uuid4().hex[:18].upper(),
    }
    detail = {
        "version": "0",
        "bucket": {"name": bucket},
        "object": obj,
        "request-id": uuid.uuid4().hex[:16].upper(),
        "requester": ACCOUNT_ID,
        "reason": "PutObject",
    }
    return _event("Object Created", "aws.s3", region, f"arn:aws:s3:::{bucket}", detail)


def command_status_event(
    command_id: str, instance_id: str, document_name: str, status: str, region: str
) -> dict[str, Any]:
    """SSM's "EC2 Command Invocation Status-change Notification", as EventBridge sends it."""
    detail = {
        "command-id": command_id,
        "document-name": document_name,
        "instance-id": instance_id,
        "requested-date-time": _now_text(),
        "status": status,
    }
    return _event(
        "EC2 Command Invocation Status-change Notification",
        "aws.ssm",
        region,
        _instance_arn(instance_id, region),
        detail,
    )


def ec2_state_event(instance_id: str, state: str, region: str) -> dict[str, Any]:
    """EC2's "Instance State-change Notification", as EventBridge sends it."""
    return _event(
        "EC2 Instance State-change Notification",
        "aws.ec2",
        region,
        _instance_arn(instance_id, region),
        {"instance-id": instance_id, "state": state},
    )


def builders_terminated(
    deliver: Callable[[str, dict[str, Any]], None], instance_ids: list[str], region: str
) -> None:
    """EventBridge's EC2 state-change events, for petal builders only, to callback."""
    from moto.ec2.models import ec2_backends

    backend = ec2_backends[ACCOUNT_ID][region]
    for instance_id in instance_ids:
        tags = backend.describe_tags(filters={"resource-id": [instance_id]})
        tag_map = {t["key"]: t["value"] for t in tags}
        if tag_map.get(TAG_MANAGED) != MANAGED_VALUE or tag_map.get(TAG_ROLE) != ROLE_BUILDER:
            continue
        for state in ("shutting-down", "terminated"):
            deliver(CALLBACK_FUNCTION, ec2_state_event(instance_id, state, region))


def _now_text() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
