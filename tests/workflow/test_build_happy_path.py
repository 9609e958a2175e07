"""A whole build on the emulator: the happy path and the reuse of an existing snapshot."""

from __future__ import annotations

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
from petal.local.emulator import LocalAws
from petal.seed.fingerprint import fingerprint
from petal.seed.loading import parse_seed_mapping
from petal.snapshot_description import parse_description
from tests.workflow.conftest import seed_document
from tests.workflow.helpers import locks, petal_instances, petal_snapshots, petal_volumes


def test_a_build_ends_with_one_tagged_snapshot_and_nothing_left(aws: LocalAws) -> None:
    document = seed_document()
    seed = parse_seed_mapping(document)
    result = aws.build({"seed": document, "build_id": "happy-1"})

    assert result.status == "SUCCEEDED", result.cause
    snapshots = petal_snapshots(aws)
    assert len(snapshots) == 1
    snapshot = snapshots[0]
    assert snapshot["State"] == "completed"
    assert result.output is not None and result.output["snapshot_id"] == snapshot["SnapshotId"]
    tags = {t["Key"]: t["Value"] for t in snapshot["Tags"]}
    assert tags[TAG_FINGERPRINT] == fingerprint(seed)
    assert tags[TAG_OS] == seed.os
    assert tags[TAG_ARCH] == seed.architecture
    assert tags[TAG_SPACK_VERSION] == seed.software.spack_version
    assert tags[TAG_SEED] == seed.name
    assert tags[TAG_BUILD_ID] == "happy-1"
    assert tags[TAG_MANAGED] == "true"
    assert tags[TAG_PACKAGES] == ", ".join(seed.software.packages)
    described = parse_description(snapshot["Description"])
    assert described is not None
    assert (described.fingerprint, described.os, described.architecture, described.seed) == (
        fingerprint(seed),
        seed.os,
        seed.architecture,
        seed.name,
    )

    assert petal_instances(aws) == []
    assert petal_volumes(aws) == []
    assert locks(aws) == []
    record = aws.table.get_build("happy-1")
    assert record is not None
    assert record.status == "SUCCEEDED"
    assert record.snapshot_id == snapshot["SnapshotId"]
    assert record.step == "done"
    assert record.progress is not None and record.progress.total == len(seed.software.packages)
    assert record.finished_at and record.duration_seconds is not None
    assert ("BuildSucceeded", 1, "Count") in aws.metrics
    assert any(name == "BuildDurationSeconds" for name, _, _ in aws.metrics)


def test_an_existing_snapshot_is_reused_without_launching(aws: LocalAws) -> None:
    document = seed_document()
    first = aws.build({"seed": document, "build_id": "first"})
    assert first.status == "SUCCEEDED", first.cause
    calls_before = len(aws.handler_calls)

    second = aws.build({"seed": document, "build_id": "second"})

    assert second.status == "SUCCEEDED", second.cause
    assert second.output is not None
    assert second.output["reused"] is True
    assert second.output["snapshot_id"] == first.output["snapshot_id"]  # type: ignore[index]
    assert [m for m, _ in aws.handler_calls[calls_before:]] == ["prepare"]
    assert len(petal_snapshots(aws)) == 1
    record = aws.table.get_build("second")
    assert record is not None and record.status == "REUSED"
    assert ("SnapshotReused", 1, "Count") in aws.metrics


def test_force_builds_again(aws: LocalAws) -> None:
    document = seed_document()
    assert aws.build({"seed": document, "build_id": "one"}).status == "SUCCEEDED"
    forced = aws.build({"seed": document, "build_id": "two", "force": True})
    assert forced.status == "SUCCEEDED", forced.cause
    assert forced.output is not None and not forced.output.get("reused")
    assert len(petal_snapshots(aws)) == 2


def test_a_completed_snapshot_is_shared_with_the_trusted_accounts() -> None:
    from petal.local.emulator import LocalAws as Local
    from tests.workflow.conftest import REPO_ROOT

    with Local(REPO_ROOT, trusted_accounts=("111111111111",)) as aws:
        result = aws.build({"seed": seed_document(), "build_id": "shared"})
        assert result.status == "SUCCEEDED", result.cause
        assert result.output is not None
        permissions = aws.client("ec2").describe_snapshot_attribute(
            SnapshotId=result.output["snapshot_id"], Attribute="createVolumePermission"
        )["CreateVolumePermissions"]
        assert permissions == [{"UserId": "111111111111"}]
