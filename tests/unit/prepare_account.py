"""What the tests of Prepare and the other build steps share: the test seed, a fixed
clock and execution, and an emulated account (moto) with the builds table."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from petal.build.config import BuildConfig
from petal.build.steps.prepare import prepare
from petal.build.table import BuildTable, table_definition
from petal.local import moto_fixes
from petal.local.moto_fixes import _answer_ebs_default_kms_key_id
from petal.seed.loading import load_seed

REPO_ROOT = Path(__file__).resolve().parents[2]
SEED = load_seed(REPO_ROOT / "seeds" / "testing" / "workload-basic.yaml")
NOW = datetime(2025, 3, 1, tzinfo=UTC)
EXECUTION = {"name": "b1", "arn": "arn:exec:b1", "start_time": "2025-03-01T00:00:00Z"}
SETTINGS = {"bootstrap_heartbeat_seconds": 900}
# No official AMI exists in these tests: a build that passes every check stops there.
PASSED_THE_CHECKS = "official ParallelCluster AMI"


@dataclass(frozen=True)
class Account:
    ec2: Any
    kms: Any
    table: BuildTable


@contextmanager
def emulated_account(monkeypatch: pytest.MonkeyPatch) -> Iterator[Account]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
    # moto lacks GetEbsDefaultKmsKeyId, which Prepare calls: the emulator's answer.
    monkeypatch.setattr(*_answer_ebs_default_kms_key_id(), raising=False)
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        dynamodb.create_table(**table_definition("builds"))
        yield Account(
            boto3.client("ec2", region_name="us-east-1"),
            boto3.client("kms", region_name="us-east-1"),
            BuildTable(dynamodb, "builds"),
        )


def no_s3(bucket: str, key: str, version_id: str | None) -> bytes:
    raise AssertionError("no S3 read expected")


def seed_document(**seed_changes: Any) -> dict[str, Any]:
    """The test seed with each `section__field=value` (or top-level `field=value`) set."""
    document = SEED.to_document()
    for path, value in seed_changes.items():
        section, _, field = path.rpartition("__")
        (document[section] if section else document)[field] = value
    return document


def run_prepare(
    ec2: Any, table: BuildTable, environ: dict[str, str], *, force: bool = False, **changes: Any
) -> dict[str, Any]:
    """Prepare for the test seed with `changes`, in a deployment configured by `environ`."""
    request = {"seed": seed_document(**changes), **({"force": True} if force else {})}
    event = {"request": request, "execution": EXECUTION, "settings": SETTINGS}
    return prepare(
        event, ec2=ec2, read_seed=no_s3, table=table, now=NOW, config=BuildConfig(environ)
    )


def assert_nothing_created(table: BuildTable) -> None:
    assert table.list_builds() == []
    assert list(table.locks()) == []


@contextmanager
def moto_ec2(monkeypatch: pytest.MonkeyPatch, *, volume_patches: bool = False) -> Iterator[Any]:
    """An EC2 client of an emulated account (no default AMIs), with the emulator's
    warm-volume and Fast Snapshot Restore patches when asked."""
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
    monkeypatch.delenv("MOTO_ACCOUNT_ID", raising=False)
    if volume_patches:
        for patch in moto_fixes.volume_patches():
            monkeypatch.setattr(*patch, raising=False)
    with mock_aws():
        yield boto3.client("ec2", region_name="us-east-1")
