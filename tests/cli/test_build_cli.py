"""`petal build` in-process against the emulated deployment (moto, real handlers).

The CLI finds the deployment as it finds a real one, through the CloudFormation outputs
of a stack (`publish_stack`), so these tests run `petal.cli.main.main` unchanged with
`--stack-name petal-local --region us-east-1`.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

import lambdas.prepare
from petal.build.records import BuildRecord, utc_now
from petal.cli import build_commands, build_watch
from petal.cli.main import main
from petal.deployment_contract import (
    TAG_ARCH,
    TAG_BUILDER_IMAGE,
    TAG_FINGERPRINT,
    TAG_MANAGED,
    TAG_OS,
    TAG_SEED,
)
from petal.local.deploy import STACK_NAME
from petal.local.emulator import NOTHING_INSTALLED, LocalAws, LocalFailure, bootstrap_step_names
from petal.local.server import publish_stack
from petal.seed.fingerprint import fingerprint
from petal.seed.loading import load_seed
from tests.workflow.helpers import locks, petal_instances, petal_snapshots, petal_volumes
from tests.workflow.test_builder_image import register_pcluster_image

REPO = Path(__file__).resolve().parents[2]
SEED = "seeds/testing/workload-basic.yaml"
FP = fingerprint(load_seed(REPO / SEED))
WHERE = ("--stack-name", STACK_NAME, "--region", "us-east-1")
# A seed that pins no instance type: every variant gets its own defaults.
PORTABLE_SEED = """\
name: portable
software:
  spack_version: v0.23.0
  packages:
    - zlib@1.3.1
cluster:
  region: us-east-1
  queues:
    - name: q
"""

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")


def isolate(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(REPO)
    monkeypatch.setenv("PETAL_CONFIG", str(tmp_path / "no-petal-config.yaml"))
    for name in ("PETAL_STACK_NAME", "PETAL_REGION", "AWS_PROFILE", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(build_watch, "POLL_SECONDS", 0.05)


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[LocalAws]:
    """The emulated petal deployment, published as the stack `petal-local`."""
    isolate(monkeypatch, tmp_path)
    with LocalAws(REPO) as local:
        publish_stack(local)
        yield local


@pytest.fixture
def no_stack(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """An AWS account (moto) where petal is not deployed."""
    isolate(monkeypatch, tmp_path)
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        yield


def petal(*argv: str) -> int:
    """`petal build ARGV` against the emulated stack."""
    return main(["build", *argv, *WHERE])


def fixed_build_ids(monkeypatch: pytest.MonkeyPatch, *ids: str) -> None:
    """The next builds the CLI starts get these ids (so a test can prepare a failure)."""
    queue = list(ids)
    monkeypatch.setattr(build_commands, "new_build_id", lambda name, now: queue.pop(0))


def executions(aws: LocalAws) -> list[dict[str, Any]]:
    sfn = aws.client("stepfunctions")
    listed = sfn.list_executions(stateMachineArn=aws.deployment.state_machine_arn)["executions"]
    return [sfn.describe_execution(executionArn=e["executionArn"]) for e in listed]


def only_build(aws: LocalAws) -> BuildRecord:
    builds = aws.table.list_builds()
    assert len(builds) == 1
    return builds[0]


def assert_nothing_left(aws: LocalAws) -> None:
    aws.quiesce()
    assert petal_instances(aws) == []
    assert petal_volumes(aws) == []
    assert locks(aws) == []


def detached(aws: LocalAws, capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """Start one build with --detach --json; its build id."""
    assert petal("--seed", SEED, *argv, "--detach", "--json") == 0
    started: list[str] = json.loads(capsys.readouterr().out)["started"]
    assert len(started) == 1
    return started[0]


# --- petal build --seed ------------------------------------------------------------------


def test_a_build_exits_0_with_the_summary_then_reuses_then_force_builds_again(
    aws: LocalAws, capsys: pytest.CaptureFixture[str]
) -> None:
    assert petal("--seed", SEED) == 0
    out = capsys.readouterr().out
    [snapshot] = petal_snapshots(aws)
    snapshot_id = snapshot["SnapshotId"]
    assert snapshot["State"] == "completed"
    tags = {t["Key"]: t["Value"] for t in snapshot["Tags"]}
    assert (tags[TAG_MANAGED], tags[TAG_FINGERPRINT]) == ("true", FP)
    assert (tags[TAG_OS], tags[TAG_ARCH], tags[TAG_SEED]) == (
        "alinux2023",
        "x86_64",
        "workload-basic",
    )
    build = only_build(aws)
    assert build.status == "SUCCEEDED"
    assert out.startswith(f"🌸 Building software volume from {SEED} ({FP[:19]}...)\n")
    assert f"⏳ Started build {build.build_id} (alinux2023/x86_64)\n" in out
    assert "✅ Software installation complete\n" in out
    assert out.endswith(
        f"""
Software Volume Ready!
  Snapshot ID: {snapshot_id}
  Fingerprint: {FP}
  Variant:     alinux2023/x86_64
  Packages:    zlib@1.3.1, bzip2@1.0.8, xz@5.4.6

Deploy clusters with:
  petal create --seed {SEED} --name my-cluster
"""
    )
    assert_nothing_left(aws)

    assert petal("--seed", SEED) == 0
    out = capsys.readouterr().out
    assert f"✅ Software volume already exists for alinux2023/x86_64: {snapshot_id}\n" in out
    assert "Started build" not in out
    assert len(executions(aws)) == 1, "nothing is started for an existing volume"

    assert petal("--seed", SEED, "--force") == 0
    out = capsys.readouterr().out
    assert "Software Volume Ready!" in out
    assert len(executions(aws)) == 2
    assert len(petal_snapshots(aws)) == 2
    [forced] = [e for e in executions(aws) if e["name"] != build.build_id]
    assert json.loads(forced["input"])["force"] is True
    assert_nothing_left(aws)


def test_each_os_and_architecture_is_a_build_of_its_own(
    aws: LocalAws, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    seed = tmp_path / "portable.yaml"
    seed.write_text(PORTABLE_SEED)
    code = petal("--seed", str(seed), "--os", "alinux2023,ubuntu2404", "--arch", "x86_64,arm64")
    out = capsys.readouterr().out
    assert code == 0, out
    started = executions(aws)
    assert len(started) == 4
    assert len({e["name"] for e in started}) == 4
    variants = {
        (json.loads(e["input"])["os"], json.loads(e["input"])["architecture"]) for e in started
    }
    assert variants == {
        ("alinux2023", "x86_64"),
        ("alinux2023", "arm64"),
        ("ubuntu2404", "x86_64"),
        ("ubuntu2404", "arm64"),
    }
    for name in (e["name"] for e in started):
        suffix = re.search(r"-(al2023|ubuntu2404)-(x86-64|arm64)$", name)
        assert suffix, f"{name} does not name its variant"
        assert f"[{name}] ✅ Cleaned up build resources" in out
    # Every variant built, the arm64 ones on an arm64 builder chosen for them.
    assert {aws.wait(e["executionArn"]).status for e in started} == {"SUCCEEDED"}
    tagged = {
        (t[TAG_OS], t[TAG_ARCH])
        for t in ({x["Key"]: x["Value"] for x in s["Tags"]} for s in petal_snapshots(aws))
    }
    assert tagged == variants
    arm = aws.client("ec2").describe_instances(
        Filters=[{"Name": "architecture", "Values": ["arm64"]}]
    )["Reservations"]
    assert {i["InstanceType"] for r in arm for i in r["Instances"]} == {"c7g.4xlarge"}
    assert out.count("Software Volume Ready!") == 4
    assert_nothing_left(aws)


def test_a_variant_the_seed_does_not_fit_is_refused_before_anything_starts(
    aws: LocalAws, capsys: pytest.CaptureFixture[str]
) -> None:
    # workload-basic pins x86_64 instance types: an arm64 build would fail in Prepare.
    assert petal("--seed", SEED, "--force", "--arch", "x86_64,arm64") == 2
    err = capsys.readouterr().err
    assert "build.instance_type: c6a.xlarge is an x86_64 instance type" in err
    assert "architecture=arm64" in err
    assert "Traceback" not in err
    assert executions(aws) == [], "not even the x86_64 variant starts"


def test_rocky_without_a_builder_image_is_refused_before_anything_starts(
    aws: LocalAws, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    rocky = tmp_path / "rocky.yaml"
    rocky.write_text(PORTABLE_SEED + "os: rocky9\n")
    portable = tmp_path / "portable.yaml"
    portable.write_text(PORTABLE_SEED)
    for argv in (("--seed", str(rocky)), ("--seed", str(portable), "--os", "rocky8")):
        assert petal(*argv) == 2
        err = capsys.readouterr().err
        assert "needs build.image" in err and "--builder-ami" in err, err
        assert "no official ParallelCluster AMI" in err
        assert "Traceback" not in err
    assert petal("--seed", str(rocky), "--builder-ami", "rocky9") == 2
    assert "--builder-ami: 'rocky9' is not an AMI id" in capsys.readouterr().err
    assert executions(aws) == []


def test_builder_ami_builds_rocky_on_that_image(
    aws: LocalAws, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    image = register_pcluster_image(aws)
    rocky = tmp_path / "rocky.yaml"
    rocky.write_text(PORTABLE_SEED + "os: rocky9\n")
    code = petal("--seed", str(rocky), "--builder-ami", image)
    out = capsys.readouterr().out
    assert code == 0, out
    [execution] = executions(aws)
    assert json.loads(execution["input"])["builder_ami"] == image
    [snapshot] = petal_snapshots(aws)
    assert {"Key": TAG_BUILDER_IMAGE, "Value": image} in snapshot["Tags"]
    assert_nothing_left(aws)


def test_detach_json_prints_what_was_started_and_what_was_reused(
    aws: LocalAws, capsys: pytest.CaptureFixture[str]
) -> None:
    assert petal("--seed", SEED, "--detach", "--json") == 0
    first = json.loads(capsys.readouterr().out)
    assert set(first) == {"fingerprint", "started", "reused"}
    assert first["fingerprint"] == FP
    assert first["reused"] == []
    [build_id] = first["started"]
    assert aws.wait(executions(aws)[0]["executionArn"]).status == "SUCCEEDED"
    [snapshot] = petal_snapshots(aws)

    assert petal("--seed", SEED, "--detach", "--json") == 0
    second = json.loads(capsys.readouterr().out)
    assert second == {
        "fingerprint": FP,
        "started": [],
        "reused": [
            {"os": "alinux2023", "architecture": "x86_64", "snapshot_id": snapshot["SnapshotId"]}
        ],
    }
    assert aws.table.get_build(build_id) is not None


def test_a_build_that_fails_exits_1_naming_the_step_and_leaves_nothing(
    aws: LocalAws, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    fixed_build_ids(monkeypatch, "wb-fails-in-bootstrap")
    aws.failures["wb-fails-in-bootstrap"] = LocalFailure("bootstrap", "failed")
    assert petal("--seed", SEED) == 1
    out = capsys.readouterr().out
    assert "❌ Installing software (this takes 45-90 minutes) failed (BootstrapFailed)\n" in out
    assert "Build wb-fails-in-bootstrap failed in step bootstrap (BootstrapFailed)" in out
    assert "  Log of the install: petal build logs wb-fails-in-bootstrap\n" in out
    assert petal_snapshots(aws) == []
    assert_nothing_left(aws)

    assert petal("status", "wb-fails-in-bootstrap") == 1
    status = capsys.readouterr().out
    assert status.startswith(
        "wb-fails-in-bootstrap (alinux2023/x86_64) failed in bootstrap (BootstrapFailed) ["
    )
    assert "Build wb-fails-in-bootstrap failed in step bootstrap (BootstrapFailed)" in status
    assert status.endswith("  Log of the install: petal build logs wb-fails-in-bootstrap\n")


def test_status_of_a_seed_the_intake_rejected_says_why(
    aws: LocalAws, capsys: pytest.CaptureFixture[str]
) -> None:
    aws.upload_seed("seeds/broken.yaml", "name: Broken Name\nsoftware:\n  packages: []\n")
    [rejected] = aws.table.list_builds()
    assert petal("status", rejected.build_id) == 1
    out = capsys.readouterr().out
    assert out.startswith(f"{rejected.build_id} (?/?) failed in intake (InvalidSeed) [")
    assert "failed in intake (InvalidSeed)" in out.splitlines()[0]
    assert "the uploaded seed is invalid" in out
    assert "Fix it and upload it again." in out
    assert "\n\n" not in out


def test_a_build_refused_before_its_record_exists_ends_the_watch(
    aws: LocalAws, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Prepare fails before it writes the record; the CLI used to wait forever.
    fixed_build_ids(monkeypatch, "wb-fails-in-prepare")
    aws.failures["wb-fails-in-prepare"] = LocalFailure("prepare")
    assert petal("--seed", SEED) == 1
    out = capsys.readouterr().out
    assert (
        "❌ Checking the seed and looking for an existing snapshot failed (InjectedFailure)" in out
    )
    assert "failure injected into the prepare step" in out
    # The cleanup records how it ended, so `petal build status` can tell.
    record = aws.table.get_build("wb-fails-in-prepare")
    assert record is not None
    assert (record.status, record.step) == ("FAILED", "prepare")


# --- status, list, logs ---------------------------------------------------------------------


def test_status_and_logs_of_a_finished_build(
    aws: LocalAws, capsys: pytest.CaptureFixture[str]
) -> None:
    build_id = detached(aws, capsys)
    aws.wait(executions(aws)[0]["executionArn"])
    record = aws.table.get_build(build_id)
    assert record is not None

    assert petal("status", build_id, "--json") == 0
    assert json.loads(capsys.readouterr().out) == record.to_json()

    assert petal("status", build_id) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{build_id} (alinux2023/x86_64) succeeded: {record.snapshot_id} ["), out
    assert out.endswith("✅ Cleaned up build resources\n")

    assert petal("status", "no-such-build") == 1
    assert "no build 'no-such-build'" in capsys.readouterr().err

    assert petal("logs", build_id) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == NOTHING_INSTALLED
    steps = [line.split()[1] for line in printed if line.startswith("PETAL-STEP ")]
    assert steps == [*bootstrap_step_names(REPO), "done"]
    # In the order a bootstrap prints them: the install step, then each spec's
    # progress line followed by what the simulated install says of that spec.
    install = printed.index("PETAL-STEP install")
    progress = [line for line in printed[install:] if not line.startswith("PETAL-HEARTBEAT")]
    assert progress[1:7] == [
        # The builder installs the rendered specs: a version in a seed is exact (@=).
        "PETAL-PROGRESS 1/3 zlib@=1.3.1",
        "==> petal local mode: zlib@=1.3.1 NOT installed (simulation)",
        "PETAL-PROGRESS 2/3 bzip2@=1.0.8",
        "==> petal local mode: bzip2@=1.0.8 NOT installed (simulation)",
        "PETAL-PROGRESS 3/3 xz@=5.4.6",
        "==> petal local mode: xz@=5.4.6 NOT installed (simulation)",
    ]
    assert any(line.startswith("PETAL-HEARTBEAT ") for line in printed)

    assert petal("logs", build_id, "--follow") == 0
    assert capsys.readouterr().out.splitlines() == printed


def test_status_watch_follows_a_build_started_moments_ago(
    aws: LocalAws, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # `petal build --detach` says "Track with: petal build status ID --watch"; run at
    # once, Prepare may not have written the record yet. The harness runs one handler
    # at a time: holding that lock keeps Prepare waiting until the watch's first poll.
    runtime = aws._runtime
    runtime.acquire()
    released: list[bool] = []

    def first_poll_releases_prepare() -> float:
        if not released:
            released.append(True)
            runtime.release()
        return 0.05

    monkeypatch.setattr(build_watch, "poll_seconds", first_poll_releases_prepare)
    try:
        build_id = detached(aws, capsys)
        assert aws.table.get_build(build_id) is None
        assert petal("status", build_id, "--watch", "--json") == 0
    finally:
        if not released:
            runtime.release()
    watched = json.loads(capsys.readouterr().out)
    assert released == [True]
    assert watched["status"] == "SUCCEEDED"
    # The same document `status --json` prints for a finished build (not a list).
    assert petal("status", build_id, "--json") == 0
    assert watched == json.loads(capsys.readouterr().out)


def test_list_json_filters_by_status_and_seed(
    aws: LocalAws,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    fixed_build_ids(monkeypatch, "wb-good", "wb-bad", "portable-good")
    aws.failures["wb-bad"] = LocalFailure("snapshot", "error")
    # started_at has whole seconds, and builds started in one second tie in the order:
    # each build starts a second after the one before.
    starts = itertools.count()
    monkeypatch.setattr(
        lambdas.prepare, "utc_now", lambda: utc_now() + timedelta(seconds=next(starts))
    )
    assert petal("--seed", SEED) == 0
    assert petal("--seed", SEED, "--force") == 1
    portable = tmp_path / "portable.yaml"
    portable.write_text(PORTABLE_SEED)
    assert petal("--seed", str(portable)) == 0
    capsys.readouterr()

    assert petal("list", "--json") == 0
    listing = json.loads(capsys.readouterr().out)
    assert set(listing) == {"builds", "software_volumes"}
    assert listing["builds"][0]["build_id"] == "portable-good"  # newest first
    assert {(b["build_id"], b["status"]) for b in listing["builds"]} == {
        ("portable-good", "SUCCEEDED"),
        ("wb-bad", "FAILED"),
        ("wb-good", "SUCCEEDED"),
    }
    volumes = {v["seed"]: v for v in listing["software_volumes"]}
    assert set(volumes) == {"workload-basic", "portable"}
    good = aws.table.get_build("wb-good")
    assert good is not None
    assert volumes["workload-basic"]["snapshot_id"] == good.snapshot_id
    assert volumes["workload-basic"]["fingerprint"] == FP
    assert volumes["workload-basic"]["os"] == "alinux2023"
    assert volumes["workload-basic"]["architecture"] == "x86_64"
    assert volumes["workload-basic"]["packages"] == "zlib@1.3.1, bzip2@1.0.8, xz@5.4.6"

    assert petal("list", "--json", "--status", "FAILED") == 0
    failed = json.loads(capsys.readouterr().out)
    assert [(b["build_id"], b["error"]["step"]) for b in failed["builds"]] == [
        ("wb-bad", "snapshot")
    ]
    # A failed build leaves no software volume: none is listed beside it.
    assert failed["software_volumes"] == []
    assert petal("list", "--status", "FAILED") == 0
    out = capsys.readouterr().out
    assert "wb-bad" in out
    assert "Software volumes" not in out
    assert petal("list", "--json", "--status", "SUCCEEDED") == 0
    succeeded = json.loads(capsys.readouterr().out)
    assert {v["seed"] for v in succeeded["software_volumes"]} == {"workload-basic", "portable"}

    assert petal("list", "--json", "--seed", "portable") == 0
    only = json.loads(capsys.readouterr().out)
    assert [b["build_id"] for b in only["builds"]] == ["portable-good"]
    assert [v["seed"] for v in only["software_volumes"]] == ["portable"]

    assert petal("list") == 0
    out = capsys.readouterr().out
    assert out.startswith("Builds:\n  portable-good (alinux2023/x86_64) succeeded: snap-")
    assert "  wb-bad (alinux2023/x86_64) failed in snapshot (SnapshotFailed) [" in out
    assert "Software volumes:\n" in out


def test_flags_given_to_petal_build_reach_its_subcommands(
    aws: LocalAws, capsys: pytest.CaptureFixture[str]
) -> None:
    # `petal build --region R --stack-name S list`: argparse used to let the
    # subcommand's defaults overwrite both, and look for the stack `petal`.
    assert main(["build", *WHERE, "--json", "list"]) == 0
    assert set(json.loads(capsys.readouterr().out)) == {"builds", "software_volumes"}


def test_list_says_when_there_is_nothing_yet(
    aws: LocalAws, capsys: pytest.CaptureFixture[str]
) -> None:
    assert petal("list") == 0
    assert capsys.readouterr().out == (
        "Builds: none yet (start one with: petal build --seed FILE)\nSoftware volumes: none\n"
    )


def test_a_simulated_failure_is_checked_even_when_nothing_is_built(
    aws: LocalAws, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(build_commands.local_mode, "is_active", lambda: True)
    assert petal("--seed", SEED) == 0  # the snapshot now exists: the next run reuses it
    capsys.readouterr()
    assert petal("--seed", SEED, "--simulate-failure", "frobnicate") == 2
    captured = capsys.readouterr()
    assert "--simulate-failure: unknown step 'frobnicate' to fail; use one of prepare" in (
        captured.err
    )
    assert "already exists" not in captured.out
    assert petal("--seed", SEED, "--simulate-failure", "bootstrap:melted") == 2
    assert "step bootstrap cannot fail with 'melted'" in capsys.readouterr().err


def test_ctrl_c_right_after_a_build_started_says_how_to_resume(
    aws: LocalAws, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    fixed_build_ids(monkeypatch, "wb-interrupted")

    def interrupt(*args: Any, **kwargs: Any) -> int:
        raise KeyboardInterrupt

    # The moment between "Started build" and the first look at its progress.
    monkeypatch.setattr(build_commands, "watch", interrupt)
    started = build_commands._start_executions

    def start_then_interrupt(*args: Any) -> None:
        started(*args)
        raise KeyboardInterrupt

    monkeypatch.setattr(build_commands, "_start_executions", start_then_interrupt)
    assert petal("--seed", SEED) == 130
    captured = capsys.readouterr()
    assert "⏳ Started build wb-interrupted (alinux2023/x86_64)" in captured.out
    assert captured.err.endswith(
        "Stopped watching; the build goes on. Resume with:\n"
        "  petal build status wb-interrupted --watch\n"
    )
    aws.quiesce()


def test_logs_of_a_build_that_never_reached_the_install_say_why_there_are_none(
    aws: LocalAws, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    fixed_build_ids(monkeypatch, "wb-no-install")
    aws.failures["wb-no-install"] = LocalFailure("launch", "capacity")
    assert petal("--seed", SEED) == 1
    out = capsys.readouterr().out
    assert "Log of the install" not in out
    assert petal("logs", "wb-no-install") == 1
    assert capsys.readouterr().err == (
        "petal: error: build wb-no-install has no bootstrap log: it ended (FAILED) before "
        "the install started; `petal build status wb-no-install` says why\n"
    )


# --- cancel ---------------------------------------------------------------------------------


def test_cancel_during_the_install_stops_the_build_and_removes_everything(
    aws: LocalAws, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    fixed_build_ids(monkeypatch, "wb-cancelled")
    aws.failures["wb-cancelled"] = LocalFailure("bootstrap", "hang")
    assert detached(aws, capsys) == "wb-cancelled"
    parked = aws.wait_for_record(
        "wb-cancelled", lambda r: r.step == "bootstrap" and r.progress is not None
    )
    assert parked.instance_id and parked.volume_id
    assert locks(aws) != []

    assert petal("cancel", "wb-cancelled") == 0
    assert capsys.readouterr().out == (
        f"🛑 Cancelled build wb-cancelled\n"
        f"   terminated {parked.instance_id}\n"
        f"   deleted {parked.volume_id}\n"
    )
    record = aws.table.get_build("wb-cancelled")
    assert record is not None
    assert record.status == "CANCELLED"
    assert record.error is not None
    assert (record.error.step, record.error.error) == ("bootstrap", "BuildCancelled")
    [execution] = executions(aws)
    assert aws.wait(execution["executionArn"]).status == "ABORTED"
    assert_nothing_left(aws)
    assert petal_snapshots(aws) == []

    # A second cancel finds nothing to do.
    assert petal("cancel", "wb-cancelled", "--json") == 0
    assert json.loads(capsys.readouterr().out) == {
        "build_id": "wb-cancelled",
        "status": "CANCELLED",
        "stopped_execution": False,
        "removed": [],
        "pending": None,
    }
    assert petal("status", "wb-cancelled") == 0
    assert "cancelled in bootstrap (BuildCancelled)" in capsys.readouterr().out


def test_cancel_of_a_build_that_just_finished_leaves_it_as_it_is(
    aws: LocalAws, capsys: pytest.CaptureFixture[str]
) -> None:
    # The build ends between the CLI reading it (RUNNING) and stopping it.
    from petal.build.cancel import cancel_build

    build_id = detached(aws, capsys)
    stale = aws.wait_for_record(build_id, lambda r: r.status == "RUNNING")
    aws.wait(executions(aws)[0]["executionArn"])
    outcome = cancel_build(
        stale,
        stepfunctions=aws.client("stepfunctions"),
        ec2=aws.client("ec2"),
        table=aws.table,
    )
    assert (outcome.status, outcome.stopped_execution, outcome.removed) == ("SUCCEEDED", False, ())
    record = aws.table.get_build(build_id)
    assert record is not None
    assert (record.status, record.error) == ("SUCCEEDED", None)
    assert len(petal_snapshots(aws)) == 1


# --- bad input and no deployment ---------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ((), "petal build needs --seed FILE"),
        (("--seed", SEED, "--arch", "sparc"), "--arch: 'sparc' is not allowed; use x86_64"),
        (("--seed", SEED, "--os", "windows95"), "--os: "),
        (("--seed", "tests/data/bad_seeds/no-such-file.yaml"), "cannot be read"),
        (("--seed", SEED, "--simulate-failure", "bootstrap"), "works only in local mode"),
        (("--seed", SEED, "--name", "my_build"), "--name: 'my_build' cannot be a build id"),
    ],
    ids=["no-seed", "bad-arch", "unknown-os", "unreadable-seed", "simulate-not-local", "bad-name"],
)
def test_bad_input_exits_2_with_one_clear_message(
    no_stack: None, capsys: pytest.CaptureFixture[str], argv: tuple[str, ...], message: str
) -> None:
    # Refused before the first AWS call: looking for the stack would exit 1 here.
    assert petal(*argv) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err
    assert "no stack named" not in err


def test_an_invalid_seed_file_exits_2_naming_the_problem(
    no_stack: None, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: Not Valid\nsoftware:\n  packages: []\n")
    assert petal("--seed", str(bad)) == 2
    err = capsys.readouterr().err
    assert str(bad) in err
    assert "name" in err
    assert "no stack named" not in err


def test_unknown_os_names_the_known_ones(
    no_stack: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["build", "--seed", SEED, "--os", "windows95"]) == 2
    err = capsys.readouterr().err
    assert "windows95" in err
    assert "alinux2023" in err


@pytest.mark.parametrize("argv", [("--seed", SEED), ("list",), ("status", "x")])
def test_an_unknown_region_is_refused_with_the_known_ones(
    no_stack: None, capsys: pytest.CaptureFixture[str], argv: tuple[str, ...]
) -> None:
    assert main(["build", *argv, "--region", "mars-north-9"]) == 2
    err = capsys.readouterr().err
    assert "--region: 'mars-north-9' is not an AWS region (known regions: " in err
    assert "us-east-1" in err and "eu-west-1" in err
    assert "Traceback" not in err and "no stack named" not in err


@pytest.mark.parametrize(
    "argv", [("--seed", SEED), ("list",), ("status", "x"), ("logs", "x"), ("cancel", "x")]
)
def test_without_a_deployed_stack_exits_1_naming_cdk_deploy_and_local(
    no_stack: None, capsys: pytest.CaptureFixture[str], argv: tuple[str, ...]
) -> None:
    # The default stack name and the environment's region.
    assert main(["build", *argv]) == 1
    err = capsys.readouterr().err
    assert err.startswith("petal: error: no stack named 'petal' in us-east-1")
    assert "`cdk deploy`" in err
    assert "--local" in err
    assert "Traceback" not in err


def test_a_stack_without_petals_outputs_is_not_taken_for_one(
    no_stack: None, capsys: pytest.CaptureFixture[str]
) -> None:
    boto3.client("cloudformation", region_name="us-east-1").create_stack(
        StackName="other",
        TemplateBody=json.dumps(
            {
                "Resources": {
                    "P": {
                        "Type": "AWS::SSM::Parameter",
                        "Properties": {"Name": "/other", "Type": "String", "Value": "x"},
                    }
                }
            }
        ),
    )
    assert main(["build", "list", "--stack-name", "other", "--region", "us-east-1"]) == 1
    err = capsys.readouterr().err
    assert "stack 'other' in us-east-1 lacks the outputs" in err
    assert "cdk deploy" in err


# --- list: pages ---------------------------------------------------------------------------


def _recorded_builds(aws: LocalAws, count: int) -> None:
    """`count` finished builds in the table, b000 the oldest."""
    from petal.build.records import iso

    for n in range(count):
        aws.table.create_build(
            BuildRecord(
                build_id=f"b{n:03d}",
                status="FAILED",
                started_at=iso(utc_now() + timedelta(minutes=n)),
                seed_name="workload-basic",
                fingerprint=FP,
                os="alinux2023",
                architecture="x86_64",
                execution_arn=f"arn:exec:b{n:03d}",
            )
        )


def test_list_pages_with_limit_and_after(aws: LocalAws, capsys: pytest.CaptureFixture[str]) -> None:
    _recorded_builds(aws, 5)
    pages: list[list[str]] = []
    argv: list[str] = ["list", "--json", "--status", "FAILED", "--limit", "2"]
    while True:
        assert petal(*argv) == 0
        listing = json.loads(capsys.readouterr().out)
        pages.append([b["build_id"] for b in listing["builds"]])
        if "next" not in listing:
            break
        argv = ["list", "--json", "--status", "FAILED", "--limit", "2", "--after", listing["next"]]
    assert pages == [["b004", "b003"], ["b002", "b001"], ["b000"]]

    assert petal("list", "--status", "FAILED", "--limit", "2") == 0
    out = capsys.readouterr().out
    more = re.search(r"more builds: (.*)$", out, re.MULTILINE)
    assert more is not None
    assert "build list --status FAILED --limit 2 --after " in more.group(1)


def test_list_all_follows_every_page(aws: LocalAws, capsys: pytest.CaptureFixture[str]) -> None:
    _recorded_builds(aws, 25)
    assert petal("list", "--json", "--all", "--limit", "3") == 0
    listing = json.loads(capsys.readouterr().out)
    assert [b["build_id"] for b in listing["builds"]] == [f"b{n:03d}" for n in range(24, -1, -1)]
    assert set(listing) == {"builds", "software_volumes"}  # no next page
    assert petal("list", "--json") == 0
    first = json.loads(capsys.readouterr().out)
    assert len(first["builds"]) == 20 and "next" in first


def test_list_refuses_a_foreign_cursor_and_a_bad_limit(
    aws: LocalAws, capsys: pytest.CaptureFixture[str]
) -> None:
    assert petal("list", "--after", "bm90IGEgY3Vyc29y") == 2
    assert "--after: 'bm90IGEgY3Vyc29y' is not a cursor" in capsys.readouterr().err
    assert petal("list", "--limit", "0") == 2
    with pytest.raises(SystemExit):
        petal("list", "--all", "--after", "x")
