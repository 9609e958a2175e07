"""The EC2 adapter for software snapshots: create, describe, find by tags, share.
Every function takes a boto3 EC2 client, so tests hand in moto's or a Stubber."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from petal.aws.ec2_builder import tag_dict, tag_list
from petal.aws.errors import aws_call, error_code, translate


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
    found: list[SnapshotView] = []
    with aws_call("EC2 DescribeSnapshots"):
        for page in ec2.get_paginator("describe_snapshots").paginate(
            OwnerIds=["self"], Filters=filters
        ):
            found.extend(_snapshot_view(s) for s in page.get("Snapshots", []))
    epoch = datetime.min.replace(tzinfo=UTC)
    found.sort(key=lambda s: s.start_time or epoch, reverse=True)
    return found


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
