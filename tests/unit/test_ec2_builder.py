"""The EC2 adapter (petal.aws.ec2_builder): exact requests, checked with botocore's Stubber."""

from __future__ import annotations

from datetime import UTC, datetime

import boto3
import pytest
from botocore.stub import Stubber

from petal.aws.ec2_builder import (
    BuilderImage,
    VolumeRelease,
    VolumeView,
    find_official_image,
    packages_tag_value,
    release_volume,
    run_builder,
)
from petal.aws.ec2_snapshots import find_snapshots
from petal.aws.errors import AwsRequestFailed, RetryableAwsError
from petal.errors import NoBuilderCapacity, OfficialAmiNotFound

NOW = datetime(2025, 6, 1, tzinfo=UTC)


@pytest.fixture
def ec2() -> object:
    return boto3.client(
        "ec2", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )


def image(image_id: str, created: str, deprecated: str | None = None) -> dict:
    data = {
        "ImageId": image_id,
        "Name": f"aws-parallelcluster-3.16.1-amzn2023-hvm-x86_64-{image_id}",
        "CreationDate": created,
        "RootDeviceName": "/dev/xvda",
        "BlockDeviceMappings": [{"DeviceName": "/dev/xvda", "Ebs": {"VolumeSize": 40}}],
    }
    if deprecated:
        data["DeprecationTime"] = deprecated
    return data


def test_the_newest_non_deprecated_official_ami_is_chosen(ec2: object) -> None:
    with Stubber(ec2) as stub:  # type: ignore[arg-type]
        stub.add_response(
            "describe_images",
            {
                "Images": [
                    image("ami-00000000000000001", "2025-01-01T00:00:00.000Z"),
                    image(
                        "ami-00000000000000002", "2025-05-01T00:00:00.000Z", "2025-05-30T00:00:00Z"
                    ),
                    image(
                        "ami-00000000000000003", "2025-03-01T00:00:00.000Z", "2026-01-01T00:00:00Z"
                    ),
                ]
            },
            {
                "Owners": ["amazon"],
                "Filters": [
                    {"Name": "name", "Values": ["aws-parallelcluster-3.16.1-amzn2023-hvm-x86_64*"]},
                    {"Name": "state", "Values": ["available"]},
                ],
            },
        )
        found = find_official_image(ec2, "3.16.1", "alinux2023", "x86_64", NOW)
    assert found.image_id == "ami-00000000000000003"
    assert (found.root_device_name, found.root_volume_gb) == ("/dev/xvda", 40)


def test_no_official_ami_names_the_version(ec2: object) -> None:
    with Stubber(ec2) as stub:  # type: ignore[arg-type]
        stub.add_response("describe_images", {"Images": []})
        with pytest.raises(OfficialAmiNotFound, match=r"build\.parallelcluster_version"):
            find_official_image(ec2, "3.99.0", "rocky9", "arm64", NOW)


OFFICIAL = BuilderImage("ami-00000000000000003", "n", "", "/dev/xvda", 40)


def launch(ec2: object) -> object:
    return run_builder(
        ec2,
        image=OFFICIAL,
        instance_type="c6a.xlarge",
        subnet_ids=("subnet-aaaaaaaa", "subnet-bbbbbbbb"),
        security_group_id="sg-12345678",
        instance_profile_arn="arn:aws:iam::123456789012:instance-profile/b",
        tags={"petal:managed": "true", "petal:role": "builder", "petal:build-id": "b1"},
        client_token="b1-builder",
    )


def expected_run(subnet: str, index: int) -> dict:
    tags = [
        {"Key": "petal:managed", "Value": "true"},
        {"Key": "petal:role", "Value": "builder"},
        {"Key": "petal:build-id", "Value": "b1"},
    ]
    return {
        "ImageId": "ami-00000000000000003",
        "InstanceType": "c6a.xlarge",
        "MinCount": 1,
        "MaxCount": 1,
        "SubnetId": subnet,
        "SecurityGroupIds": ["sg-12345678"],
        "IamInstanceProfile": {"Arn": "arn:aws:iam::123456789012:instance-profile/b"},
        "MetadataOptions": {
            "HttpTokens": "required",
            "HttpEndpoint": "enabled",
            "HttpPutResponseHopLimit": 1,
        },
        "BlockDeviceMappings": [
            {
                "DeviceName": "/dev/xvda",
                "Ebs": {
                    "VolumeSize": 100,
                    "VolumeType": "gp3",
                    "Encrypted": True,
                    "DeleteOnTermination": True,
                },
            }
        ],
        "InstanceInitiatedShutdownBehavior": "terminate",
        "TagSpecifications": [
            {"ResourceType": "instance", "Tags": tags},
            {"ResourceType": "volume", "Tags": tags},
        ],
        "ClientToken": f"b1-builder-{index}",
    }


def test_the_builder_requires_imdsv2_encrypts_and_tags_at_creation(ec2: object) -> None:
    with Stubber(ec2) as stub:  # type: ignore[arg-type]
        stub.add_response(
            "run_instances",
            {"Instances": [{"InstanceId": "i-1", "Placement": {"AvailabilityZone": "us-east-1a"}}]},
            expected_run("subnet-aaaaaaaa", 0),
        )
        launched = launch(ec2)
    assert launched.instance_id == "i-1"  # type: ignore[attr-defined]


def test_capacity_errors_move_to_the_next_subnet(ec2: object) -> None:
    with Stubber(ec2) as stub:  # type: ignore[arg-type]
        stub.add_client_error("run_instances", "InsufficientInstanceCapacity", "none here")
        stub.add_response(
            "run_instances",
            {"Instances": [{"InstanceId": "i-2", "Placement": {"AvailabilityZone": "us-east-1b"}}]},
            expected_run("subnet-bbbbbbbb", 1),
        )
        launched = launch(ec2)
    assert launched.availability_zone == "us-east-1b"  # type: ignore[attr-defined]


def test_no_capacity_anywhere_says_what_to_do(ec2: object) -> None:
    with Stubber(ec2) as stub:  # type: ignore[arg-type]
        stub.add_client_error("run_instances", "InsufficientInstanceCapacity", "none")
        stub.add_client_error("run_instances", "Unsupported", "not in this AZ")
        with pytest.raises(NoBuilderCapacity, match="petal:subnetIds") as raised:
            launch(ec2)
    assert "subnet-aaaaaaaa" in str(raised.value) and "subnet-bbbbbbbb" in str(raised.value)


def test_throttling_is_retryable_and_other_errors_are_not(ec2: object) -> None:
    with Stubber(ec2) as stub:  # type: ignore[arg-type]
        stub.add_client_error("run_instances", "RequestLimitExceeded", "slow down")
        with pytest.raises(RetryableAwsError):
            launch(ec2)
        stub.add_client_error("run_instances", "UnauthorizedOperation", "no")
        with pytest.raises(AwsRequestFailed, match="UnauthorizedOperation"):
            launch(ec2)


def test_snapshots_are_looked_up_in_this_account_only(ec2: object) -> None:
    with Stubber(ec2) as stub:  # type: ignore[arg-type]
        stub.add_response(
            "describe_snapshots",
            {
                "Snapshots": [
                    {
                        "SnapshotId": "snap-1",
                        "State": "completed",
                        "StartTime": datetime(2025, 1, 1),
                    },
                    {
                        "SnapshotId": "snap-2",
                        "State": "completed",
                        "StartTime": datetime(2025, 2, 1),
                    },
                ]
            },
            {
                "OwnerIds": ["self"],
                "Filters": [
                    {"Name": "tag:petal:fingerprint", "Values": ["sha256:x"]},
                    {"Name": "status", "Values": ["completed"]},
                ],
            },
        )
        found = find_snapshots(ec2, {"petal:fingerprint": "sha256:x"})
    assert [s.snapshot_id for s in found] == ["snap-2", "snap-1"]


def test_the_packages_tag_fits_and_says_how_many_are_left_out() -> None:
    few = ["zlib@1.3.1", "xz@5.4.6"]
    assert packages_tag_value(few) == "zlib@1.3.1, xz@5.4.6"
    many = [f"package-number-{i}@1.0.{i}" for i in range(40)]
    value = packages_tag_value(many)
    assert len(value) <= 256
    shown = value.split(", ")
    assert shown[-1] == f"+{40 - (len(shown) - 1)} more"
    assert shown[:-1] == many[: len(shown) - 1]
    assert packages_tag_value(["x" * 300]) == "+1 more"
    assert packages_tag_value([]) == ""


def volume(state: str, attached_to: tuple[str, ...] = ()) -> VolumeView:
    return VolumeView(
        volume_id="vol-1", state=state, attached_to=attached_to, create_time=None, tags={}
    )


def test_releasing_an_attached_volume_force_detaches_it_and_does_not_wait(ec2: object) -> None:
    with Stubber(ec2) as stub:  # type: ignore[arg-type]
        for instance_id in ("i-1", "i-2"):
            stub.add_response(
                "detach_volume",
                {},
                {"VolumeId": "vol-1", "InstanceId": instance_id, "Force": True},
            )
        released = release_volume(ec2, volume("in-use", ("i-1", "i-2")))
        stub.assert_no_pending_responses()
    assert released is VolumeRelease.DETACHING


@pytest.mark.parametrize("state", ["available", "error"])
def test_releasing_a_detached_volume_deletes_it(ec2: object, state: str) -> None:
    with Stubber(ec2) as stub:  # type: ignore[arg-type]
        stub.add_response("delete_volume", {}, {"VolumeId": "vol-1"})
        assert release_volume(ec2, volume(state)) is VolumeRelease.DELETED


def test_releasing_tolerates_a_volume_that_is_gone_or_going(ec2: object) -> None:
    with Stubber(ec2) as stub:  # type: ignore[arg-type]
        stub.add_client_error("delete_volume", "InvalidVolume.NotFound", "gone")
        assert release_volume(ec2, volume("available")) is VolumeRelease.DELETED
        stub.add_client_error("detach_volume", "IncorrectState", "detaching already")
        assert release_volume(ec2, volume("in-use", ("i-1",))) is VolumeRelease.DETACHING
        # No request at all: the Stubber would fail on an unexpected call.
        assert release_volume(ec2, volume("deleting")) is VolumeRelease.GONE
        assert release_volume(ec2, volume("deleted")) is VolumeRelease.GONE
        assert release_volume(ec2, volume("creating")) is VolumeRelease.WAITING


def test_a_volume_that_cannot_be_deleted_is_an_error(ec2: object) -> None:
    with Stubber(ec2) as stub:  # type: ignore[arg-type]
        stub.add_client_error("delete_volume", "VolumeInUse", "attached")
        with pytest.raises(AwsRequestFailed, match="DeleteVolume vol-1"):
            release_volume(ec2, volume("available"))
