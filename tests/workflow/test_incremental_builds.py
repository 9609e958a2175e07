"""Builds on a parent snapshot (`petal build --from SNAP|auto`, the request's `parent`),
through the real state machine and handlers on the emulator: the simulated builder
installs only what the parent's volume lacks and removes what the seed dropped; the
snapshot and the record name the parent; a parent that does not fit is refused before
anything is launched. (The failure matrix runs every failure on a parent-based build
too: tests/workflow/test_failure_matrix.py.)"""

from __future__ import annotations

from typing import Any

import pytest

from petal.build.records import BuildRecord
from petal.deployment_contract import TAG_BUILD_ID, TAG_MOUNT_DIR, TAG_PARENT
from petal.local.emulator import LocalAws
from petal.local.simulated_volumes import InstallReport, install_report
from petal.snapshot_description import parse_description
from tests.workflow.conftest import seed_document
from tests.workflow.helpers import assert_nothing_left, petal_snapshots

CHANGED = {
    "software": {
        **seed_document()["software"],
        "packages": ["zlib@1.3.1", "bzip2@1.0.8", "xz@5.4.5"],
    }
}


def _build(aws: LocalAws, build_id: str, **request: Any) -> BuildRecord:
    document = request.pop("seed", seed_document())
    result = aws.build({"seed": document, "build_id": build_id, **request})
    assert result.status == "SUCCEEDED", f"{result.error}: {result.cause}"
    record = aws.table.get_build(build_id)
    assert record is not None and record.snapshot_id
    return record


def _log_lines(aws: LocalAws, record: BuildRecord) -> list[str]:
    logs = aws.client("logs")
    stream = f"{record.command_id}/{record.instance_id}/bootstrap/stdout"
    events = logs.get_log_events(
        logGroupName=record.log_group, logStreamName=stream, startFromHead=True
    )["events"]
    return [line for event in events for line in event["message"].splitlines()]


def _report(aws: LocalAws, record: BuildRecord) -> InstallReport:
    report = install_report(_log_lines(aws, record))
    assert report is not None, "the simulated builder reports its install"
    return report


def _kept(lines: list[str]) -> set[str]:
    """The root specs the simulated builder found on the volume already."""
    prefix, suffix = "[+] petal local mode: ", " is on the volume"
    return {line[len(prefix) :].split(suffix)[0] for line in lines if line.startswith(prefix)}


def _snapshot(aws: LocalAws, snapshot_id: str) -> dict[str, Any]:
    (found,) = aws.client("ec2").describe_snapshots(SnapshotIds=[snapshot_id])["Snapshots"]
    return found


def test_a_build_on_its_parent_installs_only_the_difference(aws: LocalAws) -> None:
    parent = _build(aws, "first")
    assert _report(aws, parent) == InstallReport(3, 3, 0, 0, 0.8, 0.8, 3, 3)

    child = _build(aws, "second", seed=seed_document(**CHANGED), parent=parent.snapshot_id)

    report = _report(aws, child)
    assert (report.installed, report.kept, report.removed) == (1, 2, 1)
    assert report.install_minutes < report.fresh_install_minutes / 2
    lines = _log_lines(aws, child)
    assert _kept(lines) == {"zlib@=1.3.1", "bzip2@=1.0.8"}
    assert any(line.startswith("==> petal local mode: removed xz@=5.4.6") for line in lines)
    assert child.parent_snapshot_id == parent.snapshot_id
    assert_nothing_left(aws)


def test_the_child_snapshot_records_its_lineage(aws: LocalAws) -> None:
    parent = _build(aws, "first")
    child = _build(aws, "second", seed=seed_document(**CHANGED), parent=parent.snapshot_id)
    assert child.snapshot_id is not None and parent.snapshot_id is not None

    snapshot = _snapshot(aws, child.snapshot_id)
    tags = {t["Key"]: t["Value"] for t in snapshot["Tags"]}
    assert tags[TAG_PARENT] == parent.snapshot_id
    assert tags[TAG_MOUNT_DIR] == "/shared"
    described = parse_description(snapshot["Description"])
    assert described is not None and described.parent == parent.snapshot_id
    # A fresh build names no parent.
    first = _snapshot(aws, parent.snapshot_id)
    assert TAG_PARENT not in {t["Key"] for t in first["Tags"]}
    assert parse_description(first["Description"]).parent is None  # type: ignore[union-attr]


def test_auto_takes_the_newest_snapshot_and_it_holds_exactly_its_stack(aws: LocalAws) -> None:
    """The second build removed xz@5.4.6: building the first seed again on it (auto
    picks it, the newest) must install xz@5.4.6 again and remove xz@5.4.5."""
    first = _build(aws, "first")
    second = _build(aws, "second", seed=seed_document(**CHANGED), parent=first.snapshot_id)

    third = _build(aws, "third", parent="auto", force=True)

    assert third.parent_snapshot_id == second.snapshot_id
    report = _report(aws, third)
    assert (report.installed, report.kept, report.removed) == (1, 2, 1)
    lines = _log_lines(aws, third)
    assert _kept(lines) == {"zlib@=1.3.1", "bzip2@=1.0.8"}
    assert any(line.startswith("==> petal local mode: removed xz@=5.4.5") for line in lines)
    assert_nothing_left(aws)


def test_an_unchanged_seed_on_its_parent_installs_nothing(aws: LocalAws) -> None:
    first = _build(aws, "first")
    again = _build(aws, "again", parent=first.snapshot_id, force=True)
    report = _report(aws, again)
    assert (report.installed, report.kept, report.removed, report.install_minutes) == (
        0,
        3,
        0,
        0.0,
    )


def _refused(aws: LocalAws, build_id: str, **request: Any) -> str:
    document = request.pop("seed", seed_document())
    result = aws.build({"seed": document, "build_id": build_id, **request})
    assert result.status == "FAILED"
    assert result.error == "InvalidBuildRequest"
    launched = [module for module, build in aws.handler_calls if build == build_id]
    assert "launch" not in launched, "refused before anything is launched"
    described = aws.client("ec2").describe_instances(
        Filters=[{"Name": f"tag:{TAG_BUILD_ID}", "Values": [build_id]}]
    )["Reservations"]
    assert described == []
    assert_nothing_left(aws)
    return str(result.cause)


def test_a_parent_of_another_os_is_refused_before_anything_is_launched(aws: LocalAws) -> None:
    first = _build(aws, "first")
    cause = _refused(aws, "other-os", os="rhel9", parent=first.snapshot_id)
    assert (
        f"parent: {first.snapshot_id} cannot be this build's parent: os: the parent was " in cause
    )
    assert "build --os alinux2023" in cause
    assert "Nothing was created" in cause


def test_a_parent_of_another_architecture_is_refused(aws: LocalAws) -> None:
    first = _build(aws, "first")
    cluster = seed_document()["cluster"]
    cluster["head_node"] = {"instance_type": "c7g.large"}
    cluster["queues"] = [{**cluster["queues"][0], "instance_type": "c7g.large"}]
    arm = seed_document(architecture="arm64", build={"timeout_minutes": 60}, cluster=cluster)
    cause = _refused(aws, "other-arch", seed=arm, parent=first.snapshot_id)
    assert "architecture: the parent was built for x86_64, this build is for arm64" in cause


@pytest.mark.parametrize(
    ("parent", "expected"),
    [
        ("snap-0123456789abcdef0", "is not a snapshot of this account in this region"),
        ("auto", "parent: auto found no completed snapshot of seed workload-basic"),
    ],
)
def test_a_missing_parent_is_refused(aws: LocalAws, parent: str, expected: str) -> None:
    cause = _refused(aws, "orphan", parent=parent)
    assert expected in cause


def test_a_snapshot_petal_did_not_build_is_refused(aws: LocalAws) -> None:
    ec2 = aws.client("ec2")
    volume = ec2.create_volume(AvailabilityZone=f"{aws.region}a", Size=8)
    snapshot = ec2.create_snapshot(VolumeId=volume["VolumeId"], Description="my backup")
    cause = _refused(aws, "stranger", parent=snapshot["SnapshotId"])
    assert "is not a snapshot petal built" in cause
    assert len(petal_snapshots(aws)) == 0
