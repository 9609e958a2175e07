"""The local-mode demo as CI and a new user run it: the `petal` console script in
subprocesses, the emulator started on first use and kept between commands.

Each test has an emulator of its own (PETAL_LOCAL_DIR in tmp_path), stopped at the end
with `petal local stop` even when the test fails.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml

from petal.deployment_contract import (
    ROLE_VOLUME,
    TAG_ARCH,
    TAG_BUILD_ID,
    TAG_FINGERPRINT,
    TAG_MANAGED,
    TAG_OS,
    TAG_PACKAGES,
    TAG_ROLE,
    TAG_SEED,
    TAG_SPACK_VERSION,
)
from petal.seed.fingerprint import fingerprint
from petal.seed.loading import load_seed
from tests.workflow.helpers import petal_instances

REPO = Path(__file__).resolve().parents[2]
SEED = "seeds/testing/workload-basic.yaml"
FP = fingerprint(load_seed(REPO / SEED))
COMMAND_TIMEOUT = 120

pytestmark = pytest.mark.filterwarnings("ignore:The 'default' argument to fields:Warning")


def petal_command() -> list[str]:
    script = Path(sys.executable).parent / "petal"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "petal"]


@dataclass
class Demo:
    state_dir: Path
    env: dict[str, str]

    def run(self, *argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*petal_command(), *argv],
            cwd=REPO,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
            check=False,
        )

    def server(self) -> dict[str, Any]:
        info: dict[str, Any] = json.loads((self.state_dir / "server.json").read_text())
        return info

    def client(self, service: str) -> Any:
        info = self.server()
        return boto3.session.Session().client(
            service,
            region_name=info["region"],
            endpoint_url=info["endpoint"],
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )  # type: ignore[call-overload]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    # A zombie is not running; ps tells (it shows state Z).
    state = subprocess.run(
        ["ps", "-o", "stat=", "-p", str(pid)], capture_output=True, text=True, check=False
    ).stdout.strip()
    return bool(state) and not state.startswith("Z")


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PETAL_"))}
    # What `make demo` exports; the user's AWS settings stay out of it. The simulated
    # install is not paced for a person watching (benchmarks/local_demo.py times that).
    env.update(
        {
            "AWS_DEFAULT_REGION": "us-east-1",
            "PETAL_LOCAL_DIR": str(tmp_path / "local"),
            "PETAL_LOCAL_PACE_SECONDS": "0",
        }
    )
    session = Demo(tmp_path / "local", env)
    try:
        yield session
    finally:
        pid = None
        with contextlib.suppress(OSError, ValueError, KeyError):
            pid = int(session.server()["pid"])
        stopped = session.run("local", "stop")
        if pid is not None:
            deadline = time.monotonic() + 10
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if _alive(pid):  # our emulator did not stop: do not leave it behind
                os.kill(pid, signal.SIGKILL)
                pytest.fail(f"`petal local stop` left the emulator (pid {pid}) running")
        assert stopped.returncode == 0, stopped.stderr


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
