"""Warm volumes (`petal create --initialize`): the EBS adapter, the config that mounts
the volume, the cost figures, and the emulator behaving as AWS does for them
(VolumeInitializationRate, DescribeVolumeStatus, Fast Snapshot Restore)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from moto.ec2.models import ec2_backends

from petal.aws import ebs_volumes, ec2_builder, ec2_snapshots
from petal.cluster import costs
from petal.cluster.config import generate_config
from petal.cluster.settings import ClusterOverrides, ConfigError, cluster_settings
from petal.seed.loading import load_seed
from tests.unit.prepare_account import moto_ec2

REPO = Path(__file__).resolve().parents[2]
SUBNET = "subnet-0123456789abcdef0"
NODE_SETUP = "s3://petal-seeds-123456789012/node-setup/petal-node-setup.sh"
SNAPSHOT = "snap-0123456789abcdef0"
VOLUME = "vol-0123456789abcdef0"
pytestmark = pytest.mark.filterwarnings("ignore:The 'default' argument to fields:Warning")


@pytest.fixture
def ec2(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    with moto_ec2(monkeypatch, volume_patches=True) as client:
        yield client


def snapshot(ec2: Any, size: int = 500) -> str:
    volume = ec2.create_volume(Size=size, AvailabilityZone="us-east-1a")
    snapshot_id: str = ec2.create_snapshot(VolumeId=volume["VolumeId"])["SnapshotId"]
    return snapshot_id


def error_code(raised: pytest.ExceptionInfo[ClientError]) -> str:
    return str(raised.value.response["Error"]["Code"])


# --- the emulator, as AWS --------------------------------------------------------------


def test_an_initialization_rate_needs_a_snapshot(ec2: Any) -> None:
    with pytest.raises(ClientError) as raised:
        ec2.create_volume(Size=10, AvailabilityZone="us-east-1a", VolumeInitializationRate=300)
    assert error_code(raised) == "InvalidParameterCombination"
    assert ec2.describe_volumes()["Volumes"] == []


@pytest.mark.parametrize("rate", [99, 301, 1000])
def test_an_initialization_rate_outside_100_to_300_is_refused(ec2: Any, rate: int) -> None:
    source = snapshot(ec2)
    before = len(ec2.describe_volumes()["Volumes"])
    with pytest.raises(ClientError) as raised:
        ec2.create_volume(
            Size=500,
            AvailabilityZone="us-east-1a",
            SnapshotId=source,
            VolumeInitializationRate=rate,
        )
    assert error_code(raised) == "InvalidParameterValue"
    assert len(ec2.describe_volumes()["Volumes"]) == before


def test_the_rate_is_reported_and_initialization_progresses_with_time(
    ec2: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = snapshot(ec2, size=300)
    volume_id = ec2.create_volume(
        Size=300, AvailabilityZone="us-east-1a", SnapshotId=source, VolumeInitializationRate=300
    )["VolumeId"]
    assert (
        ec2.describe_volumes(VolumeIds=[volume_id])["Volumes"][0]["VolumeInitializationRate"] == 300
    )
    stored = ec2_backends["123456789012"]["us-east-1"].volumes[volume_id]
    # The emulator's clock, set: the progress is computed from it, not from this test's pace.
    monkeypatch.setattr("moto.core.utils.utcnow", lambda: stored.create_time)
    started = ebs_volumes.initialization(ec2, volume_id)
    assert started is not None
    assert (started.kind, started.zone, started.done) == ("provisioned-rate", "us-east-1a", False)
    # 300 GiB at 300 MiB/s: 1024 s.
    assert (started.progress, started.seconds_left) == (0, 1024)
    monkeypatch.setattr(
        "moto.core.utils.utcnow", lambda: stored.create_time + timedelta(seconds=512)
    )
    halfway = ebs_volumes.initialization(ec2, volume_id)
    assert halfway is not None and (halfway.progress, halfway.seconds_left) == (50, 512)
    monkeypatch.setattr(
        "moto.core.utils.utcnow", lambda: stored.create_time + timedelta(seconds=1112)
    )
    done = ebs_volumes.initialization(ec2, volume_id)
    assert done is not None and (done.progress, done.seconds_left, done.done) == (100, 0, True)


def test_volume_status_of_volumes_without_a_rate(ec2: Any) -> None:
    source = snapshot(ec2)
    lazy = ec2.create_volume(Size=500, AvailabilityZone="us-east-1a", SnapshotId=source)
    empty = ec2.create_volume(Size=5, AvailabilityZone="us-east-1a")
    from_snapshot = ebs_volumes.initialization(ec2, lazy["VolumeId"])
    assert from_snapshot is not None and from_snapshot.kind == "default"
    assert from_snapshot.progress is None
    blank = ebs_volumes.initialization(ec2, empty["VolumeId"])
    assert blank is not None and blank.kind is None
    assert ebs_volumes.initialization(ec2, VOLUME) is None


def test_fast_snapshot_restore_is_enabled_described_and_disabled(ec2: Any) -> None:
    source = snapshot(ec2)
    accepted, refused = ec2_snapshots.change_fast_restores(
        ec2, source, ["us-east-1a", "us-east-1b"], enable=True
    )
    assert {(r.zone, r.state) for r in accepted} == {
        ("us-east-1a", "enabling"),
        ("us-east-1b", "enabling"),
    }
    assert refused == []
    assert {(r.snapshot_id, r.zone, r.state) for r in ec2_snapshots.fast_restores(ec2)} == {
        (source, "us-east-1a", "enabled"),
        (source, "us-east-1b", "enabled"),
    }
    accepted, _ = ec2_snapshots.change_fast_restores(ec2, source, ["us-east-1b"], enable=False)
    assert [(r.zone, r.state) for r in accepted] == [("us-east-1b", "disabling")]
    assert [r.zone for r in ec2_snapshots.fast_restores(ec2, [source])] == ["us-east-1a"]


def test_fast_snapshot_restore_is_limited_to_five_snapshots_a_region(ec2: Any) -> None:
    sources = [snapshot(ec2, size=10) for _ in range(6)]
    for source in sources[:5]:
        assert ec2_snapshots.change_fast_restores(ec2, source, ["us-east-1a"], enable=True)[1] == []
    # Another zone of a snapshot that has it already is no new snapshot.
    assert ec2_snapshots.change_fast_restores(ec2, sources[0], ["us-east-1b"], enable=True)[1] == []
    accepted, refused = ec2_snapshots.change_fast_restores(
        ec2, sources[5], ["us-east-1a"], enable=True
    )
    assert accepted == []
    assert [(r.snapshot_id, r.zone) for r in refused] == [(sources[5], "us-east-1a")]
    assert "5 snapshots" in refused[0].reason


def test_fast_snapshot_restore_refuses_an_unknown_zone(ec2: Any) -> None:
    source = snapshot(ec2)
    with pytest.raises(Exception, match="InvalidParameterValue"):
        ec2_snapshots.change_fast_restores(ec2, source, ["us-east-1z"], enable=True)
    assert ec2_snapshots.fast_restores(ec2) == []


def test_deleting_a_snapshot_disables_its_fast_restores_and_is_not_refused(ec2: Any) -> None:
    source = snapshot(ec2)
    ec2_snapshots.change_fast_restores(ec2, source, ["us-east-1a"], enable=True)
    ec2_snapshots.delete_snapshot(ec2, source)
    assert ec2_snapshots.fast_restores(ec2) == []


# --- the adapter -------------------------------------------------------------------------


def test_the_volume_is_created_encrypted_tagged_at_the_rate_in_the_zone(ec2: Any) -> None:
    source = snapshot(ec2)
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24", AvailabilityZone="us-east-1c")
    zone = ebs_volumes.subnet_zone(ec2, subnet["Subnet"]["SubnetId"])
    assert zone == "us-east-1c"
    volume_id = ebs_volumes.create_initialized_volume(
        ec2,
        snapshot_id=source,
        zone=zone,
        size_gb=600,
        iops=3000,
        throughput=125,
        rate=200,
        kms_key_id=None,
        tags={"petal:cluster": "c1"},
    )
    view = ec2_builder.describe_volume(ec2, volume_id)
    assert view is not None
    assert (view.zone, view.size_gb, view.snapshot_id, view.initialization_rate) == (
        "us-east-1c",
        600,
        source,
        200,
    )
    assert view.tags == {"petal:cluster": "c1"}
    assert ec2.describe_volumes(VolumeIds=[volume_id])["Volumes"][0]["Encrypted"] is True
    assert [v.volume_id for v in ebs_volumes.volumes_tagged(ec2, "petal:cluster", "c1")] == [
        volume_id
    ]
    assert ebs_volumes.volumes_from_snapshots(ec2, [source, SNAPSHOT]) == {source: [volume_id]}
    ebs_volumes.delete_new_volume(ec2, volume_id)
    assert ec2_builder.describe_volume(ec2, volume_id) is None


def test_an_unknown_subnet_is_subnet_not_found(ec2: Any) -> None:
    with pytest.raises(ebs_volumes.SubnetNotFound):
        ebs_volumes.subnet_zone(ec2, SUBNET)


# --- the config ----------------------------------------------------------------------------


def settings() -> Any:
    seed = load_seed(REPO / "seeds/bioinformatics.yaml")
    overrides = ClusterOverrides(subnet_id=SUBNET, node_setup_uri=NODE_SETUP)
    return cluster_settings(seed, overrides, default_region="us-east-1")


def test_a_config_with_the_volume_id_mounts_it_and_parallelcluster_accepts_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    from pcluster.schemas.cluster_schema import ClusterSchema

    config = generate_config(
        settings(), snapshot_id=SNAPSHOT, snapshot_size_gb=500, volume_id=VOLUME
    )
    storage = config["SharedStorage"][0]
    # Only the volume: ParallelCluster ignores a Size or SnapshotId next to it, and a
    # DeletionPolicy would promise what it does not do to a volume it did not create.
    assert storage["EbsSettings"] == {"VolumeId": VOLUME}
    assert storage["MountDir"] == "/shared"
    assert {"Key": "petal:software-snapshot", "Value": SNAPSHOT} in config["Tags"]
    loaded = ClusterSchema(cluster_name="petal-test").load(config)
    shared = loaded.shared_storage[0]
    assert (shared.volume_id, shared.is_managed) == (VOLUME, False)


def test_a_malformed_volume_id_is_refused() -> None:
    with pytest.raises(ConfigError) as raised:
        generate_config(settings(), snapshot_id=SNAPSHOT, snapshot_size_gb=500, volume_id="vol-1")
    assert raised.value.field == "volume_id"


def test_the_volume_is_still_checked_against_the_snapshot() -> None:
    with pytest.raises(ConfigError, match="smaller than the 900 GiB snapshot"):
        generate_config(
            settings(), snapshot_id=SNAPSHOT, snapshot_size_gb=900, size_gb=500, volume_id=VOLUME
        )


# --- the figures ---------------------------------------------------------------------------


def test_initialization_time_and_cost() -> None:
    estimate = costs.Initialization(500, 300)
    assert round(estimate.seconds) == 1707  # 500 GiB * 1024 / 300 MiB/s
    assert estimate.cost == pytest.approx(1.80)
    text = " ".join(estimate.lines())
    assert "up to 28 min" in text and "$1.80" in text
    assert "$0.0036/GiB" in text
    assert "approximate" in text


def test_which_is_cheaper_depends_on_the_starts() -> None:
    few = costs.WarmChoice(500, 300, starts=4)
    assert few.rate_is_cheaper
    assert "Cheaper: the initialization rate" in few.lines()[0]
    many = costs.WarmChoice(500, 300, starts=400)
    assert not many.rate_is_cheaper
    assert "Cheaper: Fast Snapshot Restore" in many.lines()[0]
    assert "$547.50" in many.lines()[0]


@pytest.mark.parametrize(("size", "credits"), [(50, 10), (100, 10), (200, 5), (1024, 1), (4000, 1)])
def test_fast_restore_credits(size: int, credits: int) -> None:
    assert costs.fsr_credits(size) == credits
