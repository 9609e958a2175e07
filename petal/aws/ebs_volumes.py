"""The EC2 adapter for clusters' software volumes that petal creates itself (`petal
create --initialize`): the head node subnet's zone, the volume, its initialization
progress, and the volumes made from given snapshots. Every function takes a boto3 EC2
client (moto's in tests)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from botocore.exceptions import ClientError

from petal.aws.ec2_builder import VolumeView, tag_list, volume_view
from petal.aws.errors import aws_call, error_code, translate
from petal.identifiers import Shape

VOLUME_ID: Final = Shape(r"^vol-([0-9a-f]{8}|[0-9a-f]{17})$")
# EBS Provisioned Rate for Volume Initialization, in MiB/s (CreateVolume's
# VolumeInitializationRate): only for a volume created from a snapshot.
MIN_INITIALIZATION_RATE: Final = 100
MAX_INITIALIZATION_RATE: Final = 300
# EC2 takes at most 200 values per filter.
_FILTER_BATCH: Final = 200


class SubnetNotFound(LookupError):
    pass


@dataclass(frozen=True)
class Initialization:
    """DescribeVolumeStatus' InitializationStatusDetails of one volume."""

    volume_id: str
    zone: str
    status: str  # the volume's status: ok | impaired | insufficient-data | ...
    kind: str | None  # provisioned-rate | default | volume-copy; None: not reported
    progress: int | None  # percent; 100 once initialized
    seconds_left: int | None  # only for a provisioned rate

    @property
    def done(self) -> bool:
        return self.progress == 100

    def to_json(self) -> dict[str, Any]:
        return {
            "volume_id": self.volume_id,
            "availability_zone": self.zone,
            "status": self.status,
            "initialization_type": self.kind,
            "progress_percent": self.progress,
            "estimated_seconds_left": self.seconds_left,
            "initialized": self.done,
        }


def subnet_zone(ec2: Any, subnet_id: str) -> str:
    """The Availability Zone of a subnet; SubnetNotFound if this account cannot see it."""
    try:
        subnets = ec2.describe_subnets(SubnetIds=[subnet_id]).get("Subnets", [])
    except ClientError as error:
        if error_code(error) == "InvalidSubnetID.NotFound":
            raise SubnetNotFound(subnet_id) from None
        raise translate(f"EC2 DescribeSubnets {subnet_id}", error) from error
    if not subnets:
        raise SubnetNotFound(subnet_id)
    return str(subnets[0]["AvailabilityZone"])


def create_initialized_volume(
    ec2: Any,
    *,
    snapshot_id: str,
    zone: str,
    size_gb: int,
    iops: int,
    throughput: int,
    rate: int,
    kms_key_id: str | None,
    tags: Mapping[str, str],
) -> str:
    """A gp3 volume from the snapshot, initialized at `rate` MiB/s; always encrypted
    (with `kms_key_id`, else the snapshot's key or the account's default EBS key)."""
    request: dict[str, Any] = {
        "AvailabilityZone": zone,
        "SnapshotId": snapshot_id,
        "VolumeType": "gp3",
        "Size": size_gb,
        "Iops": iops,
        "Throughput": throughput,
        "Encrypted": True,
        "VolumeInitializationRate": rate,
        "TagSpecifications": [{"ResourceType": "volume", "Tags": tag_list(tags)}],
    }
    if kms_key_id:
        request["KmsKeyId"] = kms_key_id
    with aws_call(f"EC2 CreateVolume from {snapshot_id} in {zone}"):
        response = ec2.create_volume(**request)
    return str(response["VolumeId"])


def delete_new_volume(ec2: Any, volume_id: str) -> None:
    """Delete a volume just created: EC2 refuses while it is still `creating`, which
    lasts seconds, so wait for `available` first (a waiter, never more than a minute)."""
    with aws_call(f"EC2 DeleteVolume {volume_id}"):
        ec2.get_waiter("volume_available").wait(
            VolumeIds=[volume_id], WaiterConfig={"Delay": 2, "MaxAttempts": 30}
        )
        ec2.delete_volume(VolumeId=volume_id)


def _volume_pages(ec2: Any, action: str, **request: Any) -> list[VolumeView]:
    found: list[VolumeView] = []
    with aws_call(action):
        for page in ec2.get_paginator("describe_volumes").paginate(**request):
            found.extend(volume_view(v) for v in page.get("Volumes", []))
    return found


def volumes_tagged(ec2: Any, key: str, value: str) -> list[VolumeView]:
    return _volume_pages(
        ec2,
        f"EC2 DescribeVolumes tagged {key}={value}",
        Filters=[{"Name": f"tag:{key}", "Values": [value]}],
    )


def volumes_from_snapshots(ec2: Any, snapshot_ids: Sequence[str]) -> dict[str, list[str]]:
    """The volumes (any state) created from each of these snapshots; a snapshot no
    volume came from is absent. One DescribeVolumes per 200 snapshots."""
    used: dict[str, list[str]] = {}
    ids = list(dict.fromkeys(snapshot_ids))
    for start in range(0, len(ids), _FILTER_BATCH):
        batch = ids[start : start + _FILTER_BATCH]
        for volume in _volume_pages(
            ec2,
            "EC2 DescribeVolumes by snapshot",
            Filters=[{"Name": "snapshot-id", "Values": batch}],
        ):
            used.setdefault(volume.snapshot_id, []).append(volume.volume_id)
    return used


def initialization(ec2: Any, volume_id: str) -> Initialization | None:
    """The volume's initialization progress (DescribeVolumeStatus); None if EC2 does
    not know the volume."""
    try:
        statuses = ec2.describe_volume_status(VolumeIds=[volume_id]).get("VolumeStatuses", [])
    except ClientError as error:
        if error_code(error) == "InvalidVolume.NotFound":
            return None
        raise translate(f"EC2 DescribeVolumeStatus {volume_id}", error) from error
    if not statuses:
        return None
    status = statuses[0]
    details = status.get("InitializationStatusDetails") or {}
    progress = details.get("Progress")
    seconds = details.get("EstimatedTimeToCompleteInSeconds")
    return Initialization(
        volume_id=volume_id,
        zone=str(status.get("AvailabilityZone", "")),
        status=str(status.get("VolumeStatus", {}).get("Status", "")),
        kind=details.get("InitializationType"),
        progress=int(progress) if progress is not None else None,
        seconds_left=int(seconds) if seconds is not None else None,
    )
