"""The seed bucket's intake, and the janitor's sweep."""

from __future__ import annotations

import json

from petal.deployment_contract import (
    INTAKE_FUNCTION,
    ROLE_BUILDER,
    ROLE_VOLUME,
    TAG_BUILD_ID,
    TAG_MANAGED,
    TAG_ROLE,
)
from petal.local.emulator import LocalAws, LocalFailure
from tests.workflow.conftest import SEED_FILE, seed_document
from tests.workflow.helpers import (
    assert_nothing_left,
    executions,
    petal_instances,
    software_volumes,
)


def test_an_invalid_seed_is_recorded_as_failed_and_nothing_starts(aws: LocalAws) -> None:
    aws.upload_seed("seeds/broken.yaml", "name: Broken Name\nsoftware: {}\n")

    assert executions(aws) == []
    [record] = aws.table.list_builds()
    assert record.status == "FAILED"
    assert record.error is not None and record.error.step == "intake"
    assert "name" in record.error.cause and "Fix it and upload it again" in record.error.cause
    assert record.seed_source is not None and "seeds/broken.yaml" in record.seed_source
    assert ("BuildFailed", 1, "Count") in aws.metrics
    assert_nothing_left(aws)


def test_the_same_upload_delivered_twice_starts_one_build(aws: LocalAws) -> None:
    event = aws.upload_seed("seeds/workload-basic.yaml", SEED_FILE.read_bytes())

    again = aws.invoke(INTAKE_FUNCTION, event)

    assert again["started"] is False
    [execution] = executions(aws)
    assert again["execution_arn"] == execution["executionArn"]
    result = aws.wait(execution["executionArn"])
    assert result.status == "SUCCEEDED", result.cause
    request = json.loads(
        aws.client("stepfunctions").describe_execution(executionArn=execution["executionArn"])[
            "input"
        ]
    )
    assert request["seed_version_id"] == event["detail"]["object"]["version-id"]
    # A third delivery, after the build finished, still starts nothing.
    assert aws.invoke(INTAKE_FUNCTION, event)["started"] is False
    assert len(executions(aws)) == 1


def test_a_new_version_of_the_seed_starts_a_new_build(aws: LocalAws) -> None:
    aws.upload_seed("seeds/workload-basic.yaml", SEED_FILE.read_bytes())
    aws.upload_seed("seeds/workload-basic.yaml", SEED_FILE.read_bytes() + b"\n# v2\n")
    assert len(executions(aws)) == 2
    for execution in executions(aws):
        aws.wait(execution["executionArn"])


def orphan(aws: LocalAws, build_id: str) -> tuple[str, str]:
    """A builder instance and a volume as a stopped build leaves them."""
    ec2 = aws.client("ec2")
    image = next(iter(aws.deployment.image_ids.values()))
    tags = [
        {"Key": TAG_MANAGED, "Value": "true"},
        {"Key": TAG_BUILD_ID, "Value": build_id},
    ]
    instance = ec2.run_instances(
        ImageId=image,
        MinCount=1,
        MaxCount=1,
        SubnetId=aws.deployment.subnet_ids[0],
        TagSpecifications=[
            {"ResourceType": "instance", "Tags": [*tags, {"Key": TAG_ROLE, "Value": ROLE_BUILDER}]}
        ],
    )["Instances"][0]
    volume = ec2.create_volume(
        AvailabilityZone=instance["Placement"]["AvailabilityZone"],
        Size=20,
        VolumeType="gp3",
        TagSpecifications=[
            {"ResourceType": "volume", "Tags": [*tags, {"Key": TAG_ROLE, "Value": ROLE_VOLUME}]}
        ],
    )
    return instance["InstanceId"], volume["VolumeId"]


def test_the_janitor_keeps_young_resources(aws: LocalAws) -> None:
    orphan(aws, "ghost")
    report = aws.run_janitor()  # build timeout 360 min + margin: all of it is young
    assert report["terminated_instances"] == [] and report["deleted_volumes"] == []
    assert len(petal_instances(aws)) == 1


def test_the_janitor_removes_orphans_and_keeps_a_running_build(aws: LocalAws) -> None:
    ghost_instance, ghost_volume = orphan(aws, "ghost")
    running_arn = aws.start_build(
        {"seed": seed_document(), "build_id": "alive"},
        failure=LocalFailure("bootstrap", "hang"),
    )
    alive = aws.wait_for_record("alive", lambda r: r.step == "bootstrap" and bool(r.command_id))

    report = aws.run_janitor(older_than_minutes=0)

    assert report["terminated_instances"] == [ghost_instance]
    assert report["deleted_volumes"] == [ghost_volume]
    assert any("alive" in kept and "running" in kept for kept in report["kept"])
    assert {i["InstanceId"] for i in petal_instances(aws)} == {alive.instance_id}
    assert {v["VolumeId"] for v in software_volumes(aws)} == {alive.volume_id}

    # Stopped: no Catch runs; the next sweep cleans up and closes the record.
    aws.stop_execution(running_arn)
    aws.wait(running_arn)
    report = aws.run_janitor(older_than_minutes=0)
    assert report["terminated_instances"] == [alive.instance_id]
    assert report["closed_builds"] == ["alive: CANCELLED"]
    assert report["released_locks"]
    aws.run_janitor(older_than_minutes=0)  # the volume, once the instance let it go
    assert_nothing_left(aws)
    record = aws.table.get_build("alive")
    assert record is not None and record.status == "CANCELLED"
    assert any("janitor" in note for note in record.notes)
