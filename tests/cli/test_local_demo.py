"""The local-mode demo as CI and a new user run it: the `petal` console script in
subprocesses, the emulator started on first use and kept between commands.

Each test has an emulator of its own (PETAL_LOCAL_DIR in tmp_path), stopped at the end
with `petal local stop` even when the test fails.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from petal.deployment_contract import (
    ROLE_VOLUME,
    TAG_ARCH,
    TAG_BUILD_ID,
    TAG_FINGERPRINT,
    TAG_MANAGED,
    TAG_MOUNT_DIR,
    TAG_OS,
    TAG_PACKAGES,
    TAG_ROLE,
    TAG_SEED,
    TAG_SPACK_VERSION,
)
from petal.seed.fingerprint import fingerprint
from petal.seed.loading import load_seed
from tests.cli.local_session import REPO, Demo
from tests.workflow.helpers import petal_instances

SEED = "seeds/testing/workload-basic.yaml"
FP = fingerprint(load_seed(REPO / SEED))

pytestmark = pytest.mark.filterwarnings("ignore:The 'default' argument to fields:Warning")


def running_instances(demo: Demo) -> list[str]:
    return [i["InstanceId"] for i in petal_instances(demo)]


def petal_volumes(demo: Demo) -> list[str]:
    volumes = demo.client("ec2").describe_volumes(
        Filters=[{"Name": f"tag:{TAG_MANAGED}", "Values": ["true"]}]
    )["Volumes"]
    return [v["VolumeId"] for v in volumes]


def software_volumes(demo: Demo) -> list[str]:
    volumes = demo.client("ec2").describe_volumes(
        Filters=[{"Name": f"tag:{TAG_ROLE}", "Values": [ROLE_VOLUME]}]
    )["Volumes"]
    return [v["VolumeId"] for v in volumes]


def locks(demo: Demo) -> list[dict[str, Any]]:
    table = demo.server()["outputs"]["BuildsTableName"]
    items: list[dict[str, Any]] = demo.client("dynamodb").scan(
        TableName=table,
        FilterExpression="begins_with(pk, :lock)",
        ExpressionAttributeValues={":lock": {"S": "LOCK#"}},
    )["Items"]
    return items


def snapshots(demo: Demo) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = demo.client("ec2").describe_snapshots(
        OwnerIds=["self"], Filters=[{"Name": f"tag:{TAG_MANAGED}", "Values": ["true"]}]
    )["Snapshots"]
    return found


def test_the_local_demo_builds_a_snapshot_and_a_cluster_config(
    demo: Demo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "demo-config.yaml"
    build = demo.run("--local", "build", "--seed", SEED)
    create = demo.run(
        "--local", "create", "--seed", SEED, "--name", "demo", "--config-out", str(config)
    )
    listing = demo.run("--local", "build", "list", "--json")

    assert build.returncode == 0, build.stdout + build.stderr
    assert create.returncode == 0, create.stdout + create.stderr
    assert listing.returncode == 0, listing.stdout + listing.stderr

    # It says plainly that nothing was built for real.
    assert "builders are SIMULATED and install no software" in build.stderr
    assert "SIMULATED" in create.stderr
    assert "Traceback" not in build.stderr + create.stderr + listing.stderr

    [snapshot] = snapshots(demo)
    snapshot_id = snapshot["SnapshotId"]
    assert snapshot["State"] == "completed"
    assert f"  Snapshot ID: {snapshot_id}\n" in build.stdout
    assert "Software Volume Ready!" in build.stdout
    # The hint, copied as printed, runs (in local mode it carries --local).
    [hint] = [line.strip() for line in build.stdout.splitlines() if "petal --local create" in line]
    assert hint == f"petal --local create --seed {SEED} --name my-cluster"
    copied = demo.run(*shlex.split(hint)[1:], "--config-out", str(tmp_path / "hinted.yaml"))
    assert copied.returncode == 0, copied.stdout + copied.stderr
    tags = {t["Key"]: t["Value"] for t in snapshot["Tags"]}
    [record] = json.loads(listing.stdout)["builds"]
    assert tags["Name"] == "petal-workload-basic-alinux2023-x86_64"
    assert {k: v for k, v in tags.items() if k.startswith("petal:")} == {
        TAG_MANAGED: "true",
        TAG_FINGERPRINT: FP,
        TAG_OS: "alinux2023",
        TAG_ARCH: "x86_64",
        TAG_SPACK_VERSION: "v0.23.0",
        TAG_SEED: "workload-basic",
        TAG_BUILD_ID: record["build_id"],
        TAG_PACKAGES: "zlib@1.3.1, bzip2@1.0.8, xz@5.4.6",
        TAG_MOUNT_DIR: "/shared",
    }
    assert snapshot["Description"] == f"petal {FP} os=alinux2023 arch=x86_64 seed=workload-basic"

    assert (record["status"], record["snapshot_id"]) == ("SUCCEEDED", snapshot_id)
    [volume] = json.loads(listing.stdout)["software_volumes"]
    assert (volume["snapshot_id"], volume["fingerprint"]) == (snapshot_id, FP)

    assert running_instances(demo) == []
    assert petal_volumes(demo) == []
    assert locks(demo) == []

    assert f"📦 Using software volume: {snapshot_id}" in create.stdout
    document = yaml.safe_load(config.read_text())
    assert document["SharedStorage"][0]["EbsSettings"]["SnapshotId"] == snapshot_id
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    from pcluster.schemas.cluster_schema import ClusterSchema

    ClusterSchema(cluster_name="demo").load(document)


def test_a_simulated_failure_exits_1_naming_the_step_and_leaves_nothing(demo: Demo) -> None:
    failed = demo.run("--local", "build", "--seed", SEED, "--simulate-failure", "bootstrap")
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "SIMULATED" in failed.stderr
    assert "❌ Installing software (simulated: nothing is installed) failed (InjectedFailure)" in (
        failed.stdout
    )
    assert "failed in step bootstrap (InjectedFailure)" in failed.stdout
    assert "by local mode (bootstrap). What to do:" in failed.stdout
    assert "✅ Cleaned up build resources" in failed.stdout
    # The step failed before its command was sent: no log to offer.
    assert "Log of the install" not in failed.stdout
    assert "Traceback" not in failed.stderr

    assert snapshots(demo) == []
    assert running_instances(demo) == []
    assert software_volumes(demo) == []
    assert petal_volumes(demo) == []
    assert locks(demo) == []

    listing = demo.run("--local", "build", "list", "--json", "--status", "FAILED")
    assert listing.returncode == 0, listing.stderr
    [record] = json.loads(listing.stdout)["builds"]
    assert (record["error"]["step"], record["error"]["error"]) == ("bootstrap", "InjectedFailure")
