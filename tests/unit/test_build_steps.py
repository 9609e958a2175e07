"""Core logic of the build steps (petal.build.steps, petal.build.intake) without the
state machine: the handlers' functions called with moto's clients."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from petal.build.intake import NotASeedUpload, SeedUpload, intake_build_id, seed_upload
from petal.build.records import BuildRecord, iso
from petal.build.steps.cleanup import cleanup
from petal.build.steps.failure import describe_failure, failure_message, public_error_name
from petal.build.steps.prepare import prepare
from petal.build.steps.snapshot import snapshot_tags
from petal.build.table import BuildTable
from petal.errors import CleanupPending, InvalidBuildRequest
from tests.unit.prepare_account import (
    EXECUTION,
    NOW,
    SEED,
    SETTINGS,
    emulated_account,
    no_s3,
)


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, BuildTable]]:
    with emulated_account(monkeypatch) as account:
        yield account.ec2, account.table


def test_prepare_rejects_a_timeout_within_the_heartbeat_window(aws: tuple[Any, BuildTable]) -> None:
    ec2, table = aws
    document = SEED.to_document()
    document["build"]["timeout_minutes"] = 30
    event = {
        "request": {"seed": document},
        "execution": EXECUTION,
        "settings": {"bootstrap_heartbeat_seconds": 1800},
    }
    with pytest.raises(InvalidBuildRequest, match=r"build\.timeout_minutes"):
        prepare(event, ec2=ec2, read_seed=no_s3, table=table, now=NOW)
    assert table.list_builds() == []


def test_prepare_without_an_official_ami_creates_nothing(aws: tuple[Any, BuildTable]) -> None:
    ec2, table = aws
    event = {"request": {"seed": SEED.to_document()}, "execution": EXECUTION, "settings": SETTINGS}
    with pytest.raises(Exception, match="official ParallelCluster AMI"):
        prepare(event, ec2=ec2, read_seed=no_s3, table=table, now=NOW)
    assert table.list_builds() == []
    assert list(table.locks()) == []


def test_cleanup_is_idempotent_and_waits_for_detaching_volumes(aws: tuple[Any, BuildTable]) -> None:
    ec2, table = aws
    table.create_build(
        BuildRecord(
            build_id="b1",
            status="RUNNING",
            started_at=iso(NOW),
            fingerprint="sha256:" + "0" * 64,
            os="alinux2023",
            architecture="x86_64",
            execution_arn=EXECUTION["arn"],
        )
    )
    table.acquire_lock(
        "sha256:" + "0" * 64,
        "alinux2023",
        "x86_64",
        build_id="b1",
        execution_arn=EXECUTION["arn"],
        now=NOW,
        expires_at=NOW,
    )
    tags = [{"Key": "petal:managed", "Value": "true"}, {"Key": "petal:build-id", "Value": "b1"}]
    image = ec2.register_image(Name="builder-image", RootDeviceName="/dev/xvda")["ImageId"]
    instance = ec2.run_instances(
        ImageId=image,
        MinCount=1,
        MaxCount=1,
        TagSpecifications=[{"ResourceType": "instance", "Tags": tags}],
    )["Instances"][0]
    volume = ec2.create_volume(
        AvailabilityZone=instance["Placement"]["AvailabilityZone"],
        Size=1,
        TagSpecifications=[{"ResourceType": "volume", "Tags": tags}],
    )["VolumeId"]
    ec2.attach_volume(VolumeId=volume, InstanceId=instance["InstanceId"], Device="/dev/sdf")
    # The state knows nothing (launch failed before returning): tags find both.
    event = {
        "state": {"failure": {"launch": {"Error": "InjectedFailure", "Cause": "boom"}}},
        "execution": EXECUTION,
    }

    first = cleanup(event, ec2=ec2, table=table, now=NOW)

    assert first.status == "FAILED" and first.failed_step == "launch"
    assert (
        ec2.describe_volumes(Filters=[{"Name": "tag:petal:build-id", "Values": ["b1"]}])["Volumes"]
        == []
    )
    again = cleanup(event, ec2=ec2, table=table, now=NOW)
    assert again.status == "FAILED" and again.removed == ()
    record = table.get_build("b1")
    assert record is not None and record.status == "FAILED"
    assert record.error is not None and record.error.error == "InjectedFailure"
    assert list(table.locks()) == []


def test_cleanup_of_someone_elses_build_id_touches_nothing(aws: tuple[Any, BuildTable]) -> None:
    ec2, table = aws
    table.create_build(
        BuildRecord(build_id="b1", status="RUNNING", started_at=iso(NOW), execution_arn="other")
    )
    event = {
        "state": {"failure": {"prepare": {"Error": "InvalidBuildRequest", "Cause": "taken"}}},
        "execution": EXECUTION,
    }
    outcome = cleanup(event, ec2=ec2, table=table, now=NOW)
    assert outcome.status == "FAILED"
    record = table.get_build("b1")
    assert record is not None and record.status == "RUNNING"


def test_cleanup_pending_is_raised_while_a_volume_detaches(aws: tuple[Any, BuildTable]) -> None:
    _, table = aws
    ec2 = boto3.client("ec2", region_name="us-east-1")
    event = {"state": {"resources": {"volume_id": "vol-0123456789abcdef0"}}, "execution": EXECUTION}
    with Stubber(ec2) as stub:
        stub.add_response(
            "describe_volumes",
            {
                "Volumes": [
                    {
                        "VolumeId": "vol-0123456789abcdef0",
                        "State": "in-use",
                        "Attachments": [{"InstanceId": "i-1", "State": "detaching"}],
                    }
                ]
            },
            {"VolumeIds": ["vol-0123456789abcdef0"]},
        )
        with pytest.raises(CleanupPending, match="vol-0123456789abcdef0"):
            cleanup(event, ec2=ec2, table=table, now=NOW)


def test_cleanup_releases_each_volume_and_names_those_it_waits_for(
    aws: tuple[Any, BuildTable],
) -> None:
    _, table = aws
    ec2 = boto3.client("ec2", region_name="us-east-1")
    views: dict[str, dict[str, Any]] = {
        "vol-0000000000000000a": {
            "State": "in-use",
            "Attachments": [{"InstanceId": "i-1", "State": "attached"}],
        },
        "vol-0000000000000000b": {"State": "available"},
        "vol-0000000000000000c": {"State": "creating"},
    }
    event = {
        "state": {"resources": {"volume_id": "vol-0000000000000000b"}},
        "execution": EXECUTION,
    }
    table.create_build(
        BuildRecord(
            build_id="b1",
            status="RUNNING",
            started_at=iso(NOW),
            execution_arn=EXECUTION["arn"],
            volume_id="vol-0000000000000000c",
        )
    )
    with Stubber(ec2) as stub:
        stub.add_response("describe_instances", {"Reservations": []})
        stub.add_response(
            "describe_volumes",
            {"Volumes": [{"VolumeId": "vol-0000000000000000a", **views["vol-0000000000000000a"]}]},
        )
        for volume_id, view in views.items():
            stub.add_response(
                "describe_volumes",
                {"Volumes": [{"VolumeId": volume_id, **view}]},
                {"VolumeIds": [volume_id]},
            )
            if volume_id.endswith("a"):
                expected = {"VolumeId": volume_id, "InstanceId": "i-1", "Force": True}
                stub.add_response("detach_volume", {}, expected)
            if volume_id.endswith("b"):
                stub.add_response("delete_volume", {}, {"VolumeId": volume_id})
        with pytest.raises(CleanupPending) as raised:
            cleanup(event, ec2=ec2, table=table, now=NOW)
        stub.assert_no_pending_responses()
    assert str(raised.value) == (
        "waiting for volume(s) vol-0000000000000000a (detaching), "
        "vol-0000000000000000c (creating) to be released before deleting them"
    )
    record = table.get_build("b1")
    assert record is not None and (record.status, record.step) == ("RUNNING", "cleanup")


def test_cleanup_after_success_closes_the_record_and_releases_the_lock(
    aws: tuple[Any, BuildTable],
) -> None:
    ec2, table = aws
    fingerprint = "sha256:" + "1" * 64
    table.create_build(
        BuildRecord(
            build_id="b1",
            status="RUNNING",
            started_at="2025-02-28T23:00:00Z",
            fingerprint=fingerprint,
            os="alinux2023",
            architecture="x86_64",
            execution_arn=EXECUTION["arn"],
        )
    )
    table.acquire_lock(
        fingerprint,
        "alinux2023",
        "x86_64",
        build_id="b1",
        execution_arn=EXECUTION["arn"],
        now=NOW,
        expires_at=NOW,
    )
    event = {"state": {"snapshot": {"snapshot_id": "snap-1"}}, "execution": EXECUTION}

    outcome = cleanup(event, ec2=ec2, table=table, now=NOW)

    assert outcome.to_json() == {
        "build_id": "b1",
        "status": "SUCCEEDED",
        "snapshot_id": "snap-1",
        "duration_seconds": 3600,
        "removed": [],
    }
    record = table.get_build("b1")
    assert record is not None
    assert (record.status, record.step, record.snapshot_id) == ("SUCCEEDED", "done", "snap-1")
    assert record.duration_seconds == 3600 and record.error is None
    assert list(table.locks()) == []


def test_failure_messages_name_step_reason_and_remedy() -> None:
    cause = json.dumps({"errorType": "NoBuilderCapacity", "errorMessage": "no c6a.xlarge anywhere"})
    step, error, text = describe_failure(
        {"launch": {"Error": "NoBuilderCapacity", "Cause": cause}}, "b1", None
    )
    assert (step, error) == ("launch", "NoBuilderCapacity")
    assert text.startswith(
        "Build b1 failed in step launch (NoBuilderCapacity): no c6a.xlarge anywhere"
    )
    assert "petal:subnetIds" in text
    _, _, plain = describe_failure({"bootstrap": {"Error": "States.Timeout"}}, "b2", None)
    assert "(no details)" in plain and "raise build.timeout_minutes" in plain
    assert failure_message("not json") == "not json"
    assert public_error_name("States.HeartbeatTimeout") == "HeartbeatTimeout"
    assert public_error_name("BootstrapFailed") == "BootstrapFailed"


def test_snapshot_tags_and_description_inputs() -> None:
    build = {
        "build_id": "b1",
        "seed_name": "bioinformatics",
        "fingerprint": "sha256:" + "f" * 64,
        "os": "alinux2023",
        "architecture": "x86_64",
        "spack_version": "v0.23.0",
        "packages": ["gcc@11.3.0", "samtools@1.17"],
    }
    tags = snapshot_tags(build)
    assert tags["petal:packages"] == "gcc@11.3.0, samtools@1.17"
    assert tags["petal:managed"] == "true"
    assert all(len(v) <= 256 for v in tags.values())


def test_intake_ids_follow_the_object_version() -> None:
    one = SeedUpload("bucket", "seeds/Bio Stack.yaml", "v1", "e1")
    assert intake_build_id(one) == intake_build_id(one)
    assert intake_build_id(one).startswith("bio-stack-")
    assert intake_build_id(one) != intake_build_id(
        SeedUpload("bucket", "seeds/Bio Stack.yaml", "v2", "e1")
    )
    # Unversioned buckets: the ETag tells uploads apart.
    assert SeedUpload("b", "k", None, "etag1").version == "etag-etag1"
    with pytest.raises(NotASeedUpload):
        seed_upload({"detail-type": "Object Deleted", "detail": {}})
    with pytest.raises(NotASeedUpload):
        seed_upload({"detail-type": "Object Created", "detail": {"bucket": {}}})
