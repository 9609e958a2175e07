"""Bad input fails in Prepare with the field and the fix, and leaves nothing; the
request's os/architecture build another variant of the same seed."""

from __future__ import annotations

from typing import Any

import pytest

from petal.deployment_contract import TAG_ARCH, TAG_OS
from petal.local.emulator import LocalAws
from tests.workflow.conftest import seed_document
from tests.workflow.helpers import assert_nothing_left, petal_snapshots

BAD_INPUTS: list[tuple[str, dict[str, Any], str]] = [
    ("neither seed nor uri", {"force": True}, "give exactly one of 'seed'"),
    ("unknown field", {"seed": {}, "colour": "red"}, "unknown field(s) colour"),
    ("bad build id", {"seed": {}, "build_id": "no spaces"}, "build_id"),
    ("bad architecture", {"seed": {}, "architecture": "aarch64"}, "architecture"),
    ("unknown os", {"seed": {}, "os": "windows"}, "os: 'windows' is not known"),
    ("invalid seed", {"seed": {"name": "Bad Name"}}, "the seed is invalid"),
]


@pytest.mark.parametrize(
    ("label", "request_", "expected"), BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS]
)
def test_invalid_input_names_the_field_and_leaves_nothing(
    aws: LocalAws, label: str, request_: dict[str, Any], expected: str
) -> None:
    result = aws.build(request_)

    assert result.status == "FAILED"
    assert result.error == "InvalidBuildRequest"
    assert expected in str(result.cause)
    assert "failed in step prepare" in str(result.cause)
    assert "Traceback" not in str(result.cause)
    assert_nothing_left(aws)
    # Every execution that started leaves a record saying how it ended.
    [record] = aws.table.list_builds()
    assert (record.status, record.step) == ("FAILED", "prepare")
    assert record.error is not None
    assert expected in record.error.cause


def test_a_seed_problem_names_the_field_and_the_fix(aws: LocalAws) -> None:
    document = seed_document()
    document["volume"] = {**document["volume"], "size_gb": "20GB"}
    result = aws.build({"seed": document})
    assert result.status == "FAILED"
    assert "volume.size_gb" in str(result.cause)
    assert "must be a whole number" in str(result.cause)


def test_a_missing_seed_object_is_named(aws: LocalAws) -> None:
    uri = f"s3://{aws.deployment.seed_bucket}/seeds/nothing-here.yaml"
    result = aws.build({"seed_uri": uri})
    assert result.status == "FAILED"
    assert f"{uri} does not exist" in str(result.cause)
    assert_nothing_left(aws)


def test_a_seed_from_s3_builds(aws: LocalAws) -> None:
    seed_text = (
        "name: from-s3\n"
        "description: small\n"
        "software:\n  spack_version: v0.23.0\n  packages: [zlib@1.3.1]\n"
        "volume:\n  size_gb: 20\n"
    )
    aws.client("s3").put_object(
        Bucket=aws.deployment.seed_bucket, Key="seeds/from-s3.yaml", Body=seed_text.encode()
    )
    uri = f"s3://{aws.deployment.seed_bucket}/seeds/from-s3.yaml"
    result = aws.build({"seed_uri": uri, "build_id": "s3-seed"})
    assert result.status == "SUCCEEDED", result.cause
    record = aws.table.get_build("s3-seed")
    assert record is not None and record.seed_source == uri


def test_os_and_architecture_of_the_request_build_another_variant(aws: LocalAws) -> None:
    document = seed_document()
    # The seed pins x86_64 instance types; without them the defaults follow the architecture.
    del document["build"]["instance_type"]
    del document["cluster"]["head_node"]["instance_type"]
    for queue in document["cluster"]["queues"]:
        del queue["instance_type"]
    result = aws.build(
        {"seed": document, "os": "ubuntu2404", "architecture": "arm64", "build_id": "arm"}
    )
    assert result.status == "SUCCEEDED", result.cause
    [snapshot] = petal_snapshots(aws)
    tags = {t["Key"]: t["Value"] for t in snapshot["Tags"]}
    assert (tags[TAG_OS], tags[TAG_ARCH]) == ("ubuntu2404", "arm64")
    assert "os=ubuntu2404 arch=arm64" in snapshot["Description"]
    instance_calls = [m for m, _ in aws.handler_calls]
    assert "launch" in instance_calls


def test_an_override_that_does_not_fit_the_seed_is_reported(aws: LocalAws) -> None:
    # workload-basic pins an x86_64 builder (c6a.xlarge).
    result = aws.build({"seed": seed_document(), "architecture": "arm64"})
    assert result.status == "FAILED"
    assert "build.instance_type" in str(result.cause)
    assert "architecture=arm64 from the build request" in str(result.cause)
    assert_nothing_left(aws)


@pytest.mark.parametrize(
    "where", ["{bucket}/elsewhere/seed.yaml", "another-bucket/seeds/seed.yaml"]
)
def test_a_seed_uri_outside_the_seed_buckets_seeds_is_refused(aws: LocalAws, where: str) -> None:
    uri = "s3://" + where.format(bucket=aws.deployment.seed_bucket)
    result = aws.build({"seed_uri": uri})
    assert result.status == "FAILED"
    assert result.error == "InvalidBuildRequest"
    assert f"seed_uri: {uri} is not" in str(result.cause)
    assert f"upload the seed to s3://{aws.deployment.seed_bucket}/seeds/" in str(result.cause)
    assert_nothing_left(aws)
