"""The EC2 adapter for software snapshots: create, describe, find by tags, share, mark
their lifecycle, delete, and Fast Snapshot Restore. Every function takes a boto3 EC2
client, so tests hand in moto's or a Stubber."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal

from botocore.exceptions import ClientError

from petal.aws.ec2_builder import tag_dict, tag_list
from petal.aws.errors import aws_call, error_code, translate

# A snapshot's place in its seed's life: resolution uses current ones, falls back to a
# deprecated one with a warning and never uses a retired one. No tag means current.
TAG_LIFECYCLE: Final = "petal:lifecycle"
Lifecycle = Literal["current", "deprecated", "retired"]
LIFECYCLES: Final[tuple[Lifecycle, ...]] = ("current", "deprecated", "retired")


def lifecycle_of(tags: Mapping[str, str]) -> Lifecycle:
    """The lifecycle a snapshot's tags give it; an unknown value counts as current, as
    resolution cannot tell what its writer meant."""
    value = tags.get(TAG_LIFECYCLE, "current")
    for known in LIFECYCLES:
        if value == known:
            return known
    return "current"


@dataclass(frozen=True)
class SnapshotView:
    snapshot_id: str
    state: str
    progress: str
    state_message: str
    start_time: datetime | None
    tags: dict[str, str]
    description: str
    size_gb: int


def create_snapshot(ec2: Any, volume_id: str, description: str, tags: Mapping[str, str]) -> str:
    with aws_call(f"EC2 CreateSnapshot of {volume_id}"):
        response = ec2.create_snapshot(
            VolumeId=volume_id,
            Description=description,
            TagSpecifications=[{"ResourceType": "snapshot", "Tags": tag_list(tags)}],
        )
    return str(response["SnapshotId"])


def _snapshot_view(snapshot: Mapping[str, Any]) -> SnapshotView:
    return SnapshotView(
        snapshot_id=str(snapshot["SnapshotId"]),
        state=str(snapshot.get("State", "")),
        progress=str(snapshot.get("Progress", "")),
        state_message=str(snapshot.get("StateMessage", "")),
        start_time=snapshot.get("StartTime"),
        tags=tag_dict(snapshot.get("Tags")),
        description=str(snapshot.get("Description", "")),
        size_gb=int(snapshot.get("VolumeSize", 0)),
    )


def describe_snapshot(ec2: Any, snapshot_id: str) -> SnapshotView | None:
    try:
        response = ec2.describe_snapshots(SnapshotIds=[snapshot_id])
    except ClientError as error:
        if error_code(error) == "InvalidSnapshot.NotFound":
            return None
        raise translate("EC2 DescribeSnapshots", error) from error
    snapshots = response.get("Snapshots", [])
    return _snapshot_view(snapshots[0]) if snapshots else None


def find_snapshots(
    ec2: Any, tags: Mapping[str, str], states: Sequence[str] = ("completed",)
) -> list[SnapshotView]:
    """This account's snapshots carrying all `tags`, newest first.

    OwnerIds=["self"] always: without it DescribeSnapshots also lists every public
    snapshot in the region, and anyone can tag a public snapshot like petal does.
    """
    filters = [{"Name": f"tag:{k}", "Values": [v]} for k, v in tags.items()]
    if states:
        filters.append({"Name": "status", "Values": list(states)})
    found = [
        _snapshot_view(s) for s in describe_snapshot_pages(ec2, OwnerIds=["self"], Filters=filters)
    ]
    epoch = datetime.min.replace(tzinfo=UTC)
    found.sort(key=lambda s: s.start_time or epoch, reverse=True)
    return found


def describe_snapshot_pages(ec2: Any, **request: Any) -> list[Any]:
    """Every snapshot DescribeSnapshots returns for `request`, all pages read. Callers
    pass OwnerIds or exact ids: without them EC2 lists every public snapshot too."""
    snapshots: list[Any] = []
    with aws_call("EC2 DescribeSnapshots"):
        for page in ec2.get_paginator("describe_snapshots").paginate(**request):
            snapshots.extend(page.get("Snapshots", []))
    return snapshots


def share_snapshot(ec2: Any, snapshot_id: str, account_ids: Sequence[str]) -> None:
    if not account_ids:
        return
    with aws_call(f"EC2 ModifySnapshotAttribute {snapshot_id}"):
        ec2.modify_snapshot_attribute(
            SnapshotId=snapshot_id,
            Attribute="createVolumePermission",
            OperationType="add",
            UserIds=list(account_ids),
        )


def set_lifecycle(ec2: Any, snapshot_id: str, lifecycle: Lifecycle) -> None:
    with aws_call(f"EC2 CreateTags on {snapshot_id}"):
        ec2.create_tags(Resources=[snapshot_id], Tags=[{"Key": TAG_LIFECYCLE, "Value": lifecycle}])


def delete_snapshot(ec2: Any, snapshot_id: str) -> None:
    with aws_call(f"EC2 DeleteSnapshot {snapshot_id}"):
        ec2.delete_snapshot(SnapshotId=snapshot_id)


# --- Fast Snapshot Restore -------------------------------------------------------------


@dataclass(frozen=True)
class FastRestore:
    """One snapshot's Fast Snapshot Restore in one Availability Zone."""

    snapshot_id: str
    zone: str
    state: str  # enabling | optimizing | enabled | disabling | disabled
    reason: str = ""


def fast_restores(ec2: Any, snapshot_ids: Sequence[str] = ()) -> list[FastRestore]:
    """The region's Fast Snapshot Restores (of these snapshots, if given), every state
    but disabled: each one that is not disabled counts against the region's limit."""
    filters = [{"Name": "state", "Values": ["enabling", "optimizing", "enabled", "disabling"]}]
    if snapshot_ids:
        filters.append({"Name": "snapshot-id", "Values": list(snapshot_ids)})
    found: list[FastRestore] = []
    with aws_call("EC2 DescribeFastSnapshotRestores"):
        for page in ec2.get_paginator("describe_fast_snapshot_restores").paginate(Filters=filters):
            found.extend(
                FastRestore(
                    str(item.get("SnapshotId", "")),
                    str(item.get("AvailabilityZone", "")),
                    str(item.get("State", "")),
                    str(item.get("StateTransitionReason", "")),
                )
                for item in page.get("FastSnapshotRestores", [])
            )
    return found


def change_fast_restores(
    ec2: Any, snapshot_id: str, zones: Sequence[str], *, enable: bool
) -> tuple[list[FastRestore], list[FastRestore]]:
    """Enable (or disable) Fast Snapshot Restore of a snapshot in `zones`: what AWS
    accepted, and what it refused (with its reason), zone by zone."""
    action = "EnableFastSnapshotRestores" if enable else "DisableFastSnapshotRestores"
    with aws_call(f"EC2 {action} of {snapshot_id}"):
        call = ec2.enable_fast_snapshot_restores if enable else ec2.disable_fast_snapshot_restores
        response = call(AvailabilityZones=list(zones), SourceSnapshotIds=[snapshot_id])
    accepted = [
        FastRestore(
            str(item.get("SnapshotId", snapshot_id)),
            str(item.get("AvailabilityZone", "")),
            str(item.get("State", "")),
        )
        for item in response.get("Successful", [])
    ]
    refused = [
        FastRestore(
            str(item.get("SnapshotId", snapshot_id)),
            str(error.get("AvailabilityZone", "")),
            "refused",
            _refusal(error.get("Error", {})),
        )
        for item in response.get("Unsuccessful", [])
        for error in item.get("FastSnapshotRestoreStateErrors", [])
    ]
    return accepted, refused


def _refusal(error: Mapping[str, Any]) -> str:
    return f"{error.get('Code', 'refused')}: {error.get('Message', '')}".rstrip(": ")
