"""Cancel a build: stop its execution, then do the cleanup the execution will not do.

StopExecution runs no Catch handler, so the state machine's Cleanup state never runs
for a stopped build. Cancelling therefore runs the same cleanup logic itself (the one
the Cleanup state runs), then closes the record as CANCELLED.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from petal.aws import step_functions
from petal.build.records import FINISHED, SUCCESSFUL, BuildRecord, iso
from petal.build.steps.cleanup import cleanup, reclaim
from petal.build.table import BuildTable
from petal.errors import CleanupPending

CANCELLED_ERROR: Final = "BuildCancelled"
# Detaching a volume takes seconds; the cleanup is retried this often before the
# janitor is left to finish it.
CLEANUP_ATTEMPTS: Final = 30
CLEANUP_RETRY_SECONDS: Final = 2.0


@dataclass(frozen=True)
class CancelOutcome:
    build_id: str
    status: str  # the record's status afterwards
    stopped_execution: bool
    removed: tuple[str, ...]
    pending: str | None = None  # what the janitor will finish, if anything

    def to_json(self) -> dict[str, Any]:
        return {
            "build_id": self.build_id,
            "status": self.status,
            "stopped_execution": self.stopped_execution,
            "removed": list(self.removed),
            "pending": self.pending,
        }

    def lines(self) -> list[str]:
        if not self.stopped_execution and not self.removed and self.pending is None:
            return [f"Build {self.build_id} had already finished ({self.status.lower()})."]
        if self.status != "CANCELLED":
            # Finished before: what its failed cleanup had left was removed.
            lines = [
                f"Build {self.build_id} had already finished ({self.status.lower()}); "
                "removed what its cleanup left:"
            ]
        else:
            lines = [f"🛑 Cancelled build {self.build_id}"]
        lines += [f"   {item}" for item in self.removed]
        if self.pending:
            lines.append(f"   {self.pending}")
        return lines


def cancel_build(
    record: BuildRecord,
    *,
    stepfunctions: Any,
    ec2: Any,
    table: BuildTable,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    sleep: Callable[[float], None] = time.sleep,
) -> CancelOutcome:
    if not record.execution_arn:
        return CancelOutcome(record.build_id, record.status, False, ())
    if record.status in FINISHED:
        return _reclaim_finished(record, ec2=ec2, table=table, sleep=sleep)
    arn = record.execution_arn
    stopped = False
    if step_functions.execution_status(stepfunctions, arn) == "RUNNING":
        stepfunctions.stop_execution(
            executionArn=arn, error=CANCELLED_ERROR, cause="cancelled with `petal build cancel`"
        )
        stopped = True
    else:
        # The execution ended after `record` was read: a build that finished on its
        # own is left as it is (its snapshot, its SUCCEEDED status), not cancelled.
        latest = table.get_build(record.build_id)
        if latest is not None and latest.status in FINISHED:
            return _reclaim_finished(latest, ec2=ec2, table=table, sleep=sleep)
        record = latest or record
    step = record.step or "prepare"
    event = {
        "state": {
            "build": {"build_id": record.build_id},
            "failure": {step: {"Error": CANCELLED_ERROR, "Cause": "cancelled by the user"}},
        },
        "execution": {"arn": arn, "name": record.build_id},
    }
    removed, pending = _retrying(
        lambda: cleanup(event, ec2=ec2, table=table, now=clock()).removed, sleep
    )
    table.update_build(
        record.build_id,
        {
            "status": "CANCELLED",
            "finished_at": iso(clock()),
            "error": {
                "step": step,
                "error": CANCELLED_ERROR,
                "cause": f"cancelled with `petal build cancel` during step {step}",
            },
        },
        execution_arn=arn,
        append_note=f"cancelled {iso(clock())}",
    )
    return CancelOutcome(record.build_id, "CANCELLED", stopped, removed, pending)


def _reclaim_finished(
    record: BuildRecord, *, ec2: Any, table: BuildTable, sleep: Callable[[float], None]
) -> CancelOutcome:
    """A finished build: its status stays. One that did not succeed may have ended
    with its cleanup failed, leaving its builder, volume or lock: those go now rather
    than at the janitor's next run."""
    if record.status in SUCCESSFUL:
        return CancelOutcome(record.build_id, record.status, False, ())
    removed, pending = _retrying(lambda: reclaim(record, ec2=ec2, table=table), sleep)
    if removed or pending:
        table.update_build(
            record.build_id,
            {},
            execution_arn=record.execution_arn,
            append_note=f"`petal build cancel` removed what its failed cleanup left: "
            f"{', '.join(removed) or 'nothing yet'}",
        )
    return CancelOutcome(record.build_id, record.status, False, removed, pending)


def _retrying(
    remove: Callable[[], tuple[str, ...]], sleep: Callable[[float], None]
) -> tuple[tuple[str, ...], str | None]:
    """(what `remove` removed, what the janitor will finish): retried while a volume
    detaches (this runs in the CLI, not in a Lambda)."""
    for attempt in range(CLEANUP_ATTEMPTS):
        try:
            return tuple(remove()), None
        except CleanupPending as waiting:
            if attempt == CLEANUP_ATTEMPTS - 1:
                return (), f"{waiting}; the janitor deletes them on its next run"
            sleep(CLEANUP_RETRY_SECONDS)
    return (), None
