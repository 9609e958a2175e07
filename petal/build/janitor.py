"""The janitor: a scheduled sweep for what builds left behind.

`StopExecution` runs no Catch, and a cleanup can fail: then a builder instance, a
software volume, a lock, and a record saying RUNNING remain. The janitor removes
builder instances and volumes (found by petal's tags) older than the build timeout
plus a margin whose build's execution is not RUNNING, releases those builds' locks,
closes their records (CANCELLED for a stopped execution, FAILED otherwise) and notes
what it did on each record.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

from petal.aws import ec2_builder, step_functions
from petal.aws.ec2_builder import VolumeRelease
from petal.build.records import BuildFailure, iso, parse_iso
from petal.build.table import BuildTable
from petal.deployment_contract import (
    MANAGED_VALUE,
    ROLE_BUILDER,
    ROLE_VOLUME,
    TAG_BUILD_ID,
    TAG_MANAGED,
    TAG_ROLE,
)

# Beyond the build timeout: the ready checks, the snapshot and cleanup take time too.
MARGIN: Final = timedelta(hours=1)


@dataclass
class JanitorReport:
    terminated_instances: list[str] = field(default_factory=list)
    detached_volumes: list[str] = field(default_factory=list)
    deleted_volumes: list[str] = field(default_factory=list)
    released_locks: list[str] = field(default_factory=list)
    closed_builds: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, list[str]]:
        return dict(self.__dict__)


def sweep(
    *,
    ec2: Any,
    sfn: Any,
    table: BuildTable,
    now: datetime,
    max_age: timedelta,
) -> JanitorReport:
    janitor = _Sweep(ec2, table, now, max_age, _ExecutionCache(sfn, table))
    janitor.terminate_instances()
    janitor.release_volumes()
    janitor.release_locks()
    janitor.close_records()
    return janitor.report


class _Sweep:
    """One sweep: what it found, kept and did goes into `report`."""

    def __init__(
        self,
        ec2: Any,
        table: BuildTable,
        now: datetime,
        max_age: timedelta,
        running: _ExecutionCache,
    ) -> None:
        self._ec2 = ec2
        self._table = table
        self._now = now
        self._max_age = max_age
        self._cutoff = now - max_age
        self._running = running
        self.report = JanitorReport()

    def terminate_instances(self) -> None:
        for instance in ec2_builder.find_instances(
            self._ec2, {TAG_MANAGED: MANAGED_VALUE, TAG_ROLE: ROLE_BUILDER}
        ):
            build_id = instance.tags.get(TAG_BUILD_ID, "")
            if instance.state == "shutting-down":
                continue
            what = f"instance {instance.instance_id}"
            if self._keeps(what, build_id, instance.launch_time):
                continue
            ec2_builder.terminate_instances(self._ec2, [instance.instance_id])
            self.report.terminated_instances.append(instance.instance_id)
            self._note(build_id, f"terminated {instance.instance_id}")

    def release_volumes(self) -> None:
        for volume in ec2_builder.find_volumes(
            self._ec2, {TAG_MANAGED: MANAGED_VALUE, TAG_ROLE: ROLE_VOLUME}
        ):
            build_id = volume.tags.get(TAG_BUILD_ID, "")
            if volume.gone or self._keeps(
                f"volume {volume.volume_id}", build_id, volume.create_time
            ):
                continue
            released = ec2_builder.release_volume(self._ec2, volume)
            if released is VolumeRelease.DETACHING:
                # Deleted on the next sweep, once detached: the janitor never waits.
                self.report.detached_volumes.append(volume.volume_id)
                self._note(build_id, f"detached {volume.volume_id}")
            elif released is VolumeRelease.DELETED:
                self.report.deleted_volumes.append(volume.volume_id)
                self._note(build_id, f"deleted {volume.volume_id}")

    def release_locks(self) -> None:
        for key, holder in list(self._table.locks()):
            if self._running.execution(holder.execution_arn):
                continue
            if self._table.delete_lock_item(key, execution_arn=holder.execution_arn):
                self.report.released_locks.append(f"{key['pk']} (build {holder.build_id})")
                self._note(holder.build_id, "released its lock")

    def close_records(self) -> None:
        for record in self._table.running_builds():
            if not record.execution_arn or self._running.execution(record.execution_arn):
                continue
            started = parse_iso(record.started_at)
            status = self._running.status(record.execution_arn)
            if started > self._cutoff and status is None:
                continue  # an execution being started right now
            closed = "CANCELLED" if status == "ABORTED" else "FAILED"
            cause = (
                f"the build's execution ended as {status or 'unknown'} without cleaning up "
                f"(last step: {record.step}); the janitor removed what it left behind"
            )
            failure = BuildFailure(
                step=record.step or "unknown", error=f"Execution{closed.title()}", cause=cause
            )
            self._table.update_build(
                record.build_id,
                {"status": closed, "finished_at": iso(self._now), "error": failure.__dict__},
                only_if_running=True,
                append_note=f"janitor {iso(self._now)}: closed as {closed}",
            )
            self.report.closed_builds.append(f"{record.build_id}: {closed}")

    def _keeps(self, what: str, build_id: str, created: datetime | None) -> bool:
        """Whether a resource stays (and why, in the report): too young, or in use."""
        what = f"{what} (build {build_id or '?'})"
        if created is not None and created > self._cutoff:
            self.report.kept.append(f"{what}: younger than {self._max_age}")
            return True
        if build_id and self._running(build_id):
            self.report.kept.append(f"{what}: its build is running")
            return True
        return False

    def _note(self, build_id: str, did: str) -> None:
        if build_id:
            self._table.update_build(build_id, {}, append_note=f"janitor {iso(self._now)}: {did}")


class _ExecutionCache:
    """Is a build's execution RUNNING? One DescribeExecution per execution per sweep."""

    def __init__(self, sfn: Any, table: BuildTable) -> None:
        self._sfn = sfn
        self._table = table
        self._statuses: dict[str, str | None] = {}

    def status(self, execution_arn: str) -> str | None:
        if execution_arn not in self._statuses:
            self._statuses[execution_arn] = (
                step_functions.execution_status(self._sfn, execution_arn) if execution_arn else None
            )
        return self._statuses[execution_arn]

    def execution(self, execution_arn: str) -> bool:
        return self.status(execution_arn) == "RUNNING"

    def __call__(self, build_id: str) -> bool:
        record = self._table.get_build(build_id)
        if record is None or not record.execution_arn:
            return False
        return self.execution(record.execution_arn)
