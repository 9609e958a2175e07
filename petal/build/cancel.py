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
from petal.build.records import FINISHED, BuildRecord, iso
from petal.build.steps.cleanup import cleanup
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
    if record.status in FINISHED or not record.execution_arn:
        return CancelOutcome(record.build_id, record.status, False, ())
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
            return CancelOutcome(latest.build_id, latest.status, False, ())
        record = latest or record
    step = record.step or "prepare"
    event = {
        "state": {
            "build": {"build_id": record.build_id},
            "failure": {step: {"Error": CANCELLED_ERROR, "Cause": "cancelled by the user"}},
        },
        "execution": {"arn": arn, "name": record.build_id},
    }
    removed: tuple[str, ...] = ()
    pending: str | None = None
    for attempt in range(CLEANUP_ATTEMPTS):
        try:
            removed = cleanup(event, ec2=ec2, table=table, now=clock()).removed
            break
        except CleanupPending as waiting:
            if attempt == CLEANUP_ATTEMPTS - 1:
                pending = f"{waiting}; the janitor deletes them within the hour"
            else:
                sleep(CLEANUP_RETRY_SECONDS)
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
    return CancelOutcome(record.build_id, "CANCELLED", stopped, tuple(removed), pending)
