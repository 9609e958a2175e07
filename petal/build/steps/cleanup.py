"""Build step CleanUp: release what the build made, close its record, on every path."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from petal.aws import ec2_builder
from petal.aws.ec2_builder import VolumeRelease
from petal.build.records import BuildRecord, iso, parse_iso
from petal.build.steps.failure import describe_failure, failure_message, public_error_name
from petal.build.table import BuildIdTaken, BuildTable
from petal.deployment_contract import MANAGED_VALUE, TAG_BUILD_ID, TAG_MANAGED
from petal.errors import CleanupPending
from petal.identifiers import BUILD_ID

# The error of an execution whose cleanup failed (the CleanupFailed state).
CLEANUP_FAILED: Final = "CleanupFailed"


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


@dataclass(frozen=True)
class _OwnedBuild:
    """The build record, when this execution owns it: only then is it updated."""

    build_id: str
    record: BuildRecord
    execution_arn: str


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
    failure = state.get("failure")
    build_id, record, owned = _build_of(table, state, execution, now)
    if owned is not None:
        _record_cleanup_started(table, owned, failure)

    instance_ids, volume_ids = _leftovers(ec2, state.get("resources") or {}, owned)
    removed = [
        f"terminated {i}" for i in ec2_builder.terminate_instances(ec2, sorted(instance_ids))
    ]
    removed += _release_volumes(ec2, sorted(volume_ids))

    started = _started_at(state.get("build") or {}, record, execution)
    duration = int((now - started).total_seconds()) if started else None
    if failure:
        outcome, error = _failed(failure, build_id, record, execution, duration, removed)
    else:
        outcome, error = _succeeded(state, build_id, duration, removed), None
    if owned is not None:
        _record_outcome(table, owned, outcome, error, now)
    return outcome


def record_cleanup_failure(
    event: Mapping[str, Any], *, table: BuildTable, now: datetime
) -> CleanupOutcome:
    """After the cleanup itself failed (its retries spent): close the record FAILED,
    naming the step that failed (cleanup, on the success path) and saying what is left,
    and release the lock. Only DynamoDB calls, so it works when the EC2 calls that broke
    the cleanup do not; the janitor and `petal build cancel` remove what is left."""
    state = event.get("state") or {}
    execution = event["execution"]
    failure = state.get("failure")
    build_id, record, owned = _build_of(table, state, execution, now)
    problem = state.get("cleanup_error") or {}
    reason = (
        f"{problem.get('Error') or 'CleanupFailed'}: "
        f"{failure_message(str(problem.get('Cause') or '')) or '(no details)'}"
    )
    left = (
        f"The cleanup then failed ({reason}); the builder instance and volume tagged "
        f"petal:build-id={build_id} may remain: the janitor's next run removes them, or "
        f"`petal build cancel {build_id}` now."
    )
    if failure:
        step, error_name, cause = describe_failure(failure, build_id or "(none)", record)
        cause = f"{cause} {left}"
    else:
        step, error_name = "cleanup", CLEANUP_FAILED
        cause = f"Build {build_id} failed in step cleanup ({CLEANUP_FAILED}): {left}"
    started = _started_at(state.get("build") or {}, record, execution)
    outcome = CleanupOutcome(
        build_id=build_id or str(execution.get("name", "")),
        status="FAILED",
        snapshot_id=None,
        error=CLEANUP_FAILED,
        cause=cause,
        failed_step=step,
        duration_seconds=int((now - started).total_seconds()) if started else None,
        removed=(),
    )
    if owned is not None and owned.record.status == "RUNNING":
        _record_outcome(
            table, owned, outcome, {"step": step, "error": error_name, "cause": cause}, now
        )
        table.update_build(
            owned.build_id,
            {},
            execution_arn=owned.execution_arn,
            append_note=f"cleanup failed {iso(now)}: {reason}",
        )
    return outcome


def reclaim(record: BuildRecord, *, ec2: Any, table: BuildTable) -> tuple[str, ...]:
    """Remove what a finished build left (its cleanup failed) and release its lock,
    leaving its status as it is: for `petal build cancel` on such a build. Raises
    CleanupPending while a volume detaches, like the cleanup."""
    if not record.execution_arn:
        return ()
    owned = _OwnedBuild(record.build_id, record, record.execution_arn)
    instance_ids, volume_ids = _leftovers(ec2, {}, owned)
    removed = [
        f"terminated {i}" for i in ec2_builder.terminate_instances(ec2, sorted(instance_ids))
    ]
    removed += _release_volumes(ec2, sorted(volume_ids))
    if record.fingerprint and record.os and record.architecture:
        table.release_lock(
            record.fingerprint, record.os, record.architecture, execution_arn=owned.execution_arn
        )
    return tuple(removed)


def _record_without_prepare(
    table: BuildTable,
    build_id: str,
    state: Mapping[str, Any],
    execution: Mapping[str, Any],
    now: datetime,
) -> BuildRecord | None:
    """Create the RUNNING record Prepare did not write; the cleanup then closes it as
    any other. Conditional: an existing record (another execution's build with this
    id) is never overwritten, and is not ours to touch (None then)."""
    request = state.get("request") or {}
    request = request if isinstance(request, Mapping) else {}
    started = _started_at({}, None, execution) or now
    source = request.get("seed_uri") or request.get("source") or "inline seed"
    record = BuildRecord(
        build_id=build_id,
        status="RUNNING",
        started_at=iso(started),
        seed_source=str(source) if isinstance(source, str) else None,
        os=request.get("os") if isinstance(request.get("os"), str) else None,
        architecture=(
            request.get("architecture") if isinstance(request.get("architecture"), str) else None
        ),
        step="prepare",
        execution_arn=str(execution["arn"]),
    )
    try:
        table.create_build(record)
    except BuildIdTaken:
        existing = table.get_build(build_id)
        return existing if existing and existing.execution_arn == execution["arn"] else None
    return record


def _owned(
    build_id: str | None, record: BuildRecord | None, execution: Mapping[str, Any]
) -> _OwnedBuild | None:
    if build_id and record is not None and record.execution_arn == execution["arn"]:
        return _OwnedBuild(build_id, record, str(execution["arn"]))
    return None


def _record_cleanup_started(
    table: BuildTable, owned: _OwnedBuild, failure: Mapping[str, Any] | None
) -> None:
    if owned.record.status != "RUNNING":
        return
    values: dict[str, Any] = {"step": "cleanup"}
    if failure:
        # Recorded now, not only at the end, so a watcher knows which step failed
        # while the cleanup runs.
        step, error_name, cause = describe_failure(failure, owned.build_id, owned.record)
        values["error"] = {"step": step, "error": error_name, "cause": cause}
    table.update_build(owned.build_id, values, execution_arn=owned.execution_arn)


def _leftovers(
    ec2: Any, resources: Mapping[str, Any], owned: _OwnedBuild | None
) -> tuple[set[str], set[str]]:
    """(instance ids, volume ids) the build may have left behind.

    The record and the tags are searched only for this execution's build: another
    execution's resources under the same build id are not ours to remove.
    """
    instance_ids = _ids(resources.get("instance_id"))
    volume_ids = _ids(resources.get("volume_id"))
    if owned is None:
        return instance_ids, volume_ids
    tags = {TAG_BUILD_ID: owned.build_id, TAG_MANAGED: MANAGED_VALUE}
    instance_ids |= _ids(
        owned.record.instance_id, *(i.instance_id for i in ec2_builder.find_instances(ec2, tags))
    )
    volume_ids |= _ids(
        owned.record.volume_id,
        *(v.volume_id for v in ec2_builder.find_volumes(ec2, tags) if v.state != "deleting"),
    )
    return instance_ids, volume_ids


def _ids(*candidates: Any) -> set[str]:
    return {str(candidate) for candidate in candidates if candidate}


def _release_volumes(ec2: Any, volume_ids: Sequence[str]) -> list[str]:
    """What was deleted; raises CleanupPending while a volume cannot be deleted yet."""
    removed: list[str] = []
    pending: list[str] = []
    for volume_id in volume_ids:
        view = ec2_builder.describe_volume(ec2, volume_id)
        if view is None:
            continue
        released = ec2_builder.release_volume(ec2, view)
        if released is VolumeRelease.DELETED:
            removed.append(f"deleted {volume_id}")
        elif released is VolumeRelease.DETACHING:
            pending.append(f"{volume_id} (detaching)")
        elif released is VolumeRelease.WAITING:
            pending.append(f"{volume_id} ({view.state})")
    if pending:
        raise CleanupPending(
            f"waiting for volume(s) {', '.join(pending)} to be released before deleting them"
        )
    return removed


def _failed(
    failure: Mapping[str, Any],
    build_id: str | None,
    record: BuildRecord | None,
    execution: Mapping[str, Any],
    duration: int | None,
    removed: Sequence[str],
) -> tuple[CleanupOutcome, dict[str, Any]]:
    """The outcome, and the error for the record (which keeps the reserved error name)."""
    step, error_name, cause = describe_failure(failure, build_id or "(none)", record)
    outcome = CleanupOutcome(
        build_id=build_id or str(execution.get("name", "")),
        status="FAILED",
        snapshot_id=None,
        error=public_error_name(error_name),
        cause=cause,
        failed_step=step,
        duration_seconds=duration,
        removed=tuple(removed),
    )
    return outcome, {"step": step, "error": error_name, "cause": cause}


def _succeeded(
    state: Mapping[str, Any], build_id: str | None, duration: int | None, removed: Sequence[str]
) -> CleanupOutcome:
    return CleanupOutcome(
        build_id=build_id or "",
        status="SUCCEEDED",
        snapshot_id=str((state.get("snapshot") or {}).get("snapshot_id") or "") or None,
        error=None,
        cause=None,
        failed_step=None,
        duration_seconds=duration,
        removed=tuple(removed),
    )


def _record_outcome(
    table: BuildTable,
    owned: _OwnedBuild,
    outcome: CleanupOutcome,
    error: dict[str, Any] | None,
    now: datetime,
) -> None:
    """Release the build's lock and close its record."""
    record = owned.record
    if record.fingerprint and record.os and record.architecture:
        table.release_lock(
            record.fingerprint,
            record.os,
            record.architecture,
            execution_arn=owned.execution_arn,
        )
    values: dict[str, Any] = {
        "status": outcome.status,
        "finished_at": iso(now),
        "duration_seconds": outcome.duration_seconds,
        "step": "done" if outcome.status == "SUCCEEDED" else outcome.failed_step,
    }
    if outcome.snapshot_id:
        values["snapshot_id"] = outcome.snapshot_id
    if error is not None:
        values["error"] = error
    table.update_build(owned.build_id, values, execution_arn=owned.execution_arn)


def _build_of(
    table: BuildTable, state: Mapping[str, Any], execution: Mapping[str, Any], now: datetime
) -> tuple[str | None, BuildRecord | None, _OwnedBuild | None]:
    """The build this execution is, its record and whether the record is this
    execution's. Prepare may have failed before writing the record (a bad request, a
    crash, a time-out): every execution that started gets a record of how it ended."""
    build_id = _cleanup_build_id(state, execution)
    record = table.get_build(build_id) if build_id else None
    if record is None and build_id and state.get("failure"):
        record = _record_without_prepare(table, build_id, state, execution, now)
    return build_id, record, _owned(build_id, record, execution)


def _cleanup_build_id(state: Mapping[str, Any], execution: Mapping[str, Any]) -> str | None:
    candidates = [
        (state.get("build") or {}).get("build_id"),
        (state.get("request") or {}).get("build_id"),
        execution.get("name"),
    ]
    for candidate in candidates:
        if isinstance(candidate, str) and BUILD_ID.match(candidate):
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
