"""Intake is idempotent per object version and never writes over a build's record;
it reads only the seed bucket's seeds/, and refuses an oversized object by its size."""

from __future__ import annotations

import copy

from petal.deployment_contract import INTAKE_FUNCTION
from petal.local.emulator import LocalAws
from petal.seed.model import MAX_SEED_BYTES
from tests.workflow.conftest import SEED_FILE
from tests.workflow.helpers import assert_nothing_left, executions


def test_a_repeated_delivery_after_success_leaves_the_record_succeeded(aws: LocalAws) -> None:
    event = aws.upload_seed("seeds/workload-basic.yaml", SEED_FILE.read_bytes())
    [execution] = executions(aws)
    assert aws.wait(execution["executionArn"]).status == "SUCCEEDED"
    [record] = aws.table.list_builds()
    # The object version is gone (deleted), so a late redelivery cannot read it: it
    # must still not turn the finished build into a failed one.
    aws.client("s3").delete_object(
        Bucket=aws.deployment.seed_bucket,
        Key="seeds/workload-basic.yaml",
        VersionId=event["detail"]["object"]["version-id"],
    )
    aws.table._client.delete_item(  # the marker's TTL has passed
        TableName=aws.table.table_name,
        Key={
            "pk": {
                "S": f"INTAKE#{aws.deployment.seed_bucket}/seeds/workload-basic.yaml#"
                f"{event['detail']['object']['version-id']}"
            },
            "sk": {"S": "INTAKE"},
        },
    )

    again = aws.invoke(INTAKE_FUNCTION, event)

    assert again["started"] is False
    after = aws.table.get_build(record.build_id)
    assert after is not None and after.status == "SUCCEEDED"
    assert after.to_json() == record.to_json()
    assert len(executions(aws)) == 1


def test_a_repeated_delivery_mid_build_keeps_the_record_and_the_lock_is_released(
    aws: LocalAws,
) -> None:
    event = aws.upload_seed("seeds/workload-basic.yaml", SEED_FILE.read_bytes())
    [execution] = executions(aws)
    build_id = execution["name"]
    aws.wait_for_record(build_id, lambda r: r.status == "RUNNING" and r.step != "prepare")
    broken = copy.deepcopy(event)
    broken["detail"]["object"]["size"] = 200 * 1024 * 1024  # a lying or garbled event

    again = aws.invoke(INTAKE_FUNCTION, broken)

    assert again["started"] is False
    running = aws.table.get_build(build_id)
    assert running is not None and running.execution_arn == execution["executionArn"]
    assert aws.wait(execution["executionArn"]).status == "SUCCEEDED"
    record = aws.table.get_build(build_id)
    assert record is not None and record.status == "SUCCEEDED"
    assert_nothing_left(aws)


def test_only_the_seed_buckets_seeds_prefix_is_read(aws: LocalAws) -> None:
    event = aws.upload_seed("seeds/workload-basic.yaml", SEED_FILE.read_bytes(), deliver=False)
    elsewhere = copy.deepcopy(event)
    elsewhere["detail"]["bucket"]["name"] = "someone-elses-bucket"
    outside = copy.deepcopy(event)
    outside["detail"]["object"]["key"] = "private/workload-basic.yaml"

    for foreign in (elsewhere, outside):
        result = aws.invoke(INTAKE_FUNCTION, foreign)
        assert result["started"] is False and result["reason"].startswith("ignored:")
    assert executions(aws) == []
    assert aws.table.list_builds() == []


def test_an_oversized_object_is_refused_by_its_size_without_reading_it(aws: LocalAws) -> None:
    big = b"#" * (MAX_SEED_BYTES + 1)
    event = aws.upload_seed("seeds/huge.yaml", big, deliver=False)
    del event["detail"]["object"]["size"]  # the size must then come from HeadObject
    aws.invoke(INTAKE_FUNCTION, event)

    [record] = aws.table.list_builds()
    assert record.status == "FAILED" and record.error is not None
    assert f"at most {MAX_SEED_BYTES:,} bytes" in record.error.cause
    assert executions(aws) == []
