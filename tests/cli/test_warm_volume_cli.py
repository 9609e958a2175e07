"""`petal create --initialize`, `petal cluster volume-status`, and `petal build
deprecate | retire | reinstate | prune | fast-restore` as a user runs them, on moto with
the emulator's fixes: messages, exit codes, what is created, and nothing half-done."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from moto.ec2.models import ec2_backends

from petal.aws import ec2_snapshots
from petal.cli.main import main
from petal.deployment_contract import TAG_ARCH, TAG_FINGERPRINT, TAG_MANAGED, TAG_OS, TAG_SEED
from petal.local import moto_fixes
from petal.seed.fingerprint import fingerprint
from petal.seed.loading import load_seed
from tests.cli.test_create_cli import cli_environment, fake_pcluster

REPO = Path(__file__).resolve().parents[2]
SEED = str(REPO / "seeds/bioinformatics.yaml")
pytestmark = pytest.mark.filterwarnings("ignore:The 'default' argument to fields:Warning")


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    for patch in moto_fixes.volume_patches():
        monkeypatch.setattr(*patch, raising=False)
    monkeypatch.setattr("sys.stdin", io.StringIO(""))  # a script's stdin: no terminal
    with cli_environment(monkeypatch, tmp_path) as path:
        yield path


def ec2() -> Any:
    return boto3.client("ec2", region_name="us-east-1")


def own_snapshot(size: int = 500, seed: str = "bioinformatics", fp: str | None = None) -> str:
    volume = ec2().create_volume(Size=size, AvailabilityZone="us-east-1a")
    snapshot_id: str = ec2().create_snapshot(VolumeId=volume["VolumeId"])["SnapshotId"]
    ec2().delete_volume(VolumeId=volume["VolumeId"])
    tags = {
        TAG_FINGERPRINT: fp or fingerprint(load_seed(SEED)),
        TAG_OS: "alinux2023",
        TAG_ARCH: "x86_64",
        TAG_SEED: seed,
        TAG_MANAGED: "true",
    }
    ec2().create_tags(
        Resources=[snapshot_id], Tags=[{"Key": k, "Value": v} for k, v in tags.items()]
    )
    return snapshot_id


def aged(snapshot_id: str, days: float) -> None:
    """Snapshots made in one test can share a start time: set it, as EC2 would differ."""
    stored = ec2_backends["123456789012"]["us-east-1"].snapshots[snapshot_id]
    stored.start_time = datetime.now(UTC) - timedelta(days=days)


def subnet(zone: str = "us-east-1b") -> str:
    vpc = ec2().create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    made = ec2().create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24", AvailabilityZone=zone)
    return str(made["Subnet"]["SubnetId"])


def volumes() -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = ec2().describe_volumes()["Volumes"]
    return found


def create(*extra: str, subnet_id: str | None = None) -> int:
    return main(
        ["create", "--seed", SEED, "--name", "c1", "--subnet", subnet_id or subnet(), *extra]
    )


# --- petal create --initialize -------------------------------------------------------------


def test_initialize_creates_the_volume_and_a_config_that_mounts_it(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    snapshot = own_snapshot()
    assert create("--initialize", "300", "--yes") == 0
    out, err = capsys.readouterr()
    [volume] = volumes()
    volume_id = volume["VolumeId"]
    assert (volume["SnapshotId"], volume["AvailabilityZone"], volume["Size"]) == (
        snapshot,
        "us-east-1b",
        500,
    )
    assert (volume["VolumeInitializationRate"], volume["Encrypted"], volume["VolumeType"]) == (
        300,
        True,
        "gp3",
    )
    tags = {t["Key"]: t["Value"] for t in volume["Tags"]}
    assert tags["petal:cluster"] == "c1"
    assert tags["petal:software-snapshot"] == snapshot
    assert tags["petal:software-seed"] == "bioinformatics"
    assert tags["petal:software-fingerprint"] == fingerprint(load_seed(SEED))
    assert TAG_MANAGED not in tags  # the stack's functions have no power over it

    from pcluster.schemas.cluster_schema import ClusterSchema

    config = yaml.safe_load((env / "c1-config.yaml").read_text())
    assert config["SharedStorage"][0]["EbsSettings"] == {"VolumeId": volume_id}
    ClusterSchema(cluster_name="c1").load(config)
    header = (env / "c1-config.yaml").read_text().split("\nRegion:")[0]
    assert "ParallelCluster does not delete" in header

    # Time and cost before, then what deletion means and how to follow it.
    assert "Initialization at 300 MiB/s of the 500 GiB snapshot: up to 28 min, up to $1.80" in out
    assert "$0.0036/GiB" in out and "approximate" in out
    assert "For 4 cluster start(s) a month" in out and "Cheaper: the initialization rate" in out
    assert out.index("up to 28 min") < out.index(f"Created volume {volume_id}")
    assert "does not delete a volume it did not create" in out
    assert f"aws ec2 delete-volume --volume-id {volume_id} --region us-east-1" in out
    assert f"petal cluster volume-status {volume_id}" in out
    assert "load lazily" not in err


def test_the_starts_decide_which_is_cheaper(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    own_snapshot()
    assert create("--initialize", "300", "--yes", "--starts", "400") == 0
    assert "Cheaper: Fast Snapshot Restore" in capsys.readouterr().out


def test_without_yes_and_no_terminal_nothing_is_created(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    own_snapshot()
    assert create("--initialize", "300") == 2
    err = capsys.readouterr().err
    assert "pass --yes" in err
    assert volumes() == []
    assert not (env / "c1-config.yaml").exists()


def test_a_no_at_the_terminal_creates_nothing(
    env: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    own_snapshot()
    monkeypatch.setattr("sys.stdin", Terminal("n\n"))
    assert create("--initialize", "200") == 1
    assert "[y/N]" in capsys.readouterr().err
    assert volumes() == []


def test_a_yes_at_the_terminal_creates_it(
    env: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    own_snapshot()
    monkeypatch.setattr("sys.stdin", Terminal("y\n"))
    assert create("--initialize", "200") == 0
    [volume] = volumes()
    assert volume["VolumeInitializationRate"] == 200


@pytest.mark.parametrize("rate", ["99", "301", "fast"])
def test_a_rate_outside_100_to_300_is_refused_by_the_flag(
    env: Path, capsys: pytest.CaptureFixture[str], rate: str
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["create", "--seed", SEED, "--name", "c1", "--initialize", rate])
    assert exited.value.code == 2
    assert "--initialize" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        (("--dry-run",), "--dry-run creates nothing"),
        (("--deletion-policy", "Retain"), "never deletes a volume it did not create"),
    ],
)
def test_flags_that_do_not_go_with_initialize(
    env: Path, capsys: pytest.CaptureFixture[str], flags: tuple[str, ...], words: str
) -> None:
    own_snapshot()
    assert create("--initialize", "300", "--yes", *flags) == 2
    assert words in capsys.readouterr().err
    assert volumes() == []


def test_starts_without_initialize_is_refused(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert create("--starts", "3") == 2
    assert "--starts: only with --initialize" in capsys.readouterr().err


def test_an_unknown_head_node_subnet_is_refused_before_anything_is_created(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    own_snapshot()
    assert create("--initialize", "300", "--yes", subnet_id="subnet-0123456789abcdef0") == 2
    assert "--subnet: subnet-0123456789abcdef0 does not exist" in capsys.readouterr().err
    assert volumes() == []


def test_a_failed_pcluster_leaves_no_volume_and_no_config(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    own_snapshot()
    fake_pcluster(env / "bin", exit_code=1)
    assert create("--initialize", "300", "--yes") == 1
    err = capsys.readouterr().err
    assert "pcluster create-cluster failed" in err
    assert "Deleted the volume" in err
    assert [v for v in volumes() if v["State"] != "deleted"] == []
    assert not (env / "c1-config.yaml").exists()


def test_a_created_cluster_keeps_its_volume_and_json_says_so(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    own_snapshot()
    log = fake_pcluster(env / "bin")
    assert create("--initialize", "300", "--yes", "--json") == 0
    result = json.loads(capsys.readouterr().out)
    [volume] = volumes()
    assert result["ran"] is True
    assert result["volume"]["volume_id"] == volume["VolumeId"]
    assert result["volume"]["deleted_with_cluster"] is False
    assert result["volume"]["estimated_seconds"] == 1707
    assert "--cluster-configuration c1-config.yaml" in log.read_text()


def test_an_interrupted_create_deletes_the_volume(
    env: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    own_snapshot()
    from petal.cli import create_command

    def interrupted(*args: Any, **kwargs: Any) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(create_command, "_create_cluster", interrupted)
    assert create("--initialize", "300", "--yes") == 130
    assert [v for v in volumes() if v["State"] != "deleted"] == []
    assert not (env / "c1-config.yaml").exists()


# --- petal cluster volume-status ----------------------------------------------------------


def test_volume_status_by_volume_and_by_cluster(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    own_snapshot()
    assert create("--initialize", "300", "--yes") == 0
    volume_id = volumes()[0]["VolumeId"]
    capsys.readouterr()
    assert main(["cluster", "volume-status", volume_id]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{volume_id} (us-east-1b, status ok): ")
    assert "% initialized (provisioned-rate), about 28 min left" in out
    assert main(["cluster", "volume-status", "c1", "--json"]) == 0
    [status] = json.loads(capsys.readouterr().out)["volumes"]
    assert (status["volume_id"], status["initialization_type"]) == (volume_id, "provisioned-rate")
    assert status["initialized"] is False


def test_volume_status_of_what_is_not_there(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cluster", "volume-status", "nocluster"]) == 1
    assert "no volume tagged petal:cluster=nocluster" in capsys.readouterr().err
    assert main(["cluster", "volume-status", "vol-0123456789abcdef0"]) == 1
    assert main(["cluster", "volume-status", "vol-12"]) == 2
    assert "is not a volume id" in capsys.readouterr().err


# --- petal build deprecate | retire | reinstate ---------------------------------------------


def lifecycle(snapshot_id: str) -> str:
    [found] = ec2().describe_snapshots(SnapshotIds=[snapshot_id])["Snapshots"]
    return ec2_snapshots.lifecycle_of({t["Key"]: t["Value"] for t in found.get("Tags", [])})


def test_deprecate_retire_and_reinstate(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    snapshot = own_snapshot()
    assert main(["build", "deprecate", snapshot]) == 0
    assert f"us-east-1:{snapshot} (bioinformatics, alinux2023/x86_64): current -> deprecated" in (
        capsys.readouterr().out
    )
    assert lifecycle(snapshot) == "deprecated"
    assert main(["build", "retire", snapshot]) == 0
    out = capsys.readouterr().out
    assert "deprecated -> retired" in out
    assert f"petal build reinstate us-east-1:{snapshot}" in out
    assert lifecycle(snapshot) == "retired"
    assert main(["build", "reinstate", snapshot, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["now"] == "current"
    assert lifecycle(snapshot) == "current"


def test_only_petal_snapshots_have_a_lifecycle(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    volume = ec2().create_volume(Size=5, AvailabilityZone="us-east-1a")
    backup = ec2().create_snapshot(VolumeId=volume["VolumeId"])["SnapshotId"]
    assert main(["build", "retire", backup]) == 1
    assert "only snapshots petal built" in capsys.readouterr().err
    assert main(["build", "retire", "snap-12"]) == 2


# --- petal build prune --------------------------------------------------------------------


def test_prune_lists_by_default_and_deletes_with_yes(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = own_snapshot(size=100)
    used = own_snapshot(size=100)
    newest = own_snapshot(size=100)
    for snapshot_id, days in ((old, 3), (used, 2), (newest, 1)):
        aged(snapshot_id, days)
    ec2().create_volume(Size=100, AvailabilityZone="us-east-1a", SnapshotId=used)

    assert main(["build", "prune", "--seed", "bioinformatics", "--keep", "1"]) == 0
    out = capsys.readouterr().out
    assert f"keep      {newest}" in out
    assert f"in use    {used}" in out and "volumes made from it" in out
    assert f"delete    {old}" in out
    assert "Deleting these would free up to $5.00 a month (100 GiB at $0.05/GB-month" in out
    assert "petal build prune --seed bioinformatics --keep 1 --yes" in out
    assert len(ec2().describe_snapshots(OwnerIds=["self"])["Snapshots"]) == 3

    assert main(["build", "prune", "--seed", "bioinformatics", "--keep", "1", "--delete"]) == 0
    out = capsys.readouterr().out
    assert f"deleted   {old}" in out and "Freed up to $5.00 a month" in out
    left = {s["SnapshotId"] for s in ec2().describe_snapshots(OwnerIds=["self"])["Snapshots"]}
    assert left == {newest, used}

    assert main(["build", "prune", "--seed", "bioinformatics", "--keep", "1", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert listing["dry_run"] is True and listing["size_gb"] == 0
    assert {s["action"] for s in listing["snapshots"]} == {"keep", "in use"}


def test_prune_keeps_shared_snapshots_unless_forced(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shared = own_snapshot(size=10)
    aged(shared, 2)
    own_snapshot(size=10)
    ec2().modify_snapshot_attribute(
        SnapshotId=shared,
        Attribute="createVolumePermission",
        OperationType="add",
        UserIds=["111122223333"],
    )
    assert main(["build", "prune", "--seed", "bioinformatics", "--keep", "1", "--yes"]) == 0
    out = capsys.readouterr().out
    assert "shared with accounts 111122223333" in out and "--force" in out
    assert (
        main(["build", "prune", "--seed", "bioinformatics", "--keep", "1", "--yes", "--force"]) == 0
    )
    assert len(ec2().describe_snapshots(OwnerIds=["self"])["Snapshots"]) == 1


def test_prune_needs_a_keep_of_at_least_one(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["build", "prune", "--seed", "bioinformatics", "--keep", "0"])
    assert exited.value.code == 2


# --- petal build fast-restore -------------------------------------------------------------


def test_fast_restore_shows_the_cost_and_the_limit_then_enables_and_disables(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    snapshot = own_snapshot(size=200)
    assert main(["build", "fast-restore", snapshot, "--zones", "a,us-east-1b", "--yes"]) == 0
    out = capsys.readouterr().out
    assert (
        "in 2 zone(s): $1.50 an hour, $1,095.00 a month while enabled ($0.75 per zone-hour" in out
    )
    assert "up to 5 fully initialized volume(s) an hour" in out
    assert "on 1 of at most 5 snapshots" in out
    assert "us-east-1a: enabling" in out
    assert "--disable" in out
    assert main(["build", "fast-restore", snapshot, "--zones", "a,b", "--disable", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert {z["state"] for z in result["zones"]} == {"disabling"}
    assert ec2_snapshots.fast_restores(ec2()) == []


def test_fast_restore_refuses_a_sixth_snapshot_before_asking_aws(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    enabled = [own_snapshot(size=10) for _ in range(5)]
    for snapshot in enabled:
        ec2_snapshots.change_fast_restores(ec2(), snapshot, ["us-east-1a"], enable=True)
    sixth = own_snapshot(size=10)
    assert main(["build", "fast-restore", sixth, "--zones", "a", "--yes"]) == 1
    assert "the most a region allows" in capsys.readouterr().err
    # One that has it already may add a zone.
    assert main(["build", "fast-restore", enabled[0], "--zones", "b", "--yes"]) == 0


def test_fast_restore_flags(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    snapshot = own_snapshot(size=10)
    assert main(["build", "fast-restore", snapshot, "--zones", "us-west-2a"]) == 2
    assert "--zones: 'us-west-2a' is not an Availability Zone of us-east-1" in (
        capsys.readouterr().err
    )
    assert main(["build", "fast-restore", snapshot, "--zones", "a"]) == 2
    assert "pass --yes" in capsys.readouterr().err
    assert ec2_snapshots.fast_restores(ec2()) == []
