"""`petal create` as a user runs it: messages, exit codes, the config file, pcluster."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from moto import mock_aws

from petal.aws import session as aws_session
from petal.cli import create_command
from petal.cli.main import dispatch
from petal.deployment_contract import TAG_ARCH, TAG_FINGERPRINT, TAG_OS, TAG_SEED
from petal.seed.fingerprint import fingerprint
from petal.seed.loading import load_seed

REPO = Path(__file__).resolve().parents[2]
SEED = str(REPO / "seeds/bioinformatics.yaml")
SUBNET = "subnet-0123456789abcdef0"
NODE_SETUP = "s3://petal-seeds/node-setup/petal-node-setup.sh"

pytestmark = pytest.mark.filterwarnings("ignore:The 'default' argument to fields:Warning")


def petal(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="petal")
    commands = parser.add_subparsers(dest="command", required=True)
    create_command.register(commands)
    args = parser.parse_args(list(argv))
    code: int = dispatch(args)
    return code


@contextlib.contextmanager
def cli_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """moto, a config file in tmp_path (the working directory) and no pcluster."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "MOTO_EC2_LOAD_DEFAULT_AMIS": "false",
        "PETAL_CONFIG": str(tmp_path / "petal-config.yaml"),
        "PETAL_NODE_SETUP_URI": NODE_SETUP,
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "PATH": str(tmp_path / "bin"),  # no pcluster unless a test puts one there
    }.items():
        monkeypatch.setenv(name, value)
    for name in ("MOTO_ACCOUNT_ID", "AWS_PROFILE", "AWS_REGION", "PETAL_REGISTRY_URL"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "bin").mkdir()
    monkeypatch.chdir(tmp_path)
    with mock_aws():
        yield tmp_path


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    with cli_environment(monkeypatch, tmp_path) as path:
        yield path


def own_snapshot(size: int = 500, os_name: str = "alinux2023", arch: str = "x86_64") -> str:
    ec2 = boto3.client("ec2", region_name="us-east-1")
    volume = ec2.create_volume(Size=size, AvailabilityZone="us-east-1a")
    snapshot_id: str = ec2.create_snapshot(VolumeId=volume["VolumeId"])["SnapshotId"]
    tags = {
        TAG_FINGERPRINT: fingerprint(load_seed(SEED)),
        TAG_OS: os_name,
        TAG_ARCH: arch,
        TAG_SEED: "bioinformatics",
    }
    ec2.create_tags(Resources=[snapshot_id], Tags=[{"Key": k, "Value": v} for k, v in tags.items()])
    return snapshot_id


def fake_pcluster(bin_dir: Path, exit_code: int = 0, broken: bool = False) -> Path:
    """A pcluster that answers `version` (or fails to start, if `broken`) and logs the
    create-cluster command it is given."""
    log = bin_dir / "pcluster.log"
    script = bin_dir / "pcluster"
    start = (
        "echo \"ModuleNotFoundError: No module named 'connexion'\" >&2; exit 1"
        if broken
        else 'if [ "$1" = version ]; then echo \'{"version": "3.16.1"}\'; exit 0; fi'
    )
    script.write_text(
        f'#!/bin/sh\n{start}\necho "$@" > {log}\necho \'{{"cluster": "ok"}}\'\nexit {exit_code}\n'
    )
    script.chmod(0o755)
    return log


def load_in_parallelcluster(path: Path) -> dict[str, Any]:
    from pcluster.schemas.cluster_schema import ClusterSchema

    config: dict[str, Any] = yaml.safe_load(path.read_text())
    ClusterSchema(cluster_name="c1").load(config)
    return config


def test_dry_run_prints_the_choice_writes_the_config_and_the_command(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    snapshot = own_snapshot()
    log = fake_pcluster(env / "bin")
    assert petal("create", "--seed", SEED, "--name", "c1", "--subnet", SUBNET, "--dry-run") == 0
    out, err = capsys.readouterr()
    assert "🌸 Creating cluster: c1" in out
    assert f"📦 Using software volume: {snapshot}" in out
    assert f"Snapshot: {snapshot} (us-east-1, alinux2023, x86_64, 500 GiB)" in out
    assert "Source: own account (AWS account 123456789012)" in out
    assert "✅ Generated ParallelCluster config: c1-config.yaml" in out
    assert "pcluster create-cluster --cluster-name c1 --cluster-configuration c1-config.yaml" in out
    assert "load lazily" in err
    config = load_in_parallelcluster(env / "c1-config.yaml")
    assert config["SharedStorage"][0]["EbsSettings"]["SnapshotId"] == snapshot
    assert config["SharedStorage"][0]["EbsSettings"]["Size"] == 500
    assert not log.exists(), "a dry run never runs pcluster"


def test_no_snapshot_exits_1_with_the_build_command(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert petal("create", "--seed", SEED, "--name", "c1", "--subnet", SUBNET) == 1
    err = capsys.readouterr().err
    assert "no software volume found" in err
    assert f"petal build --seed {SEED}" in err
    assert not (env / "c1-config.yaml").exists()


def test_no_snapshot_for_another_os_explains_the_build(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    own_snapshot()
    code = petal("create", "--seed", SEED, "--name", "c1", "--subnet", SUBNET, "--os", "rocky9")
    assert code == 1
    # A build of that variant, with the builder image rocky needs (no official AMI).
    assert (
        f"Build one first with:\n  petal build --seed {SEED} --os rocky9 --builder-ami AMI_ID\n"
    ) in capsys.readouterr().err
    assert petal("create", "--seed", SEED, "--name", "c1", "--subnet", SUBNET, "--arch", "arm64")
    assert f"petal build --seed {SEED} --arch arm64\n" in capsys.readouterr().err


def test_pcluster_on_path_is_run_with_the_exact_command(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    own_snapshot()
    log = fake_pcluster(env / "bin")
    config_out = "configs-c1.yaml"
    code = petal(
        "create", "--seed", SEED, "--name", "c1", "--subnet", SUBNET, "--config-out", config_out
    )
    assert code == 0
    assert log.read_text().split() == [
        "create-cluster",
        "--cluster-name",
        "c1",
        "--cluster-configuration",
        config_out,
    ]
    assert (env / config_out).exists()


def test_a_failing_pcluster_exits_1(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    own_snapshot()
    fake_pcluster(env / "bin", exit_code=3)
    assert petal("create", "--seed", SEED, "--name", "c1", "--subnet", SUBNET) == 1
    assert "pcluster create-cluster failed (exit 3)" in capsys.readouterr().err


def test_a_pcluster_that_does_not_run_is_not_offered(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    own_snapshot()
    log = fake_pcluster(env / "bin", broken=True)
    assert petal("create", "--seed", SEED, "--name", "c1", "--subnet", SUBNET) == 0
    out = capsys.readouterr().out
    assert (
        f"Create the cluster with ({env / 'bin' / 'pcluster'} does not run "
        "(ModuleNotFoundError: No module named 'connexion'); reinstall aws-parallelcluster):"
    ) in out
    assert (
        "  pcluster create-cluster --cluster-name c1 --cluster-configuration c1-config.yaml" in out
    )
    assert not log.exists(), "create-cluster is never tried with a pcluster that cannot start"


def test_a_snapshot_built_in_the_stacks_region_is_copied_to_the_clusters(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The stack (and so the build) is in us-east-1; the seed's clusters run in us-west-2.
    snapshot = own_snapshot()
    seed = yaml.safe_load(Path(SEED).read_text())
    seed["cluster"]["region"] = "us-west-2"
    (env / "west.yaml").write_text(yaml.safe_dump(seed))
    assert petal("create", "--seed", "west.yaml", "--name", "c1", "--subnet", SUBNET) == 1
    err = capsys.readouterr().err
    assert "in us-west-2; checked: own account" in err
    assert (
        f"A build of it is in us-east-1 ({snapshot}), where the petal stack is; the "
        "cluster's region is us-west-2. Copy it there, then run this command again:\n"
        f"  petal build copy {snapshot} --from us-east-1 --to us-west-2\n"
    ) in err
    assert "Build one first" not in err


def test_without_pcluster_the_command_is_printed(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    own_snapshot()
    assert petal("create", "--seed", SEED, "--name", "c1", "--subnet", SUBNET) == 0
    out = capsys.readouterr().out
    assert "pcluster is not installed" in out
    assert "pcluster create-cluster --cluster-name c1" in out


def test_json_output(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    snapshot = own_snapshot(size=300)
    code = petal(
        "create",
        "--seed",
        SEED,
        "--name",
        "c1",
        "--subnet",
        SUBNET,
        "--size",
        "800",
        "--dry-run",
        "--json",
    )
    assert code == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert captured.err == ""
    assert set(result) == {
        "cluster_name",
        "fingerprint",
        "config_file",
        "command",
        "ran",
        "dry_run",
        "not_run_because",
        "snapshot",
    }
    assert result["not_run_because"] == "dry run"
    assert result["snapshot"]["snapshot_id"] == snapshot
    assert result["snapshot"]["source"] == "local"
    assert result["snapshot"]["owner"] == "123456789012"
    assert (result["snapshot"]["snapshot_size_gb"], result["snapshot"]["volume_size_gb"]) == (
        300,
        800,
    )
    assert any("resize2fs" in w for w in result["snapshot"]["warnings"])
    assert result["command"][:2] == ["pcluster", "create-cluster"]
    config = load_in_parallelcluster(env / "c1-config.yaml")
    assert config["SharedStorage"][0]["EbsSettings"]["Size"] == 800


def test_json_when_not_found(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = petal("create", "--seed", SEED, "--name", "c1", "--subnet", SUBNET, "--json")
    assert code == 1
    result = json.loads(capsys.readouterr().out)
    assert result["found"] is False
    assert result["build_command"] == f"petal build --seed {SEED}"
    assert result["sources"] == ["own account"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--subnet", "subnet-xyz"), "'subnet-xyz' is not a subnet id"),
        (("--subnet", SUBNET, "--os", "windows"), "os: unknown operating system 'windows'"),
        (("--subnet", SUBNET, "--region", "Mars"), "cluster.region: 'Mars' is not an AWS region"),
        (("--subnet", SUBNET, "--queue", "gpu"), "NAME:INSTANCE_TYPE"),
        (("--subnet", SUBNET, "--size", "0"), "volume.size_gb: 0 is not from 1"),
        (("--subnet", SUBNET, "--registry-url", "ftp://x"), "--registry-url: 'ftp://x'"),
    ],
)
def test_invalid_input_exits_2_naming_the_field(
    env: Path, capsys: pytest.CaptureFixture[str], extra: tuple[str, ...], message: str
) -> None:
    assert petal("create", "--seed", SEED, "--name", "c1", *extra) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err


def delete_default_subnets() -> None:
    ec2 = boto3.client("ec2", region_name="us-east-1")
    for subnet in ec2.describe_subnets()["Subnets"]:
        ec2.delete_subnet(SubnetId=subnet["SubnetId"])


def test_no_subnet_and_no_default_vpc_names_the_field(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    delete_default_subnets()
    assert petal("create", "--seed", SEED, "--name", "c1") == 2
    err = capsys.readouterr().err
    assert "cluster.head_node.subnet_id: is not set" in err
    assert "--subnet" in err


def test_no_subnet_uses_a_default_subnet_and_says_so(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    own_snapshot()
    ec2 = boto3.client("ec2", region_name="us-east-1")
    defaults = ec2.describe_subnets(Filters=[{"Name": "default-for-az", "Values": ["true"]}])
    first = sorted(defaults["Subnets"], key=lambda s: s["AvailabilityZone"])[0]["SubnetId"]
    assert petal("create", "--seed", SEED, "--name", "c1", "--dry-run") == 0
    assert f"no subnet given: using {first}" in capsys.readouterr().err
    config = yaml.safe_load((env / "c1-config.yaml").read_text())
    assert config["HeadNode"]["Networking"]["SubnetId"] == first


def test_missing_node_setup_uri_names_the_flag(
    env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("PETAL_NODE_SETUP_URI")
    assert petal("create", "--seed", SEED, "--name", "c1", "--subnet", SUBNET) == 2
    assert "--node-setup-uri" in capsys.readouterr().err


def test_bad_cluster_name_and_bad_seed_exit_2(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert petal("create", "--seed", SEED, "--name", "my_cluster", "--subnet", SUBNET) == 2
    assert "'my_cluster' is not a ParallelCluster cluster name" in capsys.readouterr().err
    bad = str(REPO / "tests/data/bad_seeds/spec-semicolon.yaml")
    assert petal("create", "--seed", bad, "--name", "c1", "--subnet", SUBNET) == 2
    assert "software.packages[0]" in capsys.readouterr().err
    assert petal("create", "--seed", "missing.yaml", "--name", "c1") == 2


def test_malformed_user_config_exits_2_naming_the_field(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (env / "petal-config.yaml").write_text("registry:\n  trusted_accounts: ['123']\n")
    assert petal("create", "--seed", SEED, "--name", "c1", "--subnet", SUBNET) == 2
    err = capsys.readouterr().err
    assert "petal-config.yaml:2: registry.trusted_accounts[0]: '123'" in err


def test_a_file_petal_did_not_write_is_not_overwritten(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    own_snapshot()
    (env / "c1-config.yaml").write_text("Region: us-east-1\n# my hand-made config\n")
    assert petal("create", "--seed", SEED, "--name", "c1", "--subnet", SUBNET, "--dry-run") == 2
    assert "exists and was not written by petal" in capsys.readouterr().err
    (env / "c1-config.yaml").unlink()
    assert petal("create", "--seed", SEED, "--name", "c1", "--subnet", SUBNET, "--dry-run") == 0
    # Its own earlier output is regenerated freely.
    assert petal("create", "--seed", SEED, "--name", "c1", "--subnet", SUBNET, "--dry-run") == 0


def test_aws_failures_exit_1(
    env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from botocore.exceptions import NoCredentialsError

    class NoCredentials:
        def get_paginator(self, name: str) -> Any:
            raise NoCredentialsError()

    monkeypatch.setattr(aws_session, "client", lambda *a, **k: NoCredentials())
    assert petal("create", "--seed", SEED, "--name", "c1", "--subnet", SUBNET) == 1
    err = capsys.readouterr().err
    assert "Unable to locate credentials" in err and "check your AWS credentials" in err


def test_clients_come_from_the_one_helper(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[Any, ...]] = []
    real = aws_session.client

    def spy(*args: Any) -> Any:
        calls.append(args)
        return real(*args)

    monkeypatch.setattr(aws_session, "client", spy)
    own_snapshot()
    petal("create", "--seed", SEED, "--name", "c1", "--subnet", SUBNET, "--dry-run")
    assert calls == [("ec2", "us-east-1")]
    assert os.environ.get("AWS_ENDPOINT_URL") is None


def test_a_snapshot_the_config_cannot_use_is_shown_then_refused(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    snapshot = own_snapshot(size=5)
    code = petal("create", "--seed", SEED, "--name", "c1", "--subnet", SUBNET, "--size", "5")
    assert code == 2
    out, err = capsys.readouterr()
    assert f"📦 Using software volume: {snapshot}" in out
    assert "volume.iops: 3000 IOPS needs at least 6 GiB" in err
    assert not (env / "c1-config.yaml").exists()


NODE_CHECK_SUBNET = "subnet-0123456789abcdef0"


@pytest.mark.parametrize(("flags", "strict"), [((), False), (("--strict-node-check",), True)])
def test_create_passes_the_fingerprint_to_the_node_setup_script(
    env: Path, flags: tuple[str, ...], strict: bool
) -> None:
    own_snapshot()
    argv = ["create", "--seed", SEED, "--name", "c1", "--subnet", NODE_CHECK_SUBNET, "--dry-run"]
    assert petal(*argv, *flags) == 0
    config = load_in_parallelcluster(env / "c1-config.yaml")
    args = config["HeadNode"]["CustomActions"]["OnNodeConfigured"]["Args"]
    expected = ["--fingerprint", fingerprint(load_seed(SEED))]
    assert args == expected + (["--strict"] if strict else [])
