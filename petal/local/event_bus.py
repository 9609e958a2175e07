"""EventBridge, as petal's rules use it: events delivered to the real handlers, later.

The stack's rules send SSM command status changes and EC2 state changes of builders
to callback, S3 "Object Created" of seeds to intake. Here the emulator builds the
same events and `EventBus` hands them to a handler on its own thread, as EventBridge
invokes a function asynchronously: the sender never sees the handler's result.
"""

from __future__ import annotations

import queue
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from petal.deployment_contract import (
    CALLBACK_FUNCTION,
    MANAGED_VALUE,
    ROLE_BUILDER,
    TAG_MANAGED,
    TAG_ROLE,
)
from petal.local.deploy import ACCOUNT_ID

# (handler module, event, the handler's result or the exception it raised)
EventResult = tuple[str, dict[str, Any], Any]


class EventBus:
    """Delivers queued events one at a time, recording what each one led to."""

    def __init__(
        self, invoke: Callable[[str, Any], dict[str, Any]], results: list[EventResult]
    ) -> None:
        self._invoke = invoke
        self._results = results
        self._events: queue.Queue[tuple[str, dict[str, Any]] | None] = queue.Queue()
        self._pending = 0
        self._pending_lock = threading.Lock()

    def start(self) -> None:
        worker = threading.Thread(target=self._work, name="local-eventbridge", daemon=True)
        worker.start()

    def close(self) -> None:
        """Let the worker end once the events queued so far are delivered."""
        self._events.put(None)

    def deliver(self, module: str, event: dict[str, Any]) -> None:
        """Queue an event for a function; returns at once."""
        with self._pending_lock:
            self._pending += 1
        self._events.put((module, event))

    def idle(self) -> bool:
        """Every event queued so far has been handled."""
        with self._pending_lock:
            return self._pending == 0

    def _work(self) -> None:
        while True:
            item = self._events.get()
            if item is None:
                return
            module, event = item
            try:
                try:
                    outcome: Any = self._invoke(module, event)
                except Exception as error:  # EventBridge would retry; tests look at it
                    outcome = error
                self._results.append((module, event, outcome))
            finally:
                with self._pending_lock:
                    self._pending -= 1


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
