"""The janitor: a scheduled sweep for what builds left behind.

`StopExecution` runs no Catch, and a cleanup can fail: then a builder instance, a
software volume, a lock, and a record saying RUNNING remain. The janitor removes
builder instances and volumes (found by petal's tags) older than the build timeout
plus a margin whose build's execution is not RUNNING, releases those builds' locks,
closes their records (CANCELLED for a stopped execution, FAILED otherwise) and notes
what it did on each record.

First, though, it reconciles: a build waits in its bootstrap task for the callback,
which only an event starts. Should that event be lost (or still wait in a dead-letter
queue), the build would wait for its heartbeat to time out, or, with a heartbeat from
a stuck agent, for its whole timeout. So every sweep looks at each RUNNING build in its
bootstrap and asks AWS itself, needing no event: is the builder gone (stopping,
terminated, or no longer known to EC2)? has the command ended (GetCommandInvocation)?
If so it completes or fails the task through the callback's own functions
(petal.build.callbacks), which claim the task token once: whichever of the event and
the reconciler comes second changes nothing. No build then waits longer than the
janitor's period after its command ended, even if every event is lost.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

from petal.aws import ec2_builder, step_functions
from petal.aws.ec2_builder import VolumeRelease
from petal.aws.errors import aws_call
from petal.aws.ssm_commands import command_invocation
from petal.build.callbacks import (
    FAILURE_ERRORS,
    GONE_STATES,
    SUCCESS,
    CallbackResult,
    TailReader,
    fail_for_lost_builder,
    on_command_status,
    on_instance_state,
)
from petal.build.records import (
    BuildFailure,
    BuildRecord,
    iso,
    parse_iso,
    record_of_ended_execution,
)
from petal.build.steps.failure import describe_failure
from petal.build.table import BuildIdTaken, BuildTable
from petal.deployment_contract import (
    MANAGED_VALUE,
    ROLE_BUILDER,
    ROLE_VOLUME,
    TAG_BUILD_ID,
    TAG_MANAGED,
    TAG_ROLE,
)
from petal.errors import PetalStepError
from petal.identifiers import BUILD_ID

# Beyond the build timeout: the ready checks, the snapshot and cleanup take time too.
MARGIN: Final = timedelta(hours=1)
# How far back the janitor looks for executions that ended without a record: several of
# its runs, so one that failed or was skipped loses nothing.
UNRECORDED_WINDOW: Final = timedelta(days=2)


@dataclass
class JanitorReport:
    terminated_instances: list[str] = field(default_factory=list)
    detached_volumes: list[str] = field(default_factory=list)
    deleted_volumes: list[str] = field(default_factory=list)
    released_locks: list[str] = field(default_factory=list)
    closed_builds: list[str] = field(default_factory=list)
    # "<build id>: <callback action> (<reason>)" for each bootstrap the reconciler ended.
    reconciled: list[str] = field(default_factory=list)
    # Builds the reconciler could not look at (an AWS call failed): the next sweep tries.
    reconcile_errors: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, list[str]]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Reconciler:
    """What the reconciler uses beyond the sweep's clients: SSM (the command's status),
    the build log's tail (for a failure's cause, as the callback reads it) and the name
    of petal's bootstrap document."""

    ssm: Any
    read_tail: TailReader
    document_name: str


def sweep(
    *,
    ec2: Any,
    sfn: Any,
    table: BuildTable,
    now: datetime,
    max_age: timedelta,
    reconciler: Reconciler | None = None,
    state_machine_arn: str | None = None,
) -> JanitorReport:
    janitor = _Sweep(ec2, sfn, table, now, max_age, _ExecutionCache(sfn, table))
    if reconciler is not None:
        # First: a build it ends moves on to its own cleanup, which the rest of the
        # sweep then leaves alone (its execution is still RUNNING).
        janitor.reconcile(reconciler)
    janitor.terminate_instances()
    janitor.release_volumes()
    janitor.release_locks()
    janitor.close_records()
    if state_machine_arn is not None:
        janitor.record_unrecorded(state_machine_arn)
    janitor.delete_detached_volumes()
    return janitor.report


class _Sweep:
    """One sweep: what it found, kept and did goes into `report`."""

    def __init__(
        self,
        ec2: Any,
        sfn: Any,
        table: BuildTable,
        now: datetime,
        max_age: timedelta,
        running: _ExecutionCache,
    ) -> None:
        self._ec2 = ec2
        self._sfn = sfn
        self._table = table
        self._now = now
        self._max_age = max_age
        self._cutoff = now - max_age
        self._running = running
        self.report = JanitorReport()

    def reconcile(self, reconciler: Reconciler) -> None:
        for record in self._table.running_builds():
            # Only a build waiting in its bootstrap task has a token to complete.
            if record.step != "bootstrap" or not record.command_id:
                continue
            token = self._table.get_token(record.command_id)
            if token is None:
                continue  # not parked yet: the bootstrap step itself is still running
            try:
                result = self._reconcile_one(record, token.instance_id, reconciler)
            except PetalStepError as problem:
                self.report.reconcile_errors.append(f"{record.build_id}: {problem}")
                continue
            if result is not None and result.action in ("succeeded", "failed"):
                self.report.reconciled.append(
                    f"{record.build_id}: {result.action} ({result.reason})"
                )
                self._table.update_build(
                    record.build_id,
                    {},
                    append_note=(
                        f"janitor {iso(self._now)}: no event had ended the bootstrap; "
                        f"{result.action} it ({result.reason})"
                    ),
                )

    def _reconcile_one(
        self, record: BuildRecord, token_instance: str, reconciler: Reconciler
    ) -> CallbackResult | None:
        command_id = str(record.command_id)
        instance_id = record.instance_id or token_instance
        instance = ec2_builder.describe_instance(self._ec2, instance_id) if instance_id else None
        if instance is None:
            return self._builder_vanished(record, instance_id)
        if instance.state in GONE_STATES:
            # The builder's own state first: its command then fails too, but as a
            # consequence; the callback would have had the instance's event first.
            return on_instance_state(
                {"instance-id": instance_id, "state": instance.state},
                table=self._table,
                sfn=self._sfn,
                ec2=self._ec2,
                now=self._now,
            )
        invocation = command_invocation(reconciler.ssm, command_id, instance_id)
        if invocation is None or (
            invocation.status != SUCCESS and invocation.status not in FAILURE_ERRORS
        ):
            return None  # still running (or not yet known to SSM): the task waits
        # The event the callback would have had, from SSM's own answer.
        detail = {
            "command-id": command_id,
            "instance-id": instance_id,
            "document-name": reconciler.document_name,
            "status": invocation.status,
            "status-details": invocation.status_details,
        }
        return on_command_status(
            detail,
            table=self._table,
            sfn=self._sfn,
            ec2=self._ec2,
            read_tail=reconciler.read_tail,
            document_name=reconciler.document_name,
            now=self._now,
        )

    def _builder_vanished(self, record: BuildRecord, instance_id: str) -> CallbackResult | None:
        """EC2 no longer knows the builder (terminated over an hour ago): no state
        event can be derived for the callback, so fail the task as it would have."""
        what = f"{instance_id or '(unknown)'} no longer exists"
        return fail_for_lost_builder(
            self._table, self._sfn, record, what, "instance:vanished", self._now
        )

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
                self.report.detached_volumes.append(volume.volume_id)
                self._note(build_id, f"detached {volume.volume_id}")
            elif released is VolumeRelease.DELETED:
                self.report.deleted_volumes.append(volume.volume_id)
                self._note(build_id, f"deleted {volume.volume_id}")

    def delete_detached_volumes(self) -> None:
        """One more look, after the locks and records, at the volumes this sweep
        detached: one already free is deleted now, the rest on the next sweep (the
        janitor never waits)."""
        for volume_id in self.report.detached_volumes:
            view = ec2_builder.describe_volume(self._ec2, volume_id)
            if view is None or view.attached_to or view.state not in ("available", "error"):
                continue
            if ec2_builder.release_volume(self._ec2, view) is VolumeRelease.DELETED:
                self.report.deleted_volumes.append(volume_id)
                self._note(view.tags.get(TAG_BUILD_ID, ""), f"deleted {volume_id}")

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
            known = record.error or _failure_in_history(self._sfn, record)
            if known is not None:
                # The cleanup had recorded which step failed before it failed itself:
                # that step, and its reason, are what the build's owner needs.
                failure = BuildFailure(
                    step=known.step, error=known.error, cause=f"{known.cause} Then {cause}."
                )
            self._table.update_build(
                record.build_id,
                {"status": closed, "finished_at": iso(self._now), "error": failure.__dict__},
                only_if_running=True,
                append_note=f"janitor {iso(self._now)}: closed as {closed}",
            )
            self.report.closed_builds.append(f"{record.build_id}: {closed}")

    def record_unrecorded(self, state_machine_arn: str) -> None:
        """Every execution that started has a record saying how it ended: one that
        ended before anything could write it (Prepare failed, then its cleanup failed
        too) gets it from the execution itself."""
        since = self._now - UNRECORDED_WINDOW
        for execution in step_functions.ended_executions(self._sfn, state_machine_arn, since):
            name = str(execution.get("name") or "")
            if not BUILD_ID.match(name) or self._table.get_build(name) is not None:
                continue
            record = record_of_ended_execution(name, execution, now=self._now)
            # The execution's own error names its last failure (a failed cleanup); the
            # history still holds the step that failed first, which the owner needs.
            record.error = _failure_in_history(self._sfn, record) or record.error
            record.notes.append(f"janitor {iso(self._now)}: recorded from its execution")
            try:
                self._table.create_build(record)
            except BuildIdTaken:
                continue  # written meanwhile, by the execution's own cleanup
            self.report.closed_builds.append(f"{name}: {record.status} (recorded)")

    def _keeps(self, what: str, build_id: str, created: datetime | None) -> bool:
        """Whether a resource stays (and why, in the report): too young, or in use."""
        what = f"{what} (build {build_id or '?'})"
        status = self._running.build_status(build_id) if build_id else None
        if status is not None and status != "RUNNING":
            # Its build's execution has ended (a failed cleanup, a stopped execution):
            # nothing will use it again, so it goes now, whatever its age.
            return False
        if created is not None and created > self._cutoff:
            self.report.kept.append(f"{what}: younger than {self._max_age}")
            return True
        if status == "RUNNING":
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

    def build_status(self, build_id: str) -> str | None:
        """The status of the build's recorded execution. None when unknown (no record
        yet, an execution being started): such resources wait for the age cut-off."""
        record = self._table.get_build(build_id)
        if record is None or not record.execution_arn:
            return None
        return self.status(record.execution_arn)


# The states whose input carries $.failure once a step has failed (newest first).
_FAILURE_STATES: Final = ("ExplainCleanupFailure", "CleanUpRecordFailure", "CleanUpAfterFailure")
_CLEANUP_STATES: Final = ("CleanUp",)


def _failure_in_history(sfn: Any, record: BuildRecord) -> BuildFailure | None:
    """Which step failed, from the execution's history: for a build whose cleanup
    failed before it could record even that. None if the history does not say."""
    if not record.execution_arn:
        return None
    with aws_call("Step Functions GetExecutionHistory"):
        events = sfn.get_execution_history(
            executionArn=record.execution_arn, reverseOrder=True, maxResults=50
        ).get("events", [])
    for event in events:
        entered = event.get("stateEnteredEventDetails") or {}
        name = entered.get("name")
        if name in _CLEANUP_STATES:
            return BuildFailure(
                step="cleanup",
                error="CleanupFailed",
                cause=f"Build {record.build_id} failed in step cleanup (CleanupFailed): the "
                "snapshot was taken but the cleanup failed.",
            )
        if name not in _FAILURE_STATES:
            continue
        try:
            state = json.loads(entered.get("input") or "{}")
        except ValueError:
            return None
        failure = state.get("failure") if isinstance(state, dict) else None
        if isinstance(failure, dict) and failure:
            step, error, cause = describe_failure(failure, record.build_id, record)
            return BuildFailure(step=step, error=error, cause=cause)
    return None
