"""Which old snapshots of a seed `petal build prune` may delete, and deleting them.

Per OS and architecture, the `keep` newest completed snapshots stay. An older one is
deleted only if nothing uses it:
- no volume exists that was created from it (DescribeVolumes, filter snapshot-id): a
  cluster's volume, one made by `petal create --initialize`, anyone's in this account;
- no ParallelCluster cluster is tagged with it (petal's configs tag the cluster with
  its snapshot; petal.aws.cluster_stacks);
and, unless forced, it is neither shared (createVolumePermission: accounts or public)
nor listed in an enabled registry: other accounts may depend on it, and they cannot be
asked. Volumes and clusters of other accounts are invisible here: that is why shared
ones need --force.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from petal.aws import ebs_volumes, ec2_snapshots
from petal.aws.cluster_stacks import clusters_by_tag
from petal.aws.ec2_snapshots import SnapshotView
from petal.cluster import costs
from petal.cluster.config import TAG_CLUSTER_SNAPSHOT
from petal.deployment_contract import (
    MANAGED_VALUE,
    TAG_ARCH,
    TAG_FINGERPRINT,
    TAG_MANAGED,
    TAG_OS,
    TAG_SEED,
)
from petal.errors import PetalError
from petal.registry.documents import RegistryError

KEEP: Final = "keep"
DELETE: Final = "delete"
IN_USE: Final = "in use"
PROTECTED: Final = "protected"  # shared or published, and not --force

# snapshot ids of the seed -> why each is published (registry), for the enabled registries
PublishedLookup = Callable[[Sequence[SnapshotView]], tuple[dict[str, str], list[str]]]


@dataclass
class Candidate:
    snapshot: SnapshotView
    action: str = DELETE
    reasons: list[str] = field(default_factory=list)
    deleted: bool = False
    failure: str | None = None

    @property
    def variant(self) -> str:
        tags = self.snapshot.tags
        return f"{tags.get(TAG_OS, '?')}/{tags.get(TAG_ARCH, '?')}"

    def to_json(self) -> dict[str, Any]:
        view = self.snapshot
        return {
            "snapshot_id": view.snapshot_id,
            "variant": self.variant,
            "size_gb": view.size_gb,
            "created": view.start_time.isoformat() if view.start_time else None,
            "lifecycle": ec2_snapshots.lifecycle_of(view.tags),
            "action": self.action,
            "reasons": list(self.reasons),
            "deleted": self.deleted,
            "failure": self.failure,
        }


@dataclass
class PrunePlan:
    seed: str
    region: str
    keep: int
    candidates: list[Candidate]
    warnings: list[str] = field(default_factory=list)

    @property
    def to_delete(self) -> list[Candidate]:
        return [c for c in self.candidates if c.action == DELETE]

    @property
    def size_gb(self) -> int:
        return sum(c.snapshot.size_gb for c in self.to_delete)

    @property
    def deleted_gb(self) -> int:
        return sum(c.snapshot.size_gb for c in self.candidates if c.deleted)


def keep_newest(
    snapshots: Sequence[SnapshotView], keep: int
) -> tuple[list[SnapshotView], list[SnapshotView]]:
    """(kept, older): the `keep` newest of each OS/architecture, and the rest, each
    newest first. `snapshots` come newest first (find_snapshots' order)."""
    kept: list[SnapshotView] = []
    older: list[SnapshotView] = []
    seen: dict[tuple[str | None, str | None], int] = {}
    for snapshot in snapshots:
        variant = (snapshot.tags.get(TAG_OS), snapshot.tags.get(TAG_ARCH))
        seen[variant] = seen.get(variant, 0) + 1
        (kept if seen[variant] <= keep else older).append(snapshot)
    return kept, older


def survey(
    *,
    ec2: Any,
    cloudformation: Any,
    region: str,
    seed: str,
    keep: int,
    force: bool,
    published: PublishedLookup,
    shared_with: Callable[[str], str | None],
) -> PrunePlan:
    """What prune would do: every completed snapshot of the seed, with its action.

    `published` names the registries listing the seed's snapshots (and warnings for
    registries it could not read); `shared_with` says whom one snapshot is shared with
    (None: no one)."""
    snapshots = ec2_snapshots.find_snapshots(ec2, {TAG_SEED: seed, TAG_MANAGED: MANAGED_VALUE})
    kept, older = keep_newest(snapshots, keep)
    candidates = [
        Candidate(s, KEEP, [f"one of the {keep} newest of its OS/architecture"]) for s in kept
    ]
    plan = PrunePlan(seed, region, keep, candidates)
    if not older:
        return plan
    ids = [s.snapshot_id for s in older]
    volumes = ebs_volumes.volumes_from_snapshots(ec2, ids)
    clusters = clusters_by_tag(cloudformation, TAG_CLUSTER_SNAPSHOT)
    listed, plan.warnings = published(snapshots)
    for snapshot in older:
        candidate = Candidate(snapshot)
        sid = snapshot.snapshot_id
        if sid in volumes:
            candidate.reasons.append("volumes made from it: " + ", ".join(volumes[sid]))
        if sid in clusters:
            candidate.reasons.append("clusters tagged with it: " + ", ".join(clusters[sid]))
        if candidate.reasons:
            candidate.action = IN_USE
        else:
            sharing = shared_with(sid)
            guarded = []
            if sharing is not None:
                guarded.append(f"shared with {sharing}")
            if sid in listed:
                guarded.append(f"published in {listed[sid]}")
            if guarded and not force:
                candidate.action = PROTECTED
                candidate.reasons.extend([*guarded, "--force deletes it anyway"])
            else:
                candidate.reasons.extend(guarded)
        plan.candidates.append(candidate)
    return plan


def delete(ec2: Any, plan: PrunePlan) -> None:
    """Delete what the plan deletes; a refusal (a registered AMI uses the snapshot, say)
    is recorded on its candidate and the others go on."""
    for candidate in plan.to_delete:
        try:
            ec2_snapshots.delete_snapshot(ec2, candidate.snapshot.snapshot_id)
        except PetalError as failure:
            candidate.failure = str(failure)
            continue
        candidate.deleted = True


def storage_line(size_gb: int, verb: str) -> str:
    return (
        f"{verb} up to {costs.dollars(costs.snapshot_storage(size_gb))} a month "
        f"({size_gb} GiB at {costs.price(costs.SNAPSHOT_PRICE_PER_GB_MONTH)}/GB-month, "
        "standard tier; incremental snapshots store only changed blocks, so likely less; "
        f"{costs.PRICE_NOTE})"
    )


def published_in_registries(
    registries: Mapping[str, Callable[[str], Sequence[tuple[str, str]]]], region: str
) -> PublishedLookup:
    """A PublishedLookup over registries: label -> (fingerprint -> its (region,
    snapshot id) variants). A registry that cannot be read protects nothing it might
    list, so the lookup reports it and prune keeps every snapshot it could list."""

    def lookup(snapshots: Sequence[SnapshotView]) -> tuple[dict[str, str], list[str]]:
        listed: dict[str, str] = {}
        warnings: list[str] = []
        fingerprints = sorted({s.tags.get(TAG_FINGERPRINT, "") for s in snapshots} - {""})
        for label, variants_of in registries.items():
            for fingerprint in fingerprints:
                try:
                    variants = variants_of(fingerprint)
                except RegistryError as failure:
                    warnings.append(
                        f"{label} could not be read ({failure}): the snapshots of "
                        f"{fingerprint[:19]}... are kept as if published"
                    )
                    for s in snapshots:
                        if s.tags.get(TAG_FINGERPRINT) == fingerprint:
                            listed.setdefault(s.snapshot_id, f"{label} (unreadable)")
                    continue
                for variant_region, snapshot_id in variants:
                    if variant_region == region:
                        listed.setdefault(snapshot_id, label)
        return listed, warnings

    return lookup
