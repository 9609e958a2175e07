"""A snapshot's lifecycle: resolution skips retired snapshots and warns about deprecated
ones; prune deletes exactly the old snapshots of a seed that nothing uses."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from moto.ec2.models import ec2_backends

from petal.aws import ec2_snapshots
from petal.aws.ec2_snapshots import SnapshotView
from petal.cluster import prune
from petal.cluster.resolution import SnapshotNotFound, make_request, resolve
from petal.deployment_contract import TAG_ARCH, TAG_FINGERPRINT, TAG_MANAGED, TAG_OS, TAG_SEED
from petal.registry.documents import RegistryError
from petal.user_config import DeploymentSettings, RegistrySettings, SnapshotSource, UserConfig
from tests.unit.prepare_account import moto_ec2

FP = "sha256:" + "ab" * 32
NOW = datetime.now(UTC)
OWN_ONLY = UserConfig(
    RegistrySettings(), (SnapshotSource("local", True, (), None),), DeploymentSettings()
)


@pytest.fixture
def ec2(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    with moto_ec2(monkeypatch, volume_patches=False) as client:
        yield client


def snapshot(
    ec2: Any,
    *,
    age_days: float = 0,
    os: str = "alinux2023",
    seed: str = "bioinformatics",
    size: int = 100,
    lifecycle: str | None = None,
) -> str:
    volume = ec2.create_volume(Size=size, AvailabilityZone="us-east-1a")
    snapshot_id: str = ec2.create_snapshot(VolumeId=volume["VolumeId"])["SnapshotId"]
    ec2.delete_volume(VolumeId=volume["VolumeId"])
    tags = {
        TAG_FINGERPRINT: FP,
        TAG_OS: os,
        TAG_ARCH: "x86_64",
        TAG_SEED: seed,
        TAG_MANAGED: "true",
    }
    if lifecycle:
        tags[ec2_snapshots.TAG_LIFECYCLE] = lifecycle
    ec2.create_tags(Resources=[snapshot_id], Tags=[{"Key": k, "Value": v} for k, v in tags.items()])
    ec2_backends["123456789012"]["us-east-1"].snapshots[snapshot_id].start_time = NOW - timedelta(
        days=age_days
    )
    return snapshot_id


def resolved(ec2: Any) -> Any:
    request = make_request(FP, "us-east-1", "alinux2023", "x86_64", 100)
    return resolve(request, ec2=ec2, config=OWN_ONLY)


# --- resolution --------------------------------------------------------------------------


def test_a_retired_snapshot_is_skipped_with_the_way_back(ec2: Any) -> None:
    older = snapshot(ec2, age_days=3)
    newest = snapshot(ec2, age_days=1)
    ec2_snapshots.set_lifecycle(ec2, newest, "retired")
    result = resolved(ec2)
    assert result.snapshot_id == older
    assert [(s.snapshot_id, "retired" in s.reason) for s in result.skipped] == [(newest, True)]
    assert f"petal build reinstate {newest}" in result.skipped[0].reason


def test_only_retired_snapshots_means_none_found(ec2: Any) -> None:
    snapshot(ec2, lifecycle="retired")
    with pytest.raises(SnapshotNotFound) as raised:
        resolved(ec2)
    assert "retired" in raised.value.skipped[0].reason


def test_a_current_snapshot_wins_over_a_newer_deprecated_one(ec2: Any) -> None:
    current = snapshot(ec2, age_days=5)
    snapshot(ec2, age_days=1, lifecycle="deprecated")
    result = resolved(ec2)
    assert result.snapshot_id == current
    assert not any("deprecated" in w for w in result.warnings)


def test_a_deprecated_snapshot_is_used_with_a_warning_when_it_is_the_only_one(ec2: Any) -> None:
    deprecated = snapshot(ec2, lifecycle="deprecated")
    result = resolved(ec2)
    assert result.snapshot_id == deprecated
    assert any(f"{deprecated} is marked deprecated" in w for w in result.warnings)


def test_reinstating_makes_a_retired_snapshot_current_again(ec2: Any) -> None:
    retired = snapshot(ec2, lifecycle="retired")
    ec2_snapshots.set_lifecycle(ec2, retired, "current")
    assert resolved(ec2).snapshot_id == retired
    [view] = ec2_snapshots.find_snapshots(ec2, {TAG_FINGERPRINT: FP})
    assert ec2_snapshots.lifecycle_of(view.tags) == "current"


def test_an_unknown_lifecycle_value_counts_as_current() -> None:
    assert ec2_snapshots.lifecycle_of({ec2_snapshots.TAG_LIFECYCLE: "Retired "}) == "current"
    assert ec2_snapshots.lifecycle_of({}) == "current"


# --- prune ------------------------------------------------------------------------------


def nothing_published(snapshots: Sequence[SnapshotView]) -> tuple[dict[str, str], list[str]]:
    return {}, []


def survey(ec2: Any, keep: int = 1, force: bool = False, **extra: Any) -> prune.PrunePlan:
    options: dict[str, Any] = {
        "published": nothing_published,
        "shared_with": lambda snapshot_id: None,
    }
    options.update(extra)
    return prune.survey(
        ec2=ec2,
        cloudformation=boto3.client("cloudformation", region_name="us-east-1"),
        region="us-east-1",
        seed="bioinformatics",
        keep=keep,
        force=force,
        **options,
    )


def actions(plan: prune.PrunePlan) -> dict[str, str]:
    return {c.snapshot.snapshot_id: c.action for c in plan.candidates}


def cluster_stack(name: str, snapshot_id: str, *, image_builder: bool = False) -> None:
    tags = [
        {"Key": "parallelcluster:version", "Value": "3.16.1"},
        {"Key": "parallelcluster:cluster-name", "Value": name},
        {"Key": "petal:software-snapshot", "Value": snapshot_id},
    ]
    if image_builder:
        tags.append({"Key": "parallelcluster:image_id", "Value": name})
    template = '{"Resources": {"Q": {"Type": "AWS::SQS::Queue"}}}'
    boto3.client("cloudformation", region_name="us-east-1").create_stack(
        StackName=name, TemplateBody=template, Tags=tags
    )


def test_prune_keeps_the_newest_of_each_variant_and_what_is_in_use(ec2: Any) -> None:
    newest = snapshot(ec2, age_days=1)
    with_volume = snapshot(ec2, age_days=2)
    with_cluster = snapshot(ec2, age_days=3)
    unused = snapshot(ec2, age_days=4)
    tagged_by_image_stack = snapshot(ec2, age_days=5)
    ubuntu = snapshot(ec2, age_days=9, os="ubuntu2404")
    other_seed = snapshot(ec2, age_days=9, seed="chemistry")
    ec2.create_volume(Size=100, AvailabilityZone="us-east-1b", SnapshotId=with_volume)
    cluster_stack("research", with_cluster)
    # An image-builder stack is no cluster, whatever its tags say.
    cluster_stack("image", tagged_by_image_stack, image_builder=True)

    plan = survey(ec2)
    assert actions(plan) == {
        newest: prune.KEEP,
        ubuntu: prune.KEEP,
        with_volume: prune.IN_USE,
        with_cluster: prune.IN_USE,
        unused: prune.DELETE,
        tagged_by_image_stack: prune.DELETE,
    }
    assert other_seed not in actions(plan)
    reasons = {c.snapshot.snapshot_id: c.reasons for c in plan.candidates}
    assert any("research" in r for r in reasons[with_cluster])
    assert plan.size_gb == 200

    prune.delete(ec2, plan)
    left = {s["SnapshotId"] for s in ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"]}
    assert left == {newest, ubuntu, with_volume, with_cluster, other_seed}
    assert plan.deleted_gb == 200


def test_prune_keeps_shared_and_published_snapshots_unless_forced(ec2: Any) -> None:
    snapshot(ec2, age_days=1)
    shared = snapshot(ec2, age_days=2)
    published = snapshot(ec2, age_days=3)

    def listed(snapshots: Sequence[SnapshotView]) -> tuple[dict[str, str], list[str]]:
        return {published: "petal-official registry"}, []

    def sharing(snapshot_id: str) -> str | None:
        return "accounts 111122223333" if snapshot_id == shared else None

    kept = survey(ec2, published=listed, shared_with=sharing)
    assert actions(kept)[shared] == actions(kept)[published] == prune.PROTECTED
    assert kept.to_delete == []
    forced = survey(ec2, force=True, published=listed, shared_with=sharing)
    assert {c.snapshot.snapshot_id for c in forced.to_delete} == {shared, published}


def test_an_unreadable_registry_protects_what_it_might_list(ec2: Any) -> None:
    snapshot(ec2, age_days=1)
    old = snapshot(ec2, age_days=2)

    def broken(fingerprint: str) -> list[tuple[str, str]]:
        raise RegistryError("index.json", "", "connection refused")

    lookup = prune.published_in_registries({"petal-official registry": broken}, "us-east-1")
    plan = survey(ec2, published=lookup)
    assert actions(plan)[old] == prune.PROTECTED
    assert "could not be read" in plan.warnings[0]


def test_registry_variants_of_other_regions_protect_nothing_here(ec2: Any) -> None:
    snapshot(ec2, age_days=1)
    old = snapshot(ec2, age_days=2)
    lookup = prune.published_in_registries(
        {"reg": lambda fp: [("us-west-2", old), ("us-east-1", "snap-0123456789abcdef0")]},
        "us-east-1",
    )
    assert actions(survey(ec2, published=lookup))[old] == prune.DELETE


def test_a_refused_deletion_is_reported_and_the_others_go_on(
    ec2: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    snapshot(ec2, age_days=1)
    refused = snapshot(ec2, age_days=2)
    deleted = snapshot(ec2, age_days=3)
    plan = survey(ec2)
    original = ec2_snapshots.delete_snapshot

    def delete(client: Any, snapshot_id: str) -> None:
        if snapshot_id == refused:
            from petal.aws.errors import AwsRequestFailed

            raise AwsRequestFailed("EC2 DeleteSnapshot failed: InvalidSnapshot.InUse: ami-1")
        original(client, snapshot_id)

    monkeypatch.setattr(ec2_snapshots, "delete_snapshot", delete)
    prune.delete(ec2, plan)
    outcome = {c.snapshot.snapshot_id: (c.deleted, c.failure) for c in plan.candidates}
    assert outcome[deleted] == (True, None)
    assert outcome[refused][0] is False and "InUse" in str(outcome[refused][1])


def test_storage_freed_is_priced_per_month() -> None:
    line = prune.storage_line(300, "Freed")
    assert line.startswith("Freed up to $15.00 a month (300 GiB at $0.05/GB-month")
