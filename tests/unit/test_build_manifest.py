"""A build's manifest read back (petal.build.manifest), found from a build id, snapshot
or fingerprint and checked against its reported SHA-256 (petal.build.manifest_store),
and `petal build diff`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from petal.build.log_markers import parse_log_line
from petal.build.manifest import (
    Manifest,
    ManifestError,
    diff_manifests,
    format_diff,
    manifest_key,
    parse_manifest,
    sha256_of,
)
from petal.build.manifest_store import find_build, load_manifest
from petal.build.records import BuildRecord
from petal.build.table import BuildTable, table_definition
from petal.deployment_contract import TAG_BUILD_ID

FP = "sha256:" + "cd" * 32
BUCKET = "petal-seeds"


def node(name: str, version: str, compiler: str = "13.2.0", **variants: Any) -> dict[str, Any]:
    return {
        "name": name,
        "version": version,
        "compiler": {"name": "gcc", "version": compiler},
        "parameters": {"build_system": "autotools", "cflags": [], **variants},
    }


def manifest(build_id: str, specs: dict[str, dict[str, Any]], **sources: str) -> dict[str, Any]:
    return {
        "format": 2,
        "build_id": build_id,
        "fingerprint": FP,
        "lock": {"roots": [], "concrete_specs": specs},
        "install_sources": sources,
    }


BEFORE = manifest(
    "b1",
    {
        "zlib1": node("zlib", "1.3.1"),
        "sam1": node("samtools", "1.17", shared=True),
        "bwa1": node("bwa", "0.7.17"),
        "py1": node("python", "3.11.9"),
        "py2": node("python", "3.12.4"),
    },
    zlib1="built",
    sam1="built",
)
AFTER = manifest(
    "b2",
    {
        "zlib1": node("zlib", "1.3.1"),
        "sam2": node("samtools", "1.19", shared=False),
        "bwa2": node("bwa", "0.7.17", compiler="14.1.0"),
        "py1": node("python", "3.11.9"),
        "bcf1": node("bcftools", "1.19"),
    },
    zlib1="parent",
    sam2="built",
    bcf1="cache",
)


def test_diff_names_added_removed_and_changed_packages() -> None:
    diff = diff_manifests(Manifest(BEFORE), Manifest(AFTER), a_label="b1", b_label="b2")
    assert [p.name for p in diff.added] == ["bcftools"]
    # Of two pythons, the one with the same hash stays; the other is gone.
    assert [(p.name, p.version) for p in diff.removed] == [("python", "3.12.4")]
    assert {c.name: c.fields() for c in diff.changed} == {
        "bwa": ["compiler"],
        "samtools": ["version", "variants"],
    }
    assert diff.unchanged == 2
    document = diff.to_json()
    assert document["added"][0]["source"] == "cache"
    samtools = next(c for c in document["changed"] if c["name"] == "samtools")
    assert samtools["before"]["variants"]["shared"] is True
    assert "cflags" not in samtools["after"]["variants"]  # flags are not variants
    json.dumps(document)


def test_diff_for_people() -> None:
    lines = format_diff(diff_manifests(Manifest(BEFORE), Manifest(AFTER), a_label="A", b_label="B"))
    assert lines[:2] == ["--- A", "+++ B"]
    assert "+ bcftools@1.19%gcc@13.2.0 build_system=autotools /bcf1" in lines
    assert "~ samtools: version, variants" in lines
    assert "    - samtools@1.17%gcc@13.2.0 build_system=autotools +shared /sam1" in lines
    assert "    + samtools@1.19%gcc@13.2.0 build_system=autotools ~shared /sam2" in lines
    assert lines[-1] == "1 added, 1 removed, 2 changed, 2 unchanged"


def test_same_hash_different_dependency_is_a_change_of_dependencies() -> None:
    a = Manifest(manifest("a", {"h1": node("samtools", "1.17")}))
    b = Manifest(manifest("b", {"h2": node("samtools", "1.17")}))
    (change,) = diff_manifests(a, b, a_label="a", b_label="b").changed
    assert change.fields() == ["dependencies"]


def test_identical_stacks() -> None:
    diff = diff_manifests(Manifest(BEFORE), Manifest(BEFORE), a_label="a", b_label="b")
    assert diff.identical
    assert format_diff(diff)[-1] == "same 5 packages (same hashes)"


def test_an_old_manifest_cannot_be_compared() -> None:
    with pytest.raises(ManifestError, match="format 1; build diff needs format 2"):
        Manifest({"format": 1, "build_id": "old"}).packages()


def test_a_changed_copy_is_refused() -> None:
    data = json.dumps(BEFORE).encode()
    assert parse_manifest(data, expected_sha256=sha256_of(data), where="x").build_id == "b1"
    with pytest.raises(ManifestError, match="changed after the build"):
        parse_manifest(data + b" ", expected_sha256=sha256_of(data), where="x")
    with pytest.raises(ManifestError, match="not JSON"):
        parse_manifest(b"{", expected_sha256=None, where="x")


def test_source_counts() -> None:
    assert Manifest(AFTER).source_counts() == {"built": 1, "cache": 1, "parent": 1}


# --- finding and fetching a build's manifest ---------------------------------------------


@pytest.fixture
def aws() -> Iterator[tuple[BuildTable, Any, Any]]:
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        dynamodb.create_table(**table_definition("builds"))
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        yield BuildTable(dynamodb, "builds"), boto3.client("ec2", region_name="us-east-1"), s3


def record(
    build_id: str, *, started: str, sha: str | None, status: str = "SUCCEEDED"
) -> BuildRecord:
    return BuildRecord(
        build_id=build_id,
        status=status,  # type: ignore[arg-type]
        started_at=started,
        fingerprint=FP,
        manifest_sha256=sha,
    )


def upload(s3: Any, document: dict[str, Any]) -> str:
    data = json.dumps(document).encode()
    s3.put_object(Bucket=BUCKET, Key=manifest_key(document["build_id"]), Body=data)
    return sha256_of(data)


def test_a_build_id_a_snapshot_and_a_fingerprint_name_builds(
    aws: tuple[BuildTable, Any, Any],
) -> None:
    table, ec2, s3 = aws
    table.create_build(record("b1", started="2026-01-01T00:00:00Z", sha=upload(s3, BEFORE)))
    table.create_build(record("b2", started="2026-02-01T00:00:00Z", sha=upload(s3, AFTER)))
    table.create_build(record("b3", started="2026-03-01T00:00:00Z", sha=None, status="FAILED"))
    volume = ec2.create_volume(AvailabilityZone="us-east-1a", Size=1)["VolumeId"]
    snapshot = ec2.create_snapshot(
        VolumeId=volume,
        TagSpecifications=[
            {"ResourceType": "snapshot", "Tags": [{"Key": TAG_BUILD_ID, "Value": "b1"}]}
        ],
    )["SnapshotId"]
    assert find_build("b2", table=table, ec2=ec2).build_id == "b2"
    assert find_build(snapshot, table=table, ec2=ec2).build_id == "b1"
    # The newest successful build with a manifest: not the failed b3.
    assert find_build(FP, table=table, ec2=ec2).build_id == "b2"
    loaded = load_manifest(find_build(snapshot, table=table, ec2=ec2), s3=s3, bucket=BUCKET)
    assert loaded.data == BEFORE


def test_clear_errors_when_no_manifest_is_available(aws: tuple[BuildTable, Any, Any]) -> None:
    table, ec2, s3 = aws
    table.create_build(record("old", started="2026-01-01T00:00:00Z", sha=None))
    table.create_build(record("gone", started="2026-01-01T00:00:00Z", sha="sha256:" + "0" * 64))
    table.create_build(record("run", started="2026-01-01T00:00:00Z", sha=None, status="RUNNING"))
    table.create_build(record("bad", started="2026-01-01T00:00:00Z", sha="sha256:" + "0" * 64))
    s3.put_object(Bucket=BUCKET, Key=manifest_key("bad"), Body=b"{}")
    cases = {
        "old": "reported none",
        "run": "has not finished",
        "gone": "is missing although build gone reported its manifest",
        "bad": "changed after the build",
    }
    for build_id, message in cases.items():
        with pytest.raises(ManifestError, match=message):
            load_manifest(find_build(build_id, table=table, ec2=ec2), s3=s3, bucket=BUCKET)
    with pytest.raises(ManifestError, match="no build 'nope'"):
        find_build("nope", table=table, ec2=ec2)
    with pytest.raises(ManifestError, match="no snapshot snap-0123456789abcdef0"):
        find_build("snap-0123456789abcdef0", table=table, ec2=ec2)
    with pytest.raises(ManifestError, match="no successful build of sha256:"):
        find_build("sha256:" + "e" * 64, table=table, ec2=ec2)
    with pytest.raises(ManifestError, match="is not a build id"):
        find_build("../etc", table=table, ec2=ec2)


def test_the_manifest_marker() -> None:
    sha = "sha256:" + "ab" * 32
    event = parse_log_line(f"PETAL-MANIFEST {sha}")
    assert event is not None and (event.kind, event.sha256) == ("manifest", sha)
    assert parse_log_line("PETAL-MANIFEST sha256:XYZ") is None
    assert parse_log_line(f"PETAL-MANIFEST {sha} trailing") is None
