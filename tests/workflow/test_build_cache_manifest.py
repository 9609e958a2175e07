"""The build cache and the manifest on the emulator: the real state machine, handlers
and log consumer, with the simulated builder recording cache pushes and hits in the
emulated bucket (petal.local.simulated_cache)."""

from __future__ import annotations

import json

from petal.build.manifest import Manifest, diff_manifests, manifest_key, sha256_of
from petal.build.manifest_store import find_build, load_manifest
from petal.local.emulator import LocalAws
from tests.workflow.conftest import seed_document


def manifest_of(aws: LocalAws, build_id: str) -> Manifest:
    """The build's manifest as `petal build diff` reads it: from the seed bucket, checked
    against the SHA-256 the log consumer recorded from the builder's PETAL-MANIFEST."""
    record = find_build(build_id, table=aws.table, ec2=aws.client("ec2"))
    return load_manifest(record, s3=aws.client("s3"), bucket=aws.deployment.seed_bucket)


def test_a_second_build_of_an_overlapping_seed_uses_the_cache(aws: LocalAws) -> None:
    first = aws.build({"seed": seed_document(), "build_id": "cache-1"})
    assert first.status == "SUCCEEDED", first.cause
    one = manifest_of(aws, "cache-1")
    assert one.source_counts() == {"built": 3, "cache": 0, "parent": 0}
    # What it built is in the cache now, under the cache's prefix of the bucket.
    listed = aws.client("s3").list_objects_v2(
        Bucket=aws.deployment.seed_bucket, Prefix="build-cache/"
    )
    assert len(listed["Contents"]) == 3

    # Another seed sharing two of the three packages.
    document = seed_document(name="workload-other")
    document["software"]["packages"] = ["zlib@1.3.1", "bzip2@1.0.8", "lz4@1.9.4"]
    second = aws.build({"seed": document, "build_id": "cache-2"})
    assert second.status == "SUCCEEDED", second.cause
    two = manifest_of(aws, "cache-2")
    assert two.source_counts() == {"built": 1, "cache": 2, "parent": 0}
    sources = {p.name: p.source for p in two.packages()}
    assert sources == {"zlib": "cache", "bzip2": "cache", "lz4": "built"}

    diff = diff_manifests(one, two, a_label="cache-1", b_label="cache-2")
    assert [p.name for p in diff.added] == ["lz4"]
    assert [p.name for p in diff.removed] == ["xz"]
    assert diff.changed == [] and diff.unchanged == 2


def test_the_manifest_copy_matches_the_reported_hash(aws: LocalAws) -> None:
    result = aws.build({"seed": seed_document(), "build_id": "manifest-1"})
    assert result.status == "SUCCEEDED", result.cause
    s3, bucket = aws.client("s3"), aws.deployment.seed_bucket
    data = s3.get_object(Bucket=bucket, Key=manifest_key("manifest-1"))["Body"].read()
    record = aws.table.get_build("manifest-1")
    assert record is not None and record.manifest_sha256 == sha256_of(data)
    document = json.loads(data)
    assert document["build_id"] == "manifest-1" and document["format"] == 2
    assert document["build_cache"] == aws.deployment.build_cache_url
