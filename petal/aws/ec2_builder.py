"""EC2 adapter of the build: the builder's AMI, the builder instance, the software
volume and its snapshot. Every function takes a boto3 EC2 client (moto's in tests).

Nothing here waits: the state machine polls (Wait + Choice) and calls back in."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Final

from botocore.exceptions import ClientError

from petal.aws.errors import aws_call, error_code, translate
from petal.deployment_contract import (
    MANAGED_VALUE,
    ROLE_BUILDER,
    ROLE_VOLUME,
    TAG_BUILD_ID,
    TAG_MANAGED,
    TAG_ROLE,
)
from petal.errors import NoBuilderCapacity, OfficialAmiNotFound
from petal.platforms import Architecture, official_ami_name_pattern

AMI_OWNER: Final = "amazon"


# GetEbsDefaultKmsKeyId's answer while the account uses the AWS managed EBS key.
AWS_MANAGED_EBS_KEY: Final = "alias/aws/ebs"


# Where the software volume is attached; the bootstrap finds it by its NVMe serial.
SOFTWARE_DEVICE: Final = "/dev/sdf"


# Spack's build stage and source cache live on the root disk, out of the snapshot.
MIN_ROOT_VOLUME_GB: Final = 100


# RunInstances errors that mean "not here, try another subnet / AZ".
CAPACITY_ERRORS: Final = frozenset(
    {"InsufficientInstanceCapacity", "Unsupported", "InsufficientCapacity"}
)


TAG_VALUE_LIMIT: Final = 256


GONE_STATES: Final = frozenset({"shutting-down", "terminated", "stopping", "stopped"})


@dataclass(frozen=True)
class BuilderImage:
    """The AMI the builder boots: the official one, or a user-built one."""

    image_id: str
    name: str
    creation_date: str
    root_device_name: str
    root_volume_gb: int


@dataclass(frozen=True)
class ImageView:
    image: BuilderImage
    state: str
    architecture: str
    owner_id: str


# DescribeImages' answers for an id that is not there (or not visible to this account).
IMAGE_NOT_FOUND_CODES: Final = frozenset(
    {"InvalidAMIID.NotFound", "InvalidAMIID.Malformed", "InvalidAMIID.Unavailable"}
)


@dataclass(frozen=True)
class LaunchedBuilder:
    instance_id: str
    availability_zone: str
    subnet_id: str


@dataclass(frozen=True)
class InstanceView:
    instance_id: str
    state: str
    state_reason: str
    launch_time: datetime | None
    tags: dict[str, str]


@dataclass(frozen=True)
class VolumeView:
    """What DescribeVolumes says of a volume: a builder's, or a cluster's warm volume
    (petal.aws.ebs_volumes)."""

    volume_id: str
    state: str  # creating | available | in-use | deleting | deleted | error
    attached_to: tuple[str, ...]
    create_time: datetime | None
    tags: dict[str, str]
    zone: str = ""
    size_gb: int = 0
    snapshot_id: str = ""  # "" for an empty volume
    initialization_rate: int | None = None  # MiB/s, when created with one

    @property
    def gone(self) -> bool:
        return self.state in ("deleting", "deleted")


class VolumeRelease(StrEnum):
    """Where `release_volume` left a volume."""

    GONE = "gone"  # deleting or deleted already: nothing was done
    DETACHING = "detaching"  # a detach was requested; it can be deleted once available
    DELETED = "deleted"  # a delete was requested (or it vanished just before)
    WAITING = "waiting"  # in a state that allows neither yet (e.g. creating)


def tag_list(tags: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in tags.items()]


def tag_dict(tags: Iterable[Mapping[str, str]] | None) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in tags or ()}


def builder_tags(build_id: str, seed_name: str) -> dict[str, str]:
    return {
        "Name": f"petal-builder-{build_id}",
        TAG_MANAGED: MANAGED_VALUE,
        TAG_ROLE: ROLE_BUILDER,
        TAG_BUILD_ID: build_id,
        "petal:seed": seed_name,
    }


def volume_tags(build_id: str, seed_name: str) -> dict[str, str]:
    return {
        "Name": f"petal-software-{build_id}",
        TAG_MANAGED: MANAGED_VALUE,
        TAG_ROLE: ROLE_VOLUME,
        TAG_BUILD_ID: build_id,
        "petal:seed": seed_name,
    }


def packages_tag_value(packages: Sequence[str], limit: int = TAG_VALUE_LIMIT) -> str:
    """As many specs as fit in a tag value, then '+N more' for the rest.

    Honest about truncation: the count of what is left out is always shown, and the
    full list stays in the volume's /shared/petal/manifest.json.
    """
    chosen: list[str] = []
    for index, spec in enumerate(packages):
        rest = len(packages) - index - 1
        candidate = ", ".join([*chosen, spec])
        suffix = f", +{rest} more" if rest else ""
        if len(candidate) + len(suffix) <= limit:
            chosen.append(spec)
            continue
        left = len(packages) - len(chosen)
        return ", ".join([*chosen, f"+{left} more"]) if chosen else f"+{left} more"
    return ", ".join(chosen)


def find_official_image(
    ec2: Any, pcluster_version: str, os_name: str, architecture: Architecture, now: datetime
) -> BuilderImage:
    """The newest non-deprecated official AMI, found the way ParallelCluster's CLI does."""
    pattern = official_ami_name_pattern(pcluster_version, os_name, architecture)
    images: list[dict[str, Any]] = []
    with aws_call("EC2 DescribeImages"):
        for page in ec2.get_paginator("describe_images").paginate(
            Owners=[AMI_OWNER],
            Filters=[
                {"Name": "name", "Values": [pattern]},
                {"Name": "state", "Values": ["available"]},
            ],
        ):
            images.extend(page.get("Images", []))
    current = [image for image in images if not _deprecated(image, now)]
    if not current:
        raise OfficialAmiNotFound(
            f"no available, non-deprecated official ParallelCluster AMI named {pattern} "
            f"(owner {AMI_OWNER}) in this region: check build.parallelcluster_version "
            f"({pcluster_version}) is a released ParallelCluster 3 version that supports "
            f"{os_name} on {architecture}"
        )
    newest = max(current, key=lambda image: str(image.get("CreationDate", "")))
    return _builder_image(newest)


def describe_image(ec2: Any, image_id: str, owners: Sequence[str] = ()) -> ImageView | None:
    """One AMI by id, None if this account cannot see it (or, with `owners`, if none of
    them owns it: DescribeImages accepts "self" for this account)."""
    kwargs: dict[str, Any] = {"ImageIds": [image_id]}
    if owners:
        # A filter rather than ImageIds: an id asked for by ImageIds is answered
        # whoever owns it (moto ignores Owners then), which would void the check.
        kwargs = {"Owners": list(owners), "Filters": [{"Name": "image-id", "Values": [image_id]}]}
    with aws_call("EC2 DescribeImages"):
        try:
            response = ec2.describe_images(**kwargs)
        except ClientError as error:
            if error_code(error) not in IMAGE_NOT_FOUND_CODES:
                raise
            return None
    for found in response.get("Images", []):
        if found.get("ImageId") == image_id:
            return ImageView(
                image=_builder_image(found),
                state=str(found.get("State", "")),
                architecture=str(found.get("Architecture", "")),
                owner_id=str(found.get("OwnerId", "")),
            )
    return None


def _builder_image(image: Mapping[str, Any]) -> BuilderImage:
    root = str(image.get("RootDeviceName") or "/dev/xvda")
    size = 0
    for mapping in image.get("BlockDeviceMappings", []):
        if mapping.get("DeviceName") == root:
            size = int(mapping.get("Ebs", {}).get("VolumeSize", 0))
    return BuilderImage(
        image_id=str(image["ImageId"]),
        name=str(image.get("Name", "")),
        creation_date=str(image.get("CreationDate", "")),
        root_device_name=root,
        root_volume_gb=size,
    )


def _deprecated(image: Mapping[str, Any], now: datetime) -> bool:
    text = image.get("DeprecationTime")
    if not text:
        return False
    when = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    return when <= now


def ebs_default_kms_key(ec2: Any) -> str:
    """The KMS key EBS encrypts with when a request names none, as GetEbsDefaultKmsKeyId
    gives it: `alias/aws/ebs` (the AWS managed key) or the ARN of the account's choice."""
    with aws_call("EC2 GetEbsDefaultKmsKeyId"):
        response = ec2.get_ebs_default_kms_key_id()
    return str(response.get("KmsKeyId") or AWS_MANAGED_EBS_KEY)


def is_aws_managed_ebs_key(key: str) -> bool:
    """Whether `key` names the AWS managed EBS key, which any principal of the account
    may use through EC2 without a grant of its own (by alias, or alias ARN)."""
    return key == AWS_MANAGED_EBS_KEY or key.endswith(f":{AWS_MANAGED_EBS_KEY}")


def run_builder(
    ec2: Any,
    *,
    image: BuilderImage,
    instance_type: str,
    subnet_ids: Sequence[str],
    security_group_id: str,
    instance_profile_arn: str,
    tags: Mapping[str, str],
    client_token: str,
) -> LaunchedBuilder:
    """Launch the builder in the first subnet that has capacity.

    Tags are applied by RunInstances itself (TagSpecifications), so IAM conditions on
    aws:RequestTag hold and the instance is never untagged, even for a moment.
    """
    tried: list[str] = []
    for index, subnet_id in enumerate(subnet_ids):
        request = {
            "ImageId": image.image_id,
            "InstanceType": instance_type,
            "MinCount": 1,
            "MaxCount": 1,
            "SubnetId": subnet_id,
            "SecurityGroupIds": [security_group_id],
            "IamInstanceProfile": {"Arn": instance_profile_arn},
            # IMDSv2 only: a token is required for every metadata request.
            "MetadataOptions": {
                "HttpTokens": "required",
                "HttpEndpoint": "enabled",
                "HttpPutResponseHopLimit": 1,
            },
            "BlockDeviceMappings": [
                {
                    "DeviceName": image.root_device_name,
                    "Ebs": {
                        "VolumeSize": max(image.root_volume_gb, MIN_ROOT_VOLUME_GB),
                        "VolumeType": "gp3",
                        "Encrypted": True,
                        "DeleteOnTermination": True,
                    },
                }
            ],
            # A `shutdown` on the builder must not leave a stopped instance behind.
            "InstanceInitiatedShutdownBehavior": "terminate",
            "TagSpecifications": [
                {"ResourceType": "instance", "Tags": tag_list(tags)},
                {"ResourceType": "volume", "Tags": tag_list(tags)},
            ],
            # Makes a retried launch (same subnet) return the same instance.
            "ClientToken": f"{client_token}-{index}"[:64],
        }
        try:
            response = ec2.run_instances(**request)
        except ClientError as error:
            code = error_code(error)
            if code in CAPACITY_ERRORS:
                message = error.response.get("Error", {}).get("Message", "")
                tried.append(f"{subnet_id}: {code} ({message})")
                continue
            raise translate(f"EC2 RunInstances in {subnet_id}", error) from error
        instance = response["Instances"][0]
        return LaunchedBuilder(
            instance_id=str(instance["InstanceId"]),
            availability_zone=str(instance["Placement"]["AvailabilityZone"]),
            subnet_id=subnet_id,
        )
    raise NoBuilderCapacity(
        f"no capacity for a {instance_type} builder in any configured subnet ("
        + "; ".join(tried)
        + "): add subnets in other Availability Zones to the petal:subnetIds setting, "
        "choose another build.instance_type in the seed, or start the build again later"
    )


def describe_instance(ec2: Any, instance_id: str) -> InstanceView | None:
    try:
        response = ec2.describe_instances(InstanceIds=[instance_id])
    except ClientError as error:
        if error_code(error) == "InvalidInstanceID.NotFound":
            return None
        raise translate("EC2 DescribeInstances", error) from error
    for reservation in response.get("Reservations", []):
        for instance in reservation.get("Instances", []):
            return _instance_view(instance)
    return None


def _instance_view(instance: Mapping[str, Any]) -> InstanceView:
    return InstanceView(
        instance_id=str(instance["InstanceId"]),
        state=str(instance["State"]["Name"]),
        state_reason=str(
            instance.get("StateReason", {}).get("Message")
            or instance.get("StateTransitionReason")
            or ""
        ),
        launch_time=instance.get("LaunchTime"),
        tags=tag_dict(instance.get("Tags")),
    )


def find_instances(ec2: Any, tags: Mapping[str, str]) -> list[InstanceView]:
    """Instances carrying all `tags`, except those already terminated."""
    filters = [{"Name": f"tag:{k}", "Values": [v]} for k, v in tags.items()]
    filters.append(
        {
            "Name": "instance-state-name",
            "Values": ["pending", "running", "stopping", "stopped", "shutting-down"],
        }
    )
    found: list[InstanceView] = []
    with aws_call("EC2 DescribeInstances"):
        for page in ec2.get_paginator("describe_instances").paginate(Filters=filters):
            for reservation in page.get("Reservations", []):
                found.extend(_instance_view(i) for i in reservation.get("Instances", []))
    return found


def terminate_instances(ec2: Any, instance_ids: Sequence[str]) -> list[str]:
    """Terminate what still exists; returns the ids this call terminated (not those
    already shutting down or terminated: a second cleanup reports nothing new)."""
    done: list[str] = []
    for instance_id in instance_ids:
        try:
            answer = ec2.terminate_instances(InstanceIds=[instance_id])
        except ClientError as error:
            if error_code(error) == "InvalidInstanceID.NotFound":
                continue
            raise translate(f"EC2 TerminateInstances {instance_id}", error) from error
        previous = {
            str((change.get("PreviousState") or {}).get("Name") or "")
            for change in answer.get("TerminatingInstances", [])
        }
        if not previous <= {"shutting-down", "terminated"} or not previous:
            done.append(instance_id)
    return done


@dataclass(frozen=True)
class SourceSnapshot:
    """A snapshot a software volume may be created from (a parent build's)."""

    snapshot_id: str
    owner_id: str
    state: str
    progress: str
    size_gb: int
    encrypted: bool
    tags: dict[str, str]
    description: str


SNAPSHOT_NOT_FOUND_CODES: Final = frozenset(
    {"InvalidSnapshot.NotFound", "InvalidSnapshotID.Malformed", "InvalidSnapshot.Malformed"}
)


def describe_source_snapshot(
    ec2: Any, snapshot_id: str, *, own: bool = True
) -> SourceSnapshot | None:
    """One snapshot by id; None if this account cannot see it or, with `own`, does not
    own it. Asked through a filter, like `describe_image`: an id named by SnapshotIds is
    answered whoever owns it, if it is shared with this account."""
    kwargs: dict[str, Any] = {"SnapshotIds": [snapshot_id]}
    if own:
        kwargs = {
            "OwnerIds": ["self"],
            "Filters": [{"Name": "snapshot-id", "Values": [snapshot_id]}],
        }
    with aws_call("EC2 DescribeSnapshots"):
        try:
            response = ec2.describe_snapshots(**kwargs)
        except ClientError as error:
            if error_code(error) not in SNAPSHOT_NOT_FOUND_CODES:
                raise
            return None
    for found in response.get("Snapshots", []):
        if found.get("SnapshotId") == snapshot_id:
            return SourceSnapshot(
                snapshot_id=snapshot_id,
                owner_id=str(found.get("OwnerId", "")),
                state=str(found.get("State", "")),
                progress=str(found.get("Progress", "")),
                size_gb=int(found.get("VolumeSize", 0)),
                encrypted=bool(found.get("Encrypted", False)),
                tags=tag_dict(found.get("Tags")),
                description=str(found.get("Description", "")),
            )
    return None


def create_software_volume(
    ec2: Any,
    *,
    availability_zone: str,
    size_gb: int,
    iops: int,
    throughput: int,
    encrypted: bool,
    kms_key_id: str | None,
    tags: Mapping[str, str],
    client_token: str,
    snapshot_id: str | None = None,
) -> str:
    """An empty volume, or with `snapshot_id` one holding that snapshot's filesystem
    (`size_gb` must be at least the snapshot's; an encrypted snapshot's volume is
    encrypted whatever `encrypted` says, with `kms_key_id` if given, else its key)."""
    request: dict[str, Any] = {
        "AvailabilityZone": availability_zone,
        "Size": size_gb,
        "VolumeType": "gp3",
        "Iops": iops,
        "Throughput": throughput,
        "Encrypted": encrypted,
        "TagSpecifications": [{"ResourceType": "volume", "Tags": tag_list(tags)}],
        "ClientToken": client_token[:64],
    }
    if kms_key_id:
        request["KmsKeyId"] = kms_key_id
    if snapshot_id:
        request["SnapshotId"] = snapshot_id
    with aws_call(f"EC2 CreateVolume in {availability_zone}"):
        response = ec2.create_volume(**request)
    return str(response["VolumeId"])


def describe_volume(ec2: Any, volume_id: str) -> VolumeView | None:
    try:
        response = ec2.describe_volumes(VolumeIds=[volume_id])
    except ClientError as error:
        if error_code(error) == "InvalidVolume.NotFound":
            return None
        raise translate("EC2 DescribeVolumes", error) from error
    volumes = response.get("Volumes", [])
    return volume_view(volumes[0]) if volumes else None


def volume_view(volume: Mapping[str, Any]) -> VolumeView:
    rate = volume.get("VolumeInitializationRate")
    return VolumeView(
        volume_id=str(volume["VolumeId"]),
        state=str(volume.get("State", "")),
        attached_to=tuple(
            str(a["InstanceId"])
            for a in volume.get("Attachments", [])
            if a.get("State") in ("attaching", "attached", "busy")
        ),
        create_time=volume.get("CreateTime"),
        tags=tag_dict(volume.get("Tags")),
        zone=str(volume.get("AvailabilityZone", "")),
        size_gb=int(volume.get("Size", 0)),
        snapshot_id=str(volume.get("SnapshotId", "")),
        initialization_rate=int(rate) if rate is not None else None,
    )


def find_volumes(ec2: Any, tags: Mapping[str, str]) -> list[VolumeView]:
    filters = [{"Name": f"tag:{k}", "Values": [v]} for k, v in tags.items()]
    found: list[VolumeView] = []
    with aws_call("EC2 DescribeVolumes"):
        for page in ec2.get_paginator("describe_volumes").paginate(Filters=filters):
            found.extend(volume_view(v) for v in page.get("Volumes", []))
    return found


def attach_volume(ec2: Any, volume_id: str, instance_id: str) -> None:
    with aws_call(f"EC2 AttachVolume {volume_id} to {instance_id}"):
        ec2.attach_volume(VolumeId=volume_id, InstanceId=instance_id, Device=SOFTWARE_DEVICE)


def detach_volume(ec2: Any, volume_id: str, instance_id: str, *, force: bool = False) -> bool:
    """Detach if attached; False when there was nothing to detach.

    InstanceId is always passed: it makes the request unambiguous (and moto needs it).
    """
    try:
        ec2.detach_volume(VolumeId=volume_id, InstanceId=instance_id, Force=force)
    except ClientError as error:
        if error_code(error) in (
            "IncorrectState",
            "InvalidAttachment.NotFound",
            "InvalidVolume.NotFound",
            "InvalidInstanceID.NotFound",
        ):
            return False
        raise translate(f"EC2 DetachVolume {volume_id}", error) from error
    return True


def delete_volume(ec2: Any, volume_id: str) -> bool:
    """Delete an available volume; False if it is gone already. In use -> AwsRequestFailed."""
    try:
        ec2.delete_volume(VolumeId=volume_id)
    except ClientError as error:
        if error_code(error) == "InvalidVolume.NotFound":
            return False
        raise translate(f"EC2 DeleteVolume {volume_id}", error) from error
    return True


def release_volume(ec2: Any, volume: VolumeView) -> VolumeRelease:
    """One step towards deleting a discarded volume: detach it, else delete it.

    Never waits: a volume still attached is force-detached (nothing on it is kept, so
    a forced detach cannot hurt) and the caller comes back to delete it later.
    """
    if volume.gone:
        return VolumeRelease.GONE
    if volume.attached_to:
        for instance_id in volume.attached_to:
            detach_volume(ec2, volume.volume_id, instance_id, force=True)
        return VolumeRelease.DETACHING
    if volume.state in ("available", "error"):
        delete_volume(ec2, volume.volume_id)
        return VolumeRelease.DELETED
    return VolumeRelease.WAITING
