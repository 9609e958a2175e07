"""What each state of the build state machine does (statemachines/build.asl.json).

One function per Lambda step. They make no AWS calls of their own: the adapters
(petal.builder_ec2, petal.builder_ssm, petal.build_records) take the boto3 clients the
handler passes in, so the workflow tests hand in moto's. Inputs and results are the
JSON the state machine carries:

    $.request    the execution input (petal/schemas/build_request.schema.json)
    $.settings   numbers from DefinitionSubstitutions
    $.build      prepare's result: the build, its seed and variant
    $.resources  launch's result: instance and volume
    $.ready      check_ready's result: {ready, attempt}
    $.bootstrap  what the callback sent with SendTaskSuccess
    $.snapshot   snapshot/check_snapshot's result: {snapshot_id, completed, attempt}
    $.failure    {<step>: {Error, Cause}}, written by the Catch of the failed step
    $.outcome    cleanup's result
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from petal import builder_ec2, builder_ssm
from petal.aws_errors import (
    AwsRequestFailed,
    BuildAlreadyRunning,
    BuilderLost,
    BuilderNotReady,
    CleanupPending,
    InvalidBuildRequest,
    SnapshotFailed,
    SnapshotNotCompleted,
)
from petal.build_records import (
    BuildIdTaken,
    BuildRecord,
    BuildTable,
    iso,
    parse_iso,
)
from petal.build_request import (
    BUILD_ID_PATTERN,
    BuildRequestError,
    SeedReader,
    check_build_id,
    parse_build_request,
    resolve_seed,
)
from petal.deployment_contract import (
    TAG_ARCH,
    TAG_BUILD_ID,
    TAG_FINGERPRINT,
    TAG_MANAGED,
    TAG_OS,
    TAG_PACKAGES,
    TAG_SEED,
    TAG_SPACK_VERSION,
)
from petal.fingerprint import fingerprint
from petal.seed import SeedError
from petal.snapshot_description import format_description
from petal.spack_environment import render_spack_yaml
from petal.ssm_document import command_parameters

# SSM stops the bootstrap this long before the task's own timeout, so a timed-out
# install ends as a TimedOut command (with its log tail in the cause) rather than as an
# anonymous States.Timeout.
COMMAND_TIMEOUT_MARGIN_SECONDS: Final = 300
SSM_MAX_EXECUTION_TIMEOUT: Final = 172800
# A parked token outlives its task by this much (then DynamoDB's TTL removes it).
TOKEN_GRACE: Final = timedelta(days=1)
# A lock whose build vanished without cleanup (StopExecution) expires after the
# longest build could have run, plus this; the janitor usually releases it sooner.
LOCK_GRACE: Final = timedelta(hours=6)
# The bootstrap's heartbeat interval is this fraction of the task's HeartbeatSeconds:
# two heartbeats may be lost before the task times out.
HEARTBEATS_PER_WINDOW: Final = 3
MAX_SCRIPT_HEARTBEAT_SECONDS: Final = 9999

STEP_NAMES: Final = ("prepare", "launch", "ready", "bootstrap", "snapshot", "cleanup")


def managed_snapshot_tags(fingerprint_: str, os_name: str, architecture: str) -> dict[str, str]:
    """The tags that identify a completed build of one stack variant."""
    return {
        TAG_MANAGED: builder_ec2.MANAGED,
        TAG_FINGERPRINT: fingerprint_,
        TAG_OS: os_name,
        TAG_ARCH: architecture,
    }


# --- prepare ---------------------------------------------------------------------------


def build_id_hint(event: Mapping[str, Any]) -> str | None:
    """The build id an event is about, before anything is validated (for log correlation)."""
    for path in (("build", "build_id"), ("request", "build_id"), ("state", "build", "build_id")):
        value: Any = event
        for part in path:
            value = value.get(part) if isinstance(value, Mapping) else None
        if isinstance(value, str):
            return value
    execution = event.get("execution")
    if isinstance(execution, Mapping) and isinstance(execution.get("name"), str):
        return str(execution["name"])
    return None


def prepare(
    event: Mapping[str, Any],
    *,
    ec2: Any,
    read_seed: SeedReader,
    table: BuildTable,
    now: datetime,
) -> dict[str, Any]:
    execution = event["execution"]
    settings = event["settings"]
    try:
        request = parse_build_request(event.get("request"))
        seed = resolve_seed(request, read_seed)
        if request.build_id:
            build_id = request.build_id
        else:
            build_id = check_build_id(str(execution["name"]), field="execution name")
    except BuildRequestError as error:
        raise InvalidBuildRequest(
            f"{error}. Nothing was created: fix the input and start the build again."
        ) from None
    except SeedError as error:
        raise InvalidBuildRequest(
            f"the seed is invalid:\n{error}\nNothing was created: fix the seed and start "
            "the build again (`petal seed validate` checks a seed file)."
        ) from None

    fp = fingerprint(seed)
    heartbeat = int(settings["bootstrap_heartbeat_seconds"])
    task_timeout = seed.build.timeout_minutes * 60
    if heartbeat >= task_timeout:
        raise InvalidBuildRequest(
            f"build.timeout_minutes ({seed.build.timeout_minutes}) must be longer than the "
            f"deployment's bootstrap heartbeat window ({heartbeat} s): raise it"
        )
    command_timeout = min(
        SSM_MAX_EXECUTION_TIMEOUT,
        max(task_timeout - COMMAND_TIMEOUT_MARGIN_SECONDS, task_timeout * 9 // 10),
    )
    variant = {"seed_name": seed.name, "fingerprint": fp, "os": seed.os}
    variant["architecture"] = seed.architecture
    started_at = iso(now)
    execution_arn = str(execution["arn"])
    base_record = BuildRecord(
        build_id=build_id,
        status="RUNNING",
        started_at=started_at,
        seed_name=seed.name,
        seed_source=request.seed_source if request.seed_uri else (request.source or "inline seed"),
        fingerprint=fp,
        os=seed.os,
        architecture=seed.architecture,
        spack_version=seed.software.spack_version,
        step="prepare",
        execution_arn=execution_arn,
    )

    if not request.force:
        existing = builder_ec2.find_snapshots(
            ec2, managed_snapshot_tags(fp, seed.os, seed.architecture)
        )
        if existing:
            snapshot_id = existing[0].snapshot_id
            reused = BuildRecord(
                **{
                    **base_record.__dict__,
                    "status": "REUSED",
                    "step": "done",
                    "snapshot_id": snapshot_id,
                    "finished_at": started_at,
                    "duration_seconds": 0,
                }
            )
            _create_record(table, reused)
            return {
                "build_id": build_id,
                "reused": True,
                "status": "REUSED",
                "snapshot_id": snapshot_id,
                **variant,
            }

    # Everything that can fail on bad input has run: only now is anything written.
    image = builder_ec2.find_official_image(
        ec2, seed.build.parallelcluster_version, seed.os, seed.architecture, now
    )
    _create_record(table, base_record)
    holder = table.acquire_lock(
        fp,
        seed.os,
        seed.architecture,
        build_id=build_id,
        execution_arn=execution_arn,
        now=now,
        expires_at=now + timedelta(seconds=task_timeout) + LOCK_GRACE,
    )
    if holder is not None:
        raise BuildAlreadyRunning(
            f"build {holder.build_id} (started {holder.acquired_at}) is already building "
            f"this stack ({seed.name}, {fp}) for {seed.os}/{seed.architecture}: wait for it "
            f"(`petal build status {holder.build_id}`); once it has finished, its snapshot "
            "is reused. To build anyway, stop that build first."
        )
    return {
        "build_id": build_id,
        "reused": False,
        "status": "RUNNING",
        **variant,
        "spack_version": seed.software.spack_version,
        "packages": [*seed.software.compilers, *seed.software.packages],
        "spack_yaml": render_spack_yaml(seed, fp),
        "image_id": image.image_id,
        "image_name": image.name,
        "root_device_name": image.root_device_name,
        "root_volume_gb": image.root_volume_gb,
        "instance_type": seed.build.instance_type,
        "volume": {
            "size_gb": seed.volume.size_gb,
            "iops": seed.volume.iops,
            "throughput": seed.volume.throughput,
            "encrypted": seed.volume.encrypted,
            "kms_key_id": seed.volume.kms_key_id,
        },
        "task_timeout_seconds": task_timeout,
        "command_timeout_seconds": command_timeout,
        "script_heartbeat_seconds": max(
            1, min(MAX_SCRIPT_HEARTBEAT_SECONDS, heartbeat // HEARTBEATS_PER_WINDOW)
        ),
        "started_at": started_at,
        "execution_arn": execution_arn,
    }


def _create_record(table: BuildTable, record: BuildRecord) -> None:
    try:
        table.create_build(record)
    except BuildIdTaken:
        existing = table.get_build(record.build_id)
        if existing is not None and existing.execution_arn == record.execution_arn:
            return  # this step is being retried
        raise InvalidBuildRequest(
            f"build_id: {record.build_id!r} is already the id of another build: leave "
            "build_id out (the execution's name is used) or choose a new one. Nothing "
            "was created."
        ) from None


# --- launch ----------------------------------------------------------------------------


def launch(
    event: Mapping[str, Any],
    *,
    ec2: Any,
    table: BuildTable,
    subnet_ids: tuple[str, ...],
    security_group_id: str,
    instance_profile_arn: str,
) -> dict[str, Any]:
    build = event["build"]
    build_id = str(build["build_id"])
    image = builder_ec2.OfficialImage(
        image_id=build["image_id"],
        name=build["image_name"],
        creation_date="",
        root_device_name=build["root_device_name"],
        root_volume_gb=int(build["root_volume_gb"]),
    )
    launched = builder_ec2.run_builder(
        ec2,
        image=image,
        instance_type=build["instance_type"],
        subnet_ids=subnet_ids,
        security_group_id=security_group_id,
        instance_profile_arn=instance_profile_arn,
        tags=builder_ec2.builder_tags(build_id, build["seed_name"]),
        client_token=f"{build_id}-builder",
    )
    # Recorded before anything else can fail, so cleanup and the janitor find it.
    table.update_build(
        build_id,
        {"step": "launch", "instance_id": launched.instance_id},
        execution_arn=build["execution_arn"],
    )
    volume = build["volume"]
    volume_id = builder_ec2.create_software_volume(
        ec2,
        availability_zone=launched.availability_zone,
        size_gb=int(volume["size_gb"]),
        iops=int(volume["iops"]),
        throughput=int(volume["throughput"]),
        encrypted=bool(volume["encrypted"]),
        kms_key_id=volume.get("kms_key_id"),
        tags=builder_ec2.volume_tags(build_id, build["seed_name"]),
        client_token=f"{build_id}-volume",
    )
    table.update_build(
        build_id, {"step": "ready", "volume_id": volume_id}, execution_arn=build["execution_arn"]
    )
    return {
        "instance_id": launched.instance_id,
        "volume_id": volume_id,
        "availability_zone": launched.availability_zone,
        "subnet_id": launched.subnet_id,
    }


# --- ready -----------------------------------------------------------------------------


def check_ready(event: Mapping[str, Any], *, ec2: Any, ssm: Any) -> dict[str, Any]:
    resources = event["resources"]
    attempt = int(event.get("attempt", 0)) + 1
    max_attempts = int(event["max_attempts"])
    instance_id, volume_id = resources["instance_id"], resources["volume_id"]

    instance = builder_ec2.describe_instance(ec2, instance_id)
    if instance is None or instance.state in builder_ec2.GONE_STATES:
        state = instance.state if instance else "gone"
        reason = f" ({instance.state_reason})" if instance and instance.state_reason else ""
        raise BuilderLost(
            f"the builder instance {instance_id} is {state}{reason} before the install "
            "began: check the EC2 console for why (e.g. a service quota, or someone "
            "terminated it) and start the build again"
        )
    volume = builder_ec2.describe_volume(ec2, volume_id)
    if volume is None:
        raise BuilderLost(f"the software volume {volume_id} no longer exists: start again")
    if instance_id in volume.attached_to:
        return {"ready": True, "attempt": attempt}

    waiting: list[str] = []
    if instance.state != "running":
        waiting.append(f"instance {instance_id} is {instance.state}")
    elif not builder_ssm.agent_online(ssm, instance_id):
        waiting.append(f"the SSM agent on {instance_id} is not Online")
    if volume.state != "available":
        waiting.append(f"volume {volume_id} is {volume.state}")
    if not waiting:
        builder_ec2.attach_volume(ec2, volume_id, instance_id)
        return {"ready": True, "attempt": attempt}
    if attempt >= max_attempts:
        raise BuilderNotReady(
            f"after {attempt} checks the builder is not ready: {'; '.join(waiting)}. "
            f"Check that subnet {resources.get('subnet_id')} reaches SSM (a NAT gateway or "
            "VPC endpoints for ssm, ssmmessages and ec2messages), that the builder's "
            "instance profile grants AmazonSSMManagedInstanceCore, and that the AMI's SSM "
            "agent starts; then start the build again"
        )
    return {"ready": False, "attempt": attempt, "waiting_for": "; ".join(waiting)}


# --- bootstrap -------------------------------------------------------------------------


def bootstrap(
    event: Mapping[str, Any],
    *,
    ssm: Any,
    table: BuildTable,
    document_name: str,
    log_group: str,
    now: datetime,
) -> dict[str, Any]:
    """Send the bootstrap and park the task token under the command's id.

    The token never leaves AWS: the instance gets only the command, and the callback
    function finds the token by the command id in SSM's status-change events.
    """
    build, resources = event["build"], event["resources"]
    build_id, instance_id = str(build["build_id"]), str(resources["instance_id"])
    execution_arn = str(build["execution_arn"])
    expires_at = now + timedelta(seconds=int(build["task_timeout_seconds"])) + TOKEN_GRACE

    record = table.get_build(build_id)
    if record is not None and record.command_id:
        status = builder_ssm.command_status(ssm, record.command_id, instance_id)
        if status not in builder_ssm.TERMINAL_STATUSES:
            # A retry of this step after the command went out: one command per build,
            # so the new token is parked under the command that is already running.
            table.park_token(
                record.command_id,
                task_token=event["task_token"],
                build_id=build_id,
                instance_id=instance_id,
                execution_arn=execution_arn,
                now=now,
                expires_at=expires_at,
            )
            return {"command_id": record.command_id, "sent": False}

    parameters = command_parameters(
        volume_id=str(resources["volume_id"]),
        spack_version=str(build["spack_version"]),
        spack_yaml=str(build["spack_yaml"]),
        build_id=build_id,
        fingerprint=str(build["fingerprint"]),
        execution_timeout_seconds=int(build["command_timeout_seconds"]),
        heartbeat_seconds=int(build["script_heartbeat_seconds"]),
    )
    command_id = builder_ssm.send_bootstrap_command(
        ssm,
        document_name=document_name,
        instance_id=instance_id,
        parameters=parameters,
        log_group=log_group,
        comment=f"petal build {build_id}",
    )
    table.park_token(
        command_id,
        task_token=event["task_token"],
        build_id=build_id,
        instance_id=instance_id,
        execution_arn=execution_arn,
        now=now,
        expires_at=expires_at,
    )
    table.update_build(
        build_id,
        {"step": "bootstrap", "command_id": command_id, "log_group": log_group},
        execution_arn=execution_arn,
    )
    return {"command_id": command_id, "sent": True}


# --- snapshot --------------------------------------------------------------------------


def snapshot_tags(build: Mapping[str, Any]) -> dict[str, str]:
    return {
        "Name": f"petal-{build['seed_name']}-{build['os']}-{build['architecture']}",
        TAG_MANAGED: builder_ec2.MANAGED,
        TAG_FINGERPRINT: str(build["fingerprint"]),
        TAG_OS: str(build["os"]),
        TAG_ARCH: str(build["architecture"]),
        TAG_SPACK_VERSION: str(build["spack_version"]),
        TAG_SEED: str(build["seed_name"]),
        TAG_BUILD_ID: str(build["build_id"]),
        TAG_PACKAGES: builder_ec2.packages_tag_value(list(build.get("packages") or [])),
    }


def snapshot(event: Mapping[str, Any], *, ec2: Any, table: BuildTable) -> dict[str, Any]:
    build, resources = event["build"], event["resources"]
    build_id = str(build["build_id"])
    volume_id, instance_id = str(resources["volume_id"]), str(resources["instance_id"])
    # A retry after the snapshot was created must not start a second one.
    for existing in builder_ec2.find_snapshots(
        ec2, {TAG_BUILD_ID: build_id, TAG_MANAGED: builder_ec2.MANAGED}, states=()
    ):
        if existing.state in ("pending", "completed"):
            return {"snapshot_id": existing.snapshot_id, "completed": False, "attempt": 0}
    # The bootstrap flushed and unmounted the filesystem, so the volume is consistent.
    builder_ec2.detach_volume(ec2, volume_id, instance_id)
    description = format_description(
        str(build["fingerprint"]),
        str(build["os"]),
        str(build["architecture"]),
        str(build["seed_name"]),
    )
    snapshot_id = builder_ec2.create_snapshot(ec2, volume_id, description, snapshot_tags(build))
    table.update_build(
        build_id,
        {"step": "snapshot", "snapshot_id": snapshot_id},
        execution_arn=build["execution_arn"],
    )
    return {"snapshot_id": snapshot_id, "completed": False, "attempt": 0}


def check_snapshot(
    event: Mapping[str, Any],
    *,
    ec2: Any,
    table: BuildTable,
    trusted_accounts: tuple[str, ...],
) -> dict[str, Any]:
    build, state = event["build"], event["snapshot"]
    snapshot_id = str(state["snapshot_id"])
    attempt = int(state.get("attempt", 0)) + 1
    view = builder_ec2.describe_snapshot(ec2, snapshot_id)
    if view is None:
        raise SnapshotFailed(
            f"snapshot {snapshot_id} no longer exists (deleted while it was being "
            "created?): start the build again"
        )
    if view.state == "error":
        message = f": {view.state_message}" if view.state_message else ""
        raise SnapshotFailed(
            f"EBS reports snapshot {snapshot_id} in state error{message}. This is on the "
            "EBS side; start the build again"
        )
    if view.state == "completed":
        shared: list[str] = []
        note = None
        if trusted_accounts:
            try:
                builder_ec2.share_snapshot(ec2, snapshot_id, trusted_accounts)
                shared = list(trusted_accounts)
            except AwsRequestFailed as error:
                # The snapshot is good; sharing is a separate, repeatable act.
                note = (
                    f"not shared with {', '.join(trusted_accounts)}: {error}. Snapshots "
                    "encrypted with the AWS managed key cannot be shared: set "
                    "volume.kms_key_id to a customer managed key"
                )
        table.update_build(
            str(build["build_id"]),
            {"step": "snapshot"},
            execution_arn=build["execution_arn"],
            append_note=note,
        )
        return {
            "snapshot_id": snapshot_id,
            "completed": True,
            "attempt": attempt,
            "shared_with": shared,
        }
    max_attempts = int(event["max_attempts"])
    if attempt >= max_attempts:
        raise SnapshotNotCompleted(
            f"snapshot {snapshot_id} is still {view.state} ({view.progress or '0%'}) after "
            f"{attempt} checks. It may still complete: `petal build list` will show it "
            "reused on the next build once it has. Raise the snapshot wait settings for "
            "volumes this large"
        )
    return {
        "snapshot_id": snapshot_id,
        "completed": False,
        "attempt": attempt,
        "progress": view.progress,
    }


# --- cleanup ---------------------------------------------------------------------------


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
        tags = {TAG_BUILD_ID: build_id, TAG_MANAGED: builder_ec2.MANAGED}
        instance_ids.update(i.instance_id for i in builder_ec2.find_instances(ec2, tags))
        volume_ids.update(
            v.volume_id for v in builder_ec2.find_volumes(ec2, tags) if v.state != "deleting"
        )

    removed = [
        f"terminated {i}" for i in builder_ec2.terminate_instances(ec2, sorted(instance_ids))
    ]
    pending: list[str] = []
    for volume_id in sorted(volume_ids):
        view = builder_ec2.describe_volume(ec2, volume_id)
        if view is None or view.state in ("deleting", "deleted"):
            continue
        if view.attached_to:
            for instance_id in view.attached_to:
                # The volume is discarded: a forced detach cannot hurt it.
                builder_ec2.detach_volume(ec2, volume_id, instance_id, force=True)
            pending.append(f"{volume_id} (detaching)")
        elif view.state in ("available", "error"):
            builder_ec2.delete_volume(ec2, volume_id)
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


# --- explaining a failure ----------------------------------------------------------------

# The Catch of each state writes $.failure.<key>; the key is the step's name.
ADVICE: Final[dict[str, str]] = {
    "InvalidBuildRequest": "fix what is named above and start the build again",
    "BuildAlreadyRunning": "wait for the running build; its snapshot will be reused",
    "OfficialAmiNotFound": "set build.parallelcluster_version to a released version",
    "NoBuilderCapacity": (
        "add subnets in other Availability Zones (petal:subnetIds), choose another "
        "build.instance_type, or try again later"
    ),
    "BuilderLost": "start the build again",
    "BuilderNotReady": "fix the builder's network or instance profile as described",
    "BootstrapFailed": (
        "read the build log (`petal build logs <id>`), fix the seed (a package spec, a "
        "mirror) and start the build again"
    ),
    "BootstrapTimedOut": "raise build.timeout_minutes in the seed, or build fewer packages",
    "BootstrapCancelled": "someone cancelled the command; start the build again",
    "BuilderStopped": (
        "the builder stopped during the install (terminated by hand, a scheduled event "
        "or a shutdown): start the build again"
    ),
    "States.HeartbeatTimeout": (
        "the builder stopped reporting progress: the install hung or the instance lost "
        "its connection to AWS. Read the build log, then start the build again"
    ),
    "States.Timeout": "raise build.timeout_minutes in the seed, or build fewer packages",
    "SnapshotFailed": "start the build again",
    "SnapshotNotCompleted": "check the snapshot in the EC2 console; it may still complete",
    "ConfigurationError": "redeploy the petal stack",
    "RetryableAwsError": "AWS throttled petal for too long: start the build again later",
    "AwsRequestFailed": "fix the AWS problem named above and start the build again",
}
DEFAULT_ADVICE: Final = (
    "see the failed state in the execution's history for details, then start the build again"
)


def public_error_name(error: str) -> str:
    """The error name the execution fails with: a Fail state may not use the reserved
    "States." prefix, so States.HeartbeatTimeout ends the execution as HeartbeatTimeout."""
    return error.removeprefix("States.") or "BuildFailed"


def failure_message(cause: str) -> str:
    """The human part of a Catch's Cause: a Lambda error's errorMessage, or the text."""
    try:
        parsed = json.loads(cause)
    except (TypeError, ValueError):
        return cause.strip()
    if isinstance(parsed, Mapping) and "errorMessage" in parsed:
        return str(parsed["errorMessage"]).strip()
    return cause.strip()


def describe_failure(
    failure: Mapping[str, Any], build_id: str, record: BuildRecord | None
) -> tuple[str, str, str]:
    """(step, error name, cause a person can act on) for a $.failure object."""
    step, detail = next(iter(failure.items()))
    error = str((detail or {}).get("Error") or "States.TaskFailed")
    message = failure_message(str((detail or {}).get("Cause") or "")) or "(no details)"
    advice = ADVICE.get(error, DEFAULT_ADVICE)
    where = ""
    if step == "bootstrap" and record is not None and record.command_id and record.log_group:
        where = (
            f" Build log: CloudWatch Logs group {record.log_group}, streams {record.command_id}/*."
        )
    cause = (
        f"Build {build_id} failed in step {step} ({error}): {message}{where} What to do: {advice}."
    )
    return str(step), error, cause


# The callable type handlers use to read the time (tests pass a fixed clock).
Clock = Callable[[], datetime]
