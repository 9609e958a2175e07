"""The janitor: a scheduled sweep for what builds left behind.

`StopExecution` runs no Catch, and a cleanup can fail: then a builder instance, a
software volume, a lock, and a record saying RUNNING remain. The janitor removes
builder instances and volumes (found by petal's tags) older than the build timeout
plus a margin whose build's execution is not RUNNING, releases those builds' locks,
closes their records (CANCELLED for a stopped execution, FAILED otherwise) and notes
what it did on each record.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

from petal.aws import ec2_builder, step_functions
from petal.build.records import BuildFailure, iso, parse_iso
from petal.build.table import BuildTable
from petal.deployment_contract import (
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

    @property
    def acted(self) -> bool:
        return any(
            (
                self.terminated_instances,
                self.detached_volumes,
                self.deleted_volumes,
                self.released_locks,
                self.closed_builds,
            )
        )


def sweep(
    *,
    ec2: Any,
    sfn: Any,
    table: BuildTable,
    now: datetime,
    max_age: timedelta,
) -> JanitorReport:
    report = JanitorReport()
    owner_running = _ExecutionCache(sfn, table)
    cutoff = now - max_age

    for instance in ec2_builder.find_instances(
        ec2, {TAG_MANAGED: ec2_builder.MANAGED, TAG_ROLE: ROLE_BUILDER}
    ):
        build_id = instance.tags.get(TAG_BUILD_ID, "")
        what = f"instance {instance.instance_id} (build {build_id or '?'})"
        if instance.state == "shutting-down":
            continue
        if instance.launch_time is not None and instance.launch_time > cutoff:
            report.kept.append(f"{what}: younger than {max_age}")
            continue
        if build_id and owner_running(build_id):
            report.kept.append(f"{what}: its build is running")
            continue
        ec2_builder.terminate_instances(ec2, [instance.instance_id])
        report.terminated_instances.append(instance.instance_id)
        _note(table, build_id, f"janitor {iso(now)}: terminated {instance.instance_id}")

    for volume in ec2_builder.find_volumes(
        ec2, {TAG_MANAGED: ec2_builder.MANAGED, TAG_ROLE: ROLE_VOLUME}
    ):
        build_id = volume.tags.get(TAG_BUILD_ID, "")
        what = f"volume {volume.volume_id} (build {build_id or '?'})"
        if volume.state in ("deleting", "deleted"):
            continue
        if volume.create_time is not None and volume.create_time > cutoff:
            report.kept.append(f"{what}: younger than {max_age}")
            continue
        if build_id and owner_running(build_id):
            report.kept.append(f"{what}: its build is running")
            continue
        if volume.attached_to:
            for instance_id in volume.attached_to:
                ec2_builder.detach_volume(ec2, volume.volume_id, instance_id, force=True)
            # Deleted on the next sweep, once detached: the janitor never waits.
            report.detached_volumes.append(volume.volume_id)
            _note(table, build_id, f"janitor {iso(now)}: detached {volume.volume_id}")
            continue
        if volume.state in ("available", "error"):
            ec2_builder.delete_volume(ec2, volume.volume_id)
            report.deleted_volumes.append(volume.volume_id)
            _note(table, build_id, f"janitor {iso(now)}: deleted {volume.volume_id}")

    for key, holder in list(table.locks()):
        if owner_running.execution(holder.execution_arn):
            continue
        if table.delete_lock_item(key, execution_arn=holder.execution_arn):
            report.released_locks.append(f"{key['pk']} (build {holder.build_id})")
            _note(table, holder.build_id, f"janitor {iso(now)}: released its lock")

    for record in table.running_builds():
        if not record.execution_arn or owner_running.execution(record.execution_arn):
            continue
        started = parse_iso(record.started_at)
        if started > cutoff and owner_running.status(record.execution_arn) is None:
            continue  # an execution being started right now
        status = owner_running.status(record.execution_arn)
        closed = "CANCELLED" if status == "ABORTED" else "FAILED"
        cause = (
            f"the build's execution ended as {status or 'unknown'} without cleaning up "
            f"(last step: {record.step}); the janitor removed what it left behind"
        )
        table.update_build(
            record.build_id,
            {
                "status": closed,
                "finished_at": iso(now),
                "error": BuildFailure(
                    step=record.step or "unknown", error=f"Execution{closed.title()}", cause=cause
                ).__dict__,
            },
            only_if_running=True,
            append_note=f"janitor {iso(now)}: closed as {closed}",
        )
        report.closed_builds.append(f"{record.build_id}: {closed}")
    return report


def _note(table: BuildTable, build_id: str, note: str) -> None:
    if build_id:
        table.update_build(build_id, {}, append_note=note)


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


JanitorClock = Callable[[], datetime]
