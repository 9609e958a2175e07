"""Warm volumes and pruning on the local emulator, as a user runs them: `petal --local
create --initialize 300` writes a config with the VolumeId ParallelCluster accepts and
the emulator holds that volume; `petal --local build prune` deletes exactly the old
snapshots nothing uses."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from petal.deployment_contract import TAG_MANAGED
from tests.cli.local_session import REPO, Demo

SEED = str(REPO / "seeds/testing/workload-basic.yaml")
pytestmark = pytest.mark.filterwarnings("ignore:The 'default' argument to fields:Warning")


def ok(demo: Demo, *argv: str) -> str:
    result = demo.run("--local", *argv)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Traceback" not in output
    return result.stdout


def snapshots(demo: Demo) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = demo.client("ec2").describe_snapshots(
        OwnerIds=["self"], Filters=[{"Name": f"tag:{TAG_MANAGED}", "Values": ["true"]}]
    )["Snapshots"]
    return sorted(found, key=lambda s: s["StartTime"])


def test_initialize_300_writes_a_volume_id_config_and_the_emulator_has_the_volume(
    demo: Demo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "warm-config.yaml"
    ok(demo, "build", "--seed", SEED)
    [snapshot] = snapshots(demo)
    out = ok(
        demo,
        "create",
        "--seed",
        SEED,
        "--name",
        "warm",
        "--initialize",
        "300",
        "--yes",
        "--config-out",
        str(config),
    )
    document = yaml.safe_load(config.read_text())
    volume_id = document["SharedStorage"][0]["EbsSettings"]["VolumeId"]
    assert document["SharedStorage"][0]["EbsSettings"] == {"VolumeId": volume_id}
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    from pcluster.schemas.cluster_schema import ClusterSchema

    ClusterSchema(cluster_name="warm").load(document)

    ec2 = demo.client("ec2")
    [volume] = ec2.describe_volumes(VolumeIds=[volume_id])["Volumes"]
    subnet = document["HeadNode"]["Networking"]["SubnetId"]
    [head_node_subnet] = ec2.describe_subnets(SubnetIds=[subnet])["Subnets"]
    assert volume["SnapshotId"] == snapshot["SnapshotId"]
    assert volume["AvailabilityZone"] == head_node_subnet["AvailabilityZone"]
    assert (volume["VolumeInitializationRate"], volume["Encrypted"]) == (300, True)
    assert f"petal --local cluster volume-status {volume_id}" in out

    status = json.loads(ok(demo, "cluster", "volume-status", "warm", "--json"))
    [entry] = status["volumes"]
    assert (entry["volume_id"], entry["initialization_type"]) == (volume_id, "provisioned-rate")


def test_prune_deletes_exactly_the_unused_old_snapshots(demo: Demo) -> None:
    for force in ((), ("--force",), ("--force",)):
        ok(demo, "build", "--seed", SEED, *force)
    oldest, older, newest = (s["SnapshotId"] for s in snapshots(demo))
    ec2 = demo.client("ec2")
    ec2.create_volume(AvailabilityZone="us-east-1a", SnapshotId=oldest)

    listed = ok(demo, "build", "prune", "--seed", "workload-basic", "--keep", "1")
    assert "Dry run: nothing deleted" in listed
    assert len(snapshots(demo)) == 3

    result = json.loads(
        ok(demo, "build", "prune", "--seed", "workload-basic", "--keep", "1", "--yes", "--json")
    )
    actions = {s["snapshot_id"]: (s["action"], s["deleted"]) for s in result["snapshots"]}
    assert actions == {
        newest: ("keep", False),
        oldest: ("in use", False),
        older: ("delete", True),
    }
    assert [s["SnapshotId"] for s in snapshots(demo)] == [oldest, newest]


def test_build_list_shows_a_snapshots_lifecycle(demo: Demo) -> None:
    for force in ((), ("--force",)):
        ok(demo, "build", "--seed", SEED, *force)
    older, newer = (s["SnapshotId"] for s in snapshots(demo))
    ok(demo, "build", "deprecate", older)
    listing = ok(demo, "build", "list")
    [older_line] = [line for line in listing.splitlines() if line.startswith(f"  {older}")]
    [newer_line] = [line for line in listing.splitlines() if line.startswith(f"  {newer}")]
    assert older_line.endswith("DEPRECATED") and "DEPRECATED" not in newer_line
    volumes = json.loads(ok(demo, "build", "list", "--json"))["software_volumes"]
    assert {v["snapshot_id"]: v["lifecycle"] for v in volumes} == {
        older: "deprecated",
        newer: "current",
    }
