"""Find a build's manifest from a build id, snapshot id or fingerprint, and fetch the
copy its builder uploaded to the seed bucket, checked against the SHA-256 the build
recorded (petal.build.manifest). Adapters: they take boto3 clients."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from petal.aws.ec2_snapshots import describe_snapshot
from petal.aws.errors import error_code, translate
from petal.build.manifest import Manifest, ManifestError, manifest_key, parse_manifest
from petal.build.records import SUCCESSFUL, BuildRecord
from petal.build.table import BuildTable
from petal.deployment_contract import TAG_BUILD_ID
from petal.identifiers import BUILD_ID, FINGERPRINT, SNAPSHOT_ID


def find_build(reference: str, *, table: BuildTable, ec2: Any) -> BuildRecord:
    """The build `reference` names: a build id, the id of a snapshot petal made, or a
    fingerprint (its newest successful build)."""
    if SNAPSHOT_ID.fullmatch(reference):
        snapshot = describe_snapshot(ec2, reference)
        if snapshot is None:
            raise ManifestError(f"no snapshot {reference} in this account and region")
        build_id = snapshot.tags.get(TAG_BUILD_ID)
        if not build_id:
            raise ManifestError(
                f"snapshot {reference} has no {TAG_BUILD_ID} tag: petal did not build it"
            )
        return _build(table, build_id, f"snapshot {reference}'s build")
    if FINGERPRINT.fullmatch(reference):
        builds = [
            b
            for b in table.builds_for_fingerprint(reference, limit=100)
            if b.status in SUCCESSFUL and b.manifest_sha256
        ]
        if not builds:
            raise ManifestError(
                f"no successful build of {reference} has a manifest: build the seed with "
                "this petal (`petal build --seed FILE`)"
            )
        return max(builds, key=lambda b: b.started_at)
    if BUILD_ID.fullmatch(reference):
        return _build(table, reference, "build")
    raise ManifestError(
        f"{reference!r} is not a build id, a snapshot id (snap-...) or a fingerprint "
        "(sha256:<64 hex>): list builds with `petal build list`"
    )


def _build(table: BuildTable, build_id: str, what: str) -> BuildRecord:
    record = table.get_build(build_id)
    if record is None:
        raise ManifestError(f"no {what} {build_id!r} in the builds table")
    return record


def load_manifest(record: BuildRecord, *, s3: Any, bucket: str) -> Manifest:
    """The manifest `record`'s builder uploaded, refused if it was changed since."""
    if not record.manifest_sha256:
        state = (
            "has not finished"
            if record.status == "RUNNING"
            else "reported none (built before petal kept manifests, or it failed before writing it)"
        )
        raise ManifestError(f"build {record.build_id} {state}: no manifest to read")
    key = manifest_key(record.build_id)
    try:
        data = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as error:
        if error_code(error) in ("NoSuchKey", "404"):
            raise ManifestError(
                f"s3://{bucket}/{key} is missing although build {record.build_id} "
                "reported its manifest: it was deleted"
            ) from None
        raise translate(f"S3 GetObject s3://{bucket}/{key}", error) from error
    return parse_manifest(
        data, expected_sha256=record.manifest_sha256, where=f"s3://{bucket}/{key}"
    )
