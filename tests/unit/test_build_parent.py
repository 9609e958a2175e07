"""The parent of an incremental build (petal.build.parent): each snapshot that cannot be
one is refused with the field and the fix; `auto` takes the newest fitting one."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from petal.build.config import CostLimits
from petal.build.parent import Parent, resolve_parent
from petal.build.request import BuildRequestError, parse_build_request
from petal.build.steps.prepare import check_parent_size
from petal.errors import InvalidBuildRequest
from petal.snapshot_description import format_description
from tests.unit.prepare_account import SEED

FP = "sha256:" + "ab" * 32
SNAP = "snap-0123456789abcdef0"
ACCOUNT = "123456789012"


def petal_snapshot(
    snapshot_id: str = SNAP,
    *,
    owner: str = ACCOUNT,
    state: str = "completed",
    os_name: str = "alinux2023",
    arch: str = "x86_64",
    spack: str | None = "v0.23.0",
    tags: dict[str, str] | None = None,
    started: datetime = datetime(2025, 1, 1, tzinfo=UTC),
    size: int = 30,
) -> dict[str, Any]:
    all_tags = {
        "petal:managed": "true",
        "petal:seed": SEED.name,
        "petal:os": os_name,
        "petal:arch": arch,
        **({"petal:spack-version": spack} if spack else {}),
        **(tags or {}),
    }
    return {
        "SnapshotId": snapshot_id,
        "OwnerId": owner,
        "State": state,
        "Progress": "100%" if state == "completed" else "42%",
        "VolumeSize": size,
        "Encrypted": True,
        "StartTime": started,
        "Description": format_description(FP, os_name, arch, SEED.name),
        "Tags": [{"Key": k, "Value": v} for k, v in all_tags.items()],
    }


class FakeEc2:
    """DescribeSnapshots over a list, as EC2 answers it: OwnerIds=["self"] sees this
    account's own snapshots, SnapshotIds any it may see (shared ones too)."""

    def __init__(self, *snapshots: dict[str, Any]) -> None:
        self.snapshots = list(snapshots)

    def describe_snapshots(self, **kwargs: Any) -> dict[str, Any]:
        found = self.snapshots
        if kwargs.get("OwnerIds") == ["self"]:
            found = [s for s in found if s["OwnerId"] == ACCOUNT]
        wanted = set(kwargs.get("SnapshotIds", []))
        for item in kwargs.get("Filters", []):
            if item["Name"] == "snapshot-id":
                wanted |= set(item["Values"])
            elif item["Name"] == "status":
                found = [s for s in found if s["State"] in item["Values"]]
            elif item["Name"].startswith("tag:"):
                key = item["Name"][4:]
                found = [
                    s
                    for s in found
                    if {t["Key"]: t["Value"] for t in s["Tags"]}.get(key) in item["Values"]
                ]
        if wanted:
            found = [s for s in found if s["SnapshotId"] in wanted]
        return {"Snapshots": found}

    def get_paginator(self, name: str) -> Any:
        assert name == "describe_snapshots"
        fake = self

        class Paginator:
            def paginate(self, **kwargs: Any) -> list[dict[str, Any]]:
                return [fake.describe_snapshots(**kwargs)]

        return Paginator()


def refusal(ec2: FakeEc2, wanted: str = SNAP, seed: Any = SEED) -> str:
    with pytest.raises(InvalidBuildRequest) as raised:
        resolve_parent(ec2, seed, wanted)
    message = str(raised.value)
    assert message.endswith("Nothing was created.")
    return message


def test_a_fitting_snapshot_is_the_parent() -> None:
    assert resolve_parent(FakeEc2(petal_snapshot()), SEED, SNAP) == Parent(SNAP, 30, True)


def test_auto_takes_the_newest_fitting_snapshot_not_retired() -> None:
    day = datetime(2025, 1, 1, tzinfo=UTC)
    ec2 = FakeEc2(
        petal_snapshot("snap-00000001", started=day),
        petal_snapshot("snap-00000002", started=day + timedelta(days=1)),
        petal_snapshot(
            "snap-00000003", started=day + timedelta(days=2), tags={"petal:lifecycle": "retired"}
        ),
        petal_snapshot("snap-00000004", started=day + timedelta(days=3), os_name="rhel9"),
        petal_snapshot("snap-00000005", started=day + timedelta(days=4), state="pending"),
    )
    assert resolve_parent(ec2, SEED, "auto").snapshot_id == "snap-00000002"


def test_auto_without_a_snapshot_says_to_build_once() -> None:
    message = refusal(FakeEc2(petal_snapshot(os_name="rhel9")), "auto")
    assert "parent: auto found no completed snapshot of seed workload-basic for " in message
    assert "build it once without --from" in message


def test_a_missing_snapshot_is_refused() -> None:
    assert f"parent: {SNAP} is not a snapshot of this account in this region" in refusal(FakeEc2())


def test_a_snapshot_of_another_account_is_refused() -> None:
    message = refusal(FakeEc2(petal_snapshot(owner="999999999999")))
    assert f"parent: {SNAP} belongs to account 999999999999, not this one" in message


def test_an_unfinished_snapshot_is_refused() -> None:
    message = refusal(FakeEc2(petal_snapshot(state="pending")))
    assert f"parent: {SNAP} is pending (42%), not completed: wait for it" in message


def test_a_snapshot_without_petals_tags_is_refused() -> None:
    stranger = petal_snapshot(tags={"petal:managed": "false"})
    assert "is not a snapshot petal built" in refusal(FakeEc2(stranger))


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"os_name": "rhel9"}, "os: the parent was built for rhel9, this build is for alinux2023"),
        (
            {"arch": "arm64"},
            "architecture: the parent was built for arm64, this build is for x86_64",
        ),
        (
            {"spack": "v0.22.0"},
            "software.spack_version: the parent holds Spack v0.22.0, the seed asks for v0.23.0",
        ),
        ({"spack": None}, "software.spack_version: the parent holds Spack (untagged)"),
        (
            {"tags": {"petal:mount-dir": "/opt/petal"}},
            "mount point: the parent's volume was mounted at /opt/petal, builds mount at /shared",
        ),
    ],
)
def test_a_parent_of_another_variant_is_refused_naming_the_field(
    changes: dict[str, Any], expected: str
) -> None:
    message = refusal(FakeEc2(petal_snapshot(**changes)))
    assert f"parent: {SNAP} cannot be this build's parent: " in message
    assert expected in message


def test_every_mismatch_is_named_at_once() -> None:
    message = refusal(FakeEc2(petal_snapshot(os_name="rhel9", spack="v0.22.0")))
    assert "os: " in message and "software.spack_version: " in message


def test_a_parent_above_the_volume_limit_is_refused() -> None:
    limits = replace(CostLimits(), max_volume_gb=100)
    check_parent_size(Parent(SNAP, 100, True), limits)
    with pytest.raises(InvalidBuildRequest, match="petal:maxVolumeGb=200"):
        check_parent_size(Parent(SNAP, 200, True), limits)


@pytest.mark.parametrize("parent", ["auto", SNAP, "snap-01234567"])
def test_the_request_carries_the_parent(parent: str) -> None:
    request = parse_build_request({"seed": {"name": "x"}, "parent": parent})
    assert request.parent == parent
    assert request.to_document() == {"seed": {"name": "x"}, "parent": parent}


@pytest.mark.parametrize("parent", ["latest", "vol-0123456789abcdef0", "snap-0123", ""])
def test_a_parent_that_is_neither_auto_nor_a_snapshot_id_is_refused(parent: str) -> None:
    with pytest.raises(BuildRequestError) as raised:
        parse_build_request({"seed": {"name": "x"}, "parent": parent})
    message = str(raised.value)
    assert "parent" in message and "auto for the newest snapshot" in message
