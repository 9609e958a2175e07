"""Build step CleanUp: release what the build made, close its record, on every path."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from petal.aws import ec2_builder
from petal.build.records import BuildRecord, iso, parse_iso
from petal.build.request import (
    BUILD_ID_PATTERN,
)
from petal.build.steps.failure import describe_failure, public_error_name
from petal.build.table import BuildTable
from petal.deployment_contract import (
    TAG_BUILD_ID,
    TAG_MANAGED,
)
from petal.errors import CleanupPending


@dataclass(frozen=True)
class CleanupOutcome:
    build_id: str
    status: str  # SUCCEEDED or FAILED
    snapshot_id: str | None
    error: str | None
    cause: str | None
    failed_step: str | None
    duration_seconds: int | None
    removed: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None and k != "removed"} | {
            "removed": list(self.removed)
        }


def cleanup(
    event: Mapping[str, Any],
    *,
    ec2: Any,
    table: BuildTable,
    now: datetime,
) -> CleanupOutcome:
    """Remove what the build created, release its lock, record the outcome.

    Idempotent: anything already gone is skipped, so a retry (CleanupPending while a
    volume detaches) or a second run by hand is safe. Resources are found from the
    state, the build record and the petal:build-id tag, so a step that failed between
    creating something and reporting it leaves nothing behind either.
    """
    state = event.get("state") or {}
    execution = event["execution"]
    build = state.get("build") or {}
    resources = state.get("resources") or {}
    failure = state.get("failure")
    build_id = _cleanup_build_id(state, execution)

    record = table.get_build(build_id) if build_id else None
    ours = record is not None and record.execution_arn == execution["arn"]
    if ours and build_id and record is not None and record.status == "RUNNING":
        values: dict[str, Any] = {"step": "cleanup"}
        if failure:
            # Recorded now, not only at the end, so a watcher knows which step failed
            # while the cleanup runs.
            step, error_name, cause = describe_failure(failure, build_id, record)
            values["error"] = {"step": step, "error": error_name, "cause": cause}
        table.update_build(build_id, values, execution_arn=str(execution["arn"]))
    instance_ids: set[str] = set()
    volume_ids: set[str] = set()
    if resources.get("instance_id"):
        instance_ids.add(str(resources["instance_id"]))
    if resources.get("volume_id"):
        volume_ids.add(str(resources["volume_id"]))
    if ours and record is not None and build_id:
        instance_ids.update(i for i in (record.instance_id,) if i)
        volume_ids.update(v for v in (record.volume_id,) if v)
        tags = {TAG_BUILD_ID: build_id, TAG_MANAGED: ec2_builder.MANAGED}
        instance_ids.update(i.instance_id for i in ec2_builder.find_instances(ec2, tags))
        volume_ids.update(
            v.volume_id for v in ec2_builder.find_volumes(ec2, tags) if v.state != "deleting"
        )

    removed = [
        f"terminated {i}" for i in ec2_builder.terminate_instances(ec2, sorted(instance_ids))
    ]
    pending: list[str] = []
    for volume_id in sorted(volume_ids):
        view = ec2_builder.describe_volume(ec2, volume_id)
        if view is None or view.state in ("deleting", "deleted"):
            continue
        if view.attached_to:
            for instance_id in view.attached_to:
                # The volume is discarded: a forced detach cannot hurt it.
                ec2_builder.detach_volume(ec2, volume_id, instance_id, force=True)
            pending.append(f"{volume_id} (detaching)")
        elif view.state in ("available", "error"):
            ec2_builder.delete_volume(ec2, volume_id)
            removed.append(f"deleted {volume_id}")
        else:
            pending.append(f"{volume_id} ({view.state})")
    if pending:
        raise CleanupPending(
            f"waiting for volume(s) {', '.join(pending)} to be released before deleting them"
        )

    started = _started_at(build, record, execution)
    duration = int((now - started).total_seconds()) if started else None
    failed_error: str | None = None
    if failure:
        step, failed_error, cause = describe_failure(failure, build_id or "(none)", record)
        outcome = CleanupOutcome(
            build_id=build_id or str(execution.get("name", "")),
            status="FAILED",
            snapshot_id=None,
            error=public_error_name(failed_error),
            cause=cause,
            failed_step=step,
            duration_seconds=duration,
            removed=tuple(removed),
        )
    else:
        outcome = CleanupOutcome(
            build_id=build_id or "",
            status="SUCCEEDED",
            snapshot_id=str((state.get("snapshot") or {}).get("snapshot_id") or "") or None,
            error=None,
            cause=None,
            failed_step=None,
            duration_seconds=duration,
            removed=tuple(removed),
        )

    if ours and record is not None and build_id:
        if record.fingerprint and record.os and record.architecture:
            table.release_lock(
                record.fingerprint,
                record.os,
                record.architecture,
                execution_arn=str(execution["arn"]),
            )
        values = {
            "status": outcome.status,
            "finished_at": iso(now),
            "duration_seconds": duration,
            "step": "done" if outcome.status == "SUCCEEDED" else outcome.failed_step,
        }
        if outcome.snapshot_id:
            values["snapshot_id"] = outcome.snapshot_id
        if outcome.status == "FAILED":
            values["error"] = {
                "step": outcome.failed_step,
                "error": failed_error,
                "cause": outcome.cause,
            }
        table.update_build(build_id, values, execution_arn=str(execution["arn"]))
    return outcome


def _cleanup_build_id(state: Mapping[str, Any], execution: Mapping[str, Any]) -> str | None:
    candidates = [
        (state.get("build") or {}).get("build_id"),
        (state.get("request") or {}).get("build_id"),
        execution.get("name"),
    ]
    for candidate in candidates:
        if isinstance(candidate, str) and BUILD_ID_PATTERN.match(candidate):
            return candidate
    return None


def _started_at(
    build: Mapping[str, Any], record: BuildRecord | None, execution: Mapping[str, Any]
) -> datetime | None:
    for text in (build.get("started_at"), record.started_at if record else None):
        if isinstance(text, str):
            try:
                return parse_iso(text)
            except ValueError:
                pass
    start = execution.get("start_time")
    if isinstance(start, str):
        try:
            return datetime.fromisoformat(start.replace("Z", "+00:00"))
        except ValueError:
            return None
    return None
