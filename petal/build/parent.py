"""The parent of an incremental build (`petal build --from SNAP|auto`): which snapshot
the builder's volume is created from, and whether a build of this seed may start there.

A parent lends its filesystem: Spack's clone, its install tree and its compilers. So it
must be a completed petal snapshot of this account, built for the same OS and
architecture (binaries), mounted at the same place (Spack's paths are absolute) and with
the same Spack release (the bootstrap keeps the volume's clone). Each refusal names the
field and the fix, before anything is created.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from petal.aws import ec2_builder, ec2_snapshots
from petal.build.request import AUTO_PARENT
from petal.deployment_contract import (
    MANAGED_VALUE,
    MOUNT_DIR,
    TAG_ARCH,
    TAG_MANAGED,
    TAG_MOUNT_DIR,
    TAG_OS,
    TAG_SEED,
    TAG_SPACK_VERSION,
)
from petal.errors import InvalidBuildRequest
from petal.seed.model import Seed
from petal.snapshot_description import parse_description

# Appended to every refusal: Prepare refuses before it writes anything.
NOTHING_CREATED: Final = "Nothing was created."


@dataclass(frozen=True)
class Parent:
    snapshot_id: str
    size_gb: int
    encrypted: bool


def resolve_parent(ec2: Any, seed: Seed, wanted: str) -> Parent:
    """The snapshot `wanted` names (an id, or AUTO_PARENT), checked against the seed;
    raises InvalidBuildRequest saying why it cannot be the parent."""
    snapshot_id = _newest_of_the_seed(ec2, seed) if wanted == AUTO_PARENT else wanted
    found = ec2_builder.describe_source_snapshot(ec2, snapshot_id)
    if found is None:
        raise _unseen(ec2, snapshot_id)
    _check_parent(found, seed)
    return Parent(snapshot_id=found.snapshot_id, size_gb=found.size_gb, encrypted=found.encrypted)


def _newest_of_the_seed(ec2: Any, seed: Seed) -> str:
    tags = {
        TAG_MANAGED: MANAGED_VALUE,
        TAG_SEED: seed.name,
        TAG_OS: seed.os,
        TAG_ARCH: seed.architecture,
    }
    for view in ec2_snapshots.find_snapshots(ec2, tags):
        if ec2_snapshots.lifecycle_of(view.tags) != "retired":
            return view.snapshot_id
    raise InvalidBuildRequest(
        f"parent: auto found no completed snapshot of seed {seed.name} for "
        f"{seed.os}/{seed.architecture} in this account and region (retired ones are "
        "skipped): build it once without --from (a full build), or name a snapshot "
        f"with --from snap-... {NOTHING_CREATED}"
    )


def _unseen(ec2: Any, snapshot_id: str) -> InvalidBuildRequest:
    shared = ec2_builder.describe_source_snapshot(ec2, snapshot_id, own=False)
    if shared is not None:
        return InvalidBuildRequest(
            f"parent: {snapshot_id} belongs to account {shared.owner_id or 'another one'}, "
            "not this one: a build starts only from this account's own petal snapshots. "
            "Build without --from, or use --from auto (the newest snapshot of the seed "
            f"here). {NOTHING_CREATED}"
        )
    return InvalidBuildRequest(
        f"parent: {snapshot_id} is not a snapshot of this account in this region "
        "(snapshots are regional): check the id (`petal build list` shows each build's "
        f"snapshot), or use --from auto. {NOTHING_CREATED}"
    )


def _check_parent(found: ec2_builder.SourceSnapshot, seed: Seed) -> None:
    snapshot_id, tags = found.snapshot_id, found.tags
    description = parse_description(found.description)
    if tags.get(TAG_MANAGED) != MANAGED_VALUE or description is None:
        raise InvalidBuildRequest(
            f"parent: {snapshot_id} is not a snapshot petal built (no {TAG_MANAGED} tag "
            "or petal description): only a petal build's volume holds the Spack tree a "
            f"build can continue. Name a petal snapshot, or build without --from. "
            f"{NOTHING_CREATED}"
        )
    if found.state != "completed":
        raise InvalidBuildRequest(
            f"parent: {snapshot_id} is {found.state or 'in an unknown state'} "
            f"({found.progress or '0%'}), not completed: wait for it (`petal build list`), "
            f"or use another snapshot. {NOTHING_CREATED}"
        )
    problems: list[str] = []
    if description.os != seed.os:
        problems.append(
            f"os: the parent was built for {description.os}, this build is for {seed.os} "
            f"(binaries differ): build --os {description.os}, or use a parent built for "
            f"{seed.os} (--from auto finds one)"
        )
    if description.architecture != seed.architecture:
        problems.append(
            f"architecture: the parent was built for {description.architecture}, this "
            f"build is for {seed.architecture}: build --architecture "
            f"{description.architecture}, or use a parent built for {seed.architecture}"
        )
    mount_dir = tags.get(TAG_MOUNT_DIR, MOUNT_DIR)
    if mount_dir != MOUNT_DIR:
        problems.append(
            f"mount point: the parent's volume was mounted at {mount_dir}, builds mount at "
            f"{MOUNT_DIR} and Spack's paths are absolute: build without --from"
        )
    parent_spack = tags.get(TAG_SPACK_VERSION, "")
    if parent_spack != seed.software.spack_version:
        fix = f"or set software.spack_version to {parent_spack}" if parent_spack else ""
        problems.append(
            f"software.spack_version: the parent holds Spack {parent_spack or '(untagged)'}, "
            f"the seed asks for {seed.software.spack_version}, and a build keeps the "
            f"volume's Spack: build without --from{', ' + fix if fix else ''}"
        )
    if problems:
        raise InvalidBuildRequest(
            f"parent: {snapshot_id} cannot be this build's parent: {'; '.join(problems)}. "
            f"{NOTHING_CREATED}"
        )
