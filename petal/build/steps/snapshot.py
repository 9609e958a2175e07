"""Build step Snapshot: snapshot the software volume and tag it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from petal.aws import ec2_builder, ec2_snapshots
from petal.build.table import BuildTable
from petal.deployment_contract import (
    MANAGED_VALUE,
    MOUNT_DIR,
    TAG_ARCH,
    TAG_BUILD_ID,
    TAG_BUILDER_IMAGE,
    TAG_FINGERPRINT,
    TAG_MANAGED,
    TAG_MOUNT_DIR,
    TAG_OS,
    TAG_PACKAGES,
    TAG_PARENT,
    TAG_SEED,
    TAG_SPACK_VERSION,
)
from petal.snapshot_description import format_description


def snapshot_tags(build: Mapping[str, Any]) -> dict[str, str]:
    tags = {
        "Name": f"petal-{build['seed_name']}-{build['os']}-{build['architecture']}",
        TAG_MANAGED: MANAGED_VALUE,
        TAG_FINGERPRINT: str(build["fingerprint"]),
        TAG_OS: str(build["os"]),
        TAG_ARCH: str(build["architecture"]),
        TAG_SPACK_VERSION: str(build["spack_version"]),
        TAG_SEED: str(build["seed_name"]),
        TAG_BUILD_ID: str(build["build_id"]),
        TAG_PACKAGES: ec2_builder.packages_tag_value(list(build.get("packages") or [])),
        TAG_MOUNT_DIR: MOUNT_DIR,
    }
    if build.get("parent_snapshot_id"):
        tags[TAG_PARENT] = str(build["parent_snapshot_id"])
    if build.get("builder_image"):
        tags[TAG_BUILDER_IMAGE] = str(build["builder_image"])
    return tags


def snapshot(event: Mapping[str, Any], *, ec2: Any, table: BuildTable) -> dict[str, Any]:
    build, resources = event["build"], event["resources"]
    build_id = str(build["build_id"])
    volume_id, instance_id = str(resources["volume_id"]), str(resources["instance_id"])
    # A retry after the snapshot was created must not start a second one.
    for existing in ec2_snapshots.find_snapshots(
        ec2, {TAG_BUILD_ID: build_id, TAG_MANAGED: MANAGED_VALUE}, states=()
    ):
        if existing.state in ("pending", "completed"):
            return {"snapshot_id": existing.snapshot_id, "completed": False, "attempt": 0}
    # The bootstrap flushed and unmounted the filesystem, so the volume is consistent.
    ec2_builder.detach_volume(ec2, volume_id, instance_id)
    description = format_description(
        str(build["fingerprint"]),
        str(build["os"]),
        str(build["architecture"]),
        str(build["seed_name"]),
        parent=build.get("parent_snapshot_id"),
    )
    snapshot_id = ec2_snapshots.create_snapshot(ec2, volume_id, description, snapshot_tags(build))
    table.update_build(
        build_id,
        {"step": "snapshot", "snapshot_id": snapshot_id},
        execution_arn=build["execution_arn"],
    )
    return {"snapshot_id": snapshot_id, "completed": False, "attempt": 0}
