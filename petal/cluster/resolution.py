"""Find the software snapshot for a fingerprint: the one resolve function that the
resolver Lambda and `petal create` share.

Sources are tried in the user's order (petal.user_config); the first source with a
usable snapshot wins, and within it the newest. The trust rules:

- own account: DescribeSnapshots(OwnerIds=["self"]) filtered by the petal tags.
- organization: DescribeSnapshots(OwnerIds=<trusted accounts>), matched by parsing the
  Description, because tags are invisible to other accounts.
- registries (official, community): a registry entry is only a claim. It is used after
  DescribeSnapshots(OwnerIds=[its owner]) in the target region shows that the owner is
  trusted, the snapshot is completed, its size is the one the registry states, and the
  snapshot itself (its Description, or its tags in the own account) names the
  fingerprint, OS and architecture: a registry cannot bind just any snapshot of a
  trusted account to a fingerprint. Anything else is skipped, with the reason reported.
  An entry's candidates are confirmed in batches (one call per owner and 200 ids), not
  one call per variant.

Size: a snapshot at least as large as the requested size is preferred (its filesystem
already has the space); failing that the newest smaller one is used with a warning,
since the volume can be larger than the snapshot but the filesystem then has to be
grown by hand. The cluster's volume is max(requested, snapshot size): ParallelCluster
rejects a Size below the snapshot's (docs/REGISTRY.md, "Sizes").

Lifecycle (the petal:lifecycle tag, `petal build deprecate|retire|reinstate`): a retired
snapshot is skipped, with the reason; a deprecated one is used only when no current one
is usable, with a warning. Tags are visible to their owner only, so this applies to the
own account's snapshots (and registry entries that point at them).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from petal.aws.ec2_snapshots import Lifecycle, describe_snapshot_pages, lifecycle_of
from petal.deployment_contract import (
    TAG_ARCH,
    TAG_BUILDER_IMAGE,
    TAG_FINGERPRINT,
    TAG_OS,
    TAG_SEED,
)
from petal.errors import EXIT_FAILURE, EXIT_INVALID, PetalError, PetalStepError
from petal.identifiers import FINGERPRINT, MAX_VOLUME_GB, REGION
from petal.platforms import ARCHITECTURES, Architecture, UnknownOperatingSystem, operating_system
from petal.registry.client import RegistryClient
from petal.registry.documents import EntryMetadata, RegistryError, SnapshotVariant
from petal.snapshot_description import description_filter, parse_description
from petal.user_config import SnapshotSource, UserConfig

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client
    from mypy_boto3_ec2.type_defs import SnapshotTypeDef

LAZY_LOADING_WARNING: Final = (
    "volumes created from a snapshot load lazily from S3: the first read of each block "
    "is slow (the first `module load` or compile may take longer); petal create's "
    "--initialize RATE creates the volume at a provisioned initialization rate "
    "instead (docs/VOLUMES.md)"
)
# Registry claims are confirmed by snapshot id in batches of this many: EC2 takes at
# most 200 values per filter. A `snapshot-id` filter, not SnapshotIds, because one id
# that is missing or not shared fails a whole SnapshotIds call (InvalidSnapshot.NotFound)
# where a filter just leaves it out.
CONFIRM_BATCH: Final = 200

RegistryFactory = Callable[[SnapshotSource], RegistryClient]


class InvalidRequest(PetalError, ValueError):
    """A resolution request with a bad field; the message names it and the fix."""

    exit_code = EXIT_INVALID

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}")


class ResolutionError(PetalError, RuntimeError):
    """AWS could not be asked (no credentials, no permission, network)."""

    exit_code = EXIT_FAILURE


@dataclass(frozen=True)
class ResolutionRequest:
    fingerprint: str
    region: str
    os: str  # ParallelCluster name
    architecture: Architecture
    size_gb: int  # the volume size asked for (the Lambda's min_size_gb)
    seed_name: str | None = None


def make_request(
    fingerprint: Any,
    region: Any,
    os: Any,
    architecture: Any,
    size_gb: Any,
    seed_name: str | None = None,
) -> ResolutionRequest:
    """A checked, normalised request (either OS spelling is accepted)."""
    if not isinstance(fingerprint, str) or not FINGERPRINT.match(fingerprint):
        raise InvalidRequest(
            "fingerprint", f"{fingerprint!r} is not sha256: followed by 64 hex digits"
        )
    if not isinstance(region, str) or not REGION.match(region):
        raise InvalidRequest("region", f"{region!r} is not an AWS region, e.g. us-east-1")
    if not isinstance(os, str):
        raise InvalidRequest("os", f"{os!r} is not an operating system name")
    try:
        os_name = operating_system(os).name
    except UnknownOperatingSystem as error:
        raise InvalidRequest("os", str(error)) from None
    if architecture not in ARCHITECTURES:
        raise InvalidRequest(
            "architecture", f"{architecture!r} is not one of {', '.join(ARCHITECTURES)}"
        )
    if (
        isinstance(size_gb, bool)
        or not isinstance(size_gb, int)
        or not 1 <= size_gb <= MAX_VOLUME_GB
    ):
        raise InvalidRequest("size_gb", f"{size_gb!r} is not a size from 1 to {MAX_VOLUME_GB} GiB")
    arch: Architecture = "arm64" if architecture == "arm64" else "x86_64"
    return ResolutionRequest(fingerprint, region, os_name, arch, size_gb, seed_name)


@dataclass(frozen=True)
class Skipped:
    """A candidate (or a whole source) that was not used, and why."""

    source: str
    reason: str
    snapshot_id: str | None = None
    owner: str | None = None

    def format(self) -> str:
        what = self.snapshot_id or self.source
        owner = f" (owner {self.owner})" if self.owner else ""
        prefix = f"{self.source}: " if self.snapshot_id else ""
        return f"{prefix}{what}{owner}: {self.reason}"


@dataclass(frozen=True)
class Resolution:
    snapshot_id: str
    region: str
    os: str
    architecture: Architecture
    snapshot_size_gb: int
    volume_size_gb: int  # what the cluster's EbsSettings.Size must be
    owner: str | None  # None: own account, id not looked up
    source: str  # local | organization | official | community
    source_label: str
    reason: str
    start_time: str | None = None
    encrypted: bool = False
    kms_key_id: str | None = None
    seed_name: str | None = None
    # The image the snapshot was built on when it was not the official AMI (its
    # petal:builder-image tag; tags are visible in the own account only).
    builder_image: str | None = None
    registry_url: str | None = None
    # The registry entry's name; spelt as in the JSON of `petal create --json` and the
    # resolver's result, which to_dict() feeds.
    stack_name: str | None = None
    warnings: tuple[str, ...] = ()
    skipped: tuple[Skipped, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["warnings"] = list(self.warnings)
        data["skipped"] = [asdict(s) for s in self.skipped]
        return data


class SnapshotNotFound(LookupError):
    def __init__(
        self, request: ResolutionRequest, sources: tuple[str, ...], skipped: tuple[Skipped, ...]
    ) -> None:
        self.request = request
        self.sources = sources
        self.skipped = skipped
        checked = ", ".join(sources) or "no enabled source"
        super().__init__(
            f"no usable snapshot for {request.fingerprint} ({request.os}, "
            f"{request.architecture}) in {request.region}; checked: {checked}"
        )


@dataclass
class _Candidate:
    snapshot_id: str
    owner: str | None
    size_gb: int
    start_time: datetime | None
    encrypted: bool
    kms_key_id: str | None
    seed_name: str | None
    builder_image: str | None = None
    lifecycle: Lifecycle = "current"
    extra_warnings: list[str] = field(default_factory=list)


def resolve(
    request: ResolutionRequest,
    *,
    ec2: EC2Client,
    config: UserConfig,
    registry_for: RegistryFactory | None = None,
) -> Resolution:
    """The snapshot to create the cluster's software volume from.

    `ec2` must be a client for `request.region`: every lookup and every confirmation
    happens in the region the cluster is created in. Raises SnapshotNotFound (with
    every skipped candidate) or ResolutionError (AWS could not be asked).
    """
    factory = registry_for or default_registry_factory(config)
    skipped: list[Skipped] = []
    checked: list[str] = []
    for source in config.enabled_sources():
        checked.append(source.label)
        entry: EntryMetadata | None = None
        warnings: list[str] = []
        if source.type == "local":
            candidates = _own_account(ec2, request, skipped)
        elif source.type == "organization":
            owners = config.owners_for(source)
            if not owners:
                skipped.append(Skipped(source.label, "no trusted_accounts configured"))
                continue
            candidates = _organization(ec2, request, owners, source.label, skipped)
        else:
            try:
                client = factory(source)
                entry = client.find(request.fingerprint)
            except RegistryError as error:
                skipped.append(Skipped(source.label, f"registry unusable: {error}"))
                continue
            warnings += client.warnings
            if entry is None:
                skipped.append(
                    Skipped(source.label, f"the registry {client.base_url} has no such stack")
                )
                continue
            owners = config.owners_for(source)
            candidates = _registry(ec2, request, entry, owners, source.label, skipped)
            if source.url and source.url.startswith("http://"):
                warnings.append(f"registry {source.url} is read over plain http")
        if candidates:
            return _choose(request, source, candidates, entry, warnings, skipped)
    raise SnapshotNotFound(request, tuple(checked), tuple(skipped))


def default_registry_factory(config: UserConfig, cache_dir: Path | None = None) -> RegistryFactory:
    """Registry clients with the user's settings; `cache_dir` None: the user's cache."""

    def factory(source: SnapshotSource) -> RegistryClient:
        return RegistryClient(
            source.url or config.registry.url,
            cache_dir=cache_dir,
            ttl_seconds=config.registry.cache_ttl_seconds,
            timeout=config.registry.timeout_seconds,
        )

    return factory


# --- the sources ---------------------------------------------------------------------


def _describe(ec2: EC2Client, **kwargs: Any) -> list[SnapshotTypeDef]:
    try:
        snapshots: list[SnapshotTypeDef] = describe_snapshot_pages(ec2, **kwargs)
    except PetalStepError as error:
        raise ResolutionError(str(error)) from None
    return snapshots


def _tags(snapshot: SnapshotTypeDef) -> dict[str, str]:
    return {t.get("Key", ""): t.get("Value", "") for t in snapshot.get("Tags", [])}


def _not_completed(snapshot: SnapshotTypeDef) -> str | None:
    state = snapshot.get("State")
    if state == "completed":
        return None
    progress = snapshot.get("Progress")
    return f"state is {state}" + (f" ({progress})" if progress else "") + ", not completed"


def _candidate(snapshot: SnapshotTypeDef, seed_name: str | None) -> _Candidate:
    return _Candidate(
        snapshot_id=snapshot.get("SnapshotId", ""),
        owner=snapshot.get("OwnerId"),
        size_gb=int(snapshot.get("VolumeSize", 0)),
        start_time=snapshot.get("StartTime"),
        encrypted=bool(snapshot.get("Encrypted", False)),
        kms_key_id=snapshot.get("KmsKeyId"),
        seed_name=seed_name,
        lifecycle=lifecycle_of(_tags(snapshot)),
    )


def _retired(snapshot: SnapshotTypeDef) -> str | None:
    """Why a retired snapshot is not used; None for any other."""
    if lifecycle_of(_tags(snapshot)) != "retired":
        return None
    return (
        "marked retired (petal:lifecycle tag); `petal build reinstate "
        f"{snapshot.get('SnapshotId')}` makes it current again"
    )


def _own_account(
    ec2: EC2Client, request: ResolutionRequest, skipped: list[Skipped]
) -> list[_Candidate]:
    filters = [
        {"Name": f"tag:{TAG_FINGERPRINT}", "Values": [request.fingerprint]},
        {"Name": f"tag:{TAG_OS}", "Values": [request.os]},
        {"Name": f"tag:{TAG_ARCH}", "Values": [request.architecture]},
    ]
    found = []
    # No status filter: a pending snapshot is reported as skipped rather than ignored.
    for snapshot in _describe(ec2, OwnerIds=["self"], Filters=filters):
        problem = _not_completed(snapshot) or _retired(snapshot)
        if problem:
            skipped.append(
                Skipped("own account", problem, snapshot.get("SnapshotId"), snapshot.get("OwnerId"))
            )
            continue
        tags = _tags(snapshot)
        found.append(
            replace(
                _candidate(snapshot, tags.get(TAG_SEED)),
                builder_image=tags.get(TAG_BUILDER_IMAGE) or None,
            )
        )
    return found


def _organization(
    ec2: EC2Client,
    request: ResolutionRequest,
    owners: Iterable[str],
    label: str,
    skipped: list[Skipped],
) -> list[_Candidate]:
    trusted = set(owners)
    pattern = description_filter(request.fingerprint, request.os, request.architecture)
    found = []
    snapshots = _describe(
        ec2, OwnerIds=sorted(trusted), Filters=[{"Name": "description", "Values": [pattern]}]
    )
    for snapshot in snapshots:
        snapshot_id, owner = snapshot.get("SnapshotId"), snapshot.get("OwnerId")
        if owner not in trusted:  # DescribeSnapshots honours OwnerIds; belt and braces
            skipped.append(Skipped(label, "owner is not a trusted account", snapshot_id, owner))
            continue
        described = parse_description(snapshot.get("Description"))
        if described is None or (
            described.fingerprint,
            described.os,
            described.architecture,
        ) != (request.fingerprint, request.os, request.architecture):
            skipped.append(
                Skipped(
                    label, "its Description is not this fingerprint/os/arch", snapshot_id, owner
                )
            )
            continue
        problem = _not_completed(snapshot) or _retired(snapshot)
        if problem:
            skipped.append(Skipped(label, problem, snapshot_id, owner))
            continue
        found.append(_candidate(snapshot, described.seed))
    return found


def _registry(
    ec2: EC2Client,
    request: ResolutionRequest,
    entry: EntryMetadata,
    owners: Iterable[str],
    label: str,
    skipped: list[Skipped],
) -> list[_Candidate]:
    trusted = set(owners)
    variants = [
        v
        for v in entry.variants
        if (v.region, v.os, v.architecture) == (request.region, request.os, request.architecture)
    ]
    if not variants:
        offered = sorted({f"{v.region}/{v.os}/{v.architecture}" for v in entry.variants})
        skipped.append(
            Skipped(
                label,
                f"{entry.name} has no {request.region}/{request.os}/{request.architecture} "
                f"snapshot; it offers: {', '.join(offered)}",
            )
        )
        return []
    claims: dict[str, list[SnapshotVariant]] = {}
    for variant in variants:
        if variant.aws_account not in trusted:
            skipped.append(
                Skipped(
                    label,
                    "its owner is not a trusted account; add it to registry.trusted_accounts "
                    "in ~/.petal/config.yaml if you trust it",
                    variant.snapshot_id,
                    variant.aws_account,
                )
            )
            continue
        claims.setdefault(variant.aws_account, []).append(variant)
    found = []
    for owner, claimed in claims.items():
        # What EC2 shows of this owner's snapshots among the claimed ids, in the target
        # region: a snapshot that is not there, not shared with us or not the owner's
        # is simply absent.
        shown = _by_id(ec2, [v.snapshot_id for v in claimed], owner)
        absent = [v.snapshot_id for v in claimed if v.snapshot_id not in shown]
        # Only to say why: whose the absent ones are, if we can see them at all.
        elsewhere = _by_id(ec2, absent, None) if absent else {}
        for variant in claimed:
            snapshot = shown.get(variant.snapshot_id)
            if snapshot is None:
                reason = _absent(variant, elsewhere.get(variant.snapshot_id), request)
                skipped.append(Skipped(label, reason, variant.snapshot_id, owner))
                continue
            reason = _refuted(variant, snapshot, request)
            if reason:
                skipped.append(Skipped(label, reason, variant.snapshot_id, owner))
                continue
            found.append(_candidate(snapshot, entry.name))
    return found


def _by_id(
    ec2: EC2Client, snapshot_ids: list[str], owner: str | None
) -> dict[str, SnapshotTypeDef]:
    """The snapshots among these ids that EC2 shows this account in the client's region
    (owned by `owner`, when given), in calls of CONFIRM_BATCH ids."""
    shown: dict[str, SnapshotTypeDef] = {}
    for start in range(0, len(snapshot_ids), CONFIRM_BATCH):
        batch = snapshot_ids[start : start + CONFIRM_BATCH]
        filters = [{"Name": "snapshot-id", "Values": batch}]
        # Without OwnerIds only to learn the owner of ids already asked for: the exact
        # ids keep it from listing every public snapshot in the region.
        scope = {"OwnerIds": [owner]} if owner is not None else {}
        asked = set(batch)
        for snapshot in _describe(ec2, Filters=filters, **scope):
            snapshot_id = snapshot.get("SnapshotId", "")
            if snapshot_id in asked:
                shown[snapshot_id] = snapshot
    return shown


def _absent(
    variant: SnapshotVariant, elsewhere: SnapshotTypeDef | None, request: ResolutionRequest
) -> str:
    owner = variant.aws_account
    if elsewhere is not None and elsewhere.get("OwnerId") != owner:
        return (
            f"EC2 says it is owned by {elsewhere.get('OwnerId')}, not {owner} as the "
            "registry claims"
        )
    return (
        f"not found in {request.region} for owner {owner}: it does not exist there "
        "or is not shared with this account"
    )


def _refuted(
    variant: SnapshotVariant, snapshot: SnapshotTypeDef, request: ResolutionRequest
) -> str:
    """Why EC2's view of a snapshot refutes the registry's claim; "" if it bears it out."""
    owner = snapshot.get("OwnerId")
    if owner != variant.aws_account:  # OwnerIds was applied; belt and braces
        return f"EC2 says it is owned by {owner}, not {variant.aws_account} as the registry claims"
    unnamed = _not_named(snapshot, request)
    if unnamed:
        return unnamed
    problem = _not_completed(snapshot) or _retired(snapshot)
    if problem:
        return problem
    size = int(snapshot.get("VolumeSize", 0))
    if size != variant.size_gb:
        return f"the registry says {variant.size_gb} GiB but the snapshot is {size} GiB"
    return ""


def _not_named(snapshot: SnapshotTypeDef, request: ResolutionRequest) -> str:
    """Unless the snapshot itself names the fingerprint, OS and architecture, why not.

    A registry's word that a snapshot holds a fingerprint's software is not enough:
    it could point at any snapshot a trusted account owns (an older stack, a backup)
    and have it mounted as another stack's software. The Description petal writes is
    visible to every account; its tags only to the owner's (a registry that lists your
    own snapshots)."""
    wanted = (request.fingerprint, request.os, request.architecture)
    described = parse_description(snapshot.get("Description"))
    if described is not None and described.names(*wanted):
        return ""
    tags = _tags(snapshot)
    if (tags.get(TAG_FINGERPRINT), tags.get(TAG_OS), tags.get(TAG_ARCH)) == wanted:
        return ""
    if described is not None:
        says = f"its Description names {described.summary()}"
    elif tags.get(TAG_FINGERPRINT):
        says = (
            f"its tags name {tags.get(TAG_FINGERPRINT)} ({tags.get(TAG_OS)}, {tags.get(TAG_ARCH)})"
        )
    else:
        says = "its Description is not a petal one and it has no petal tags"
    return (
        f"the snapshot does not name this fingerprint ({says}); a registry can only "
        "point at a snapshot built for it"
    )


# --- the choice ----------------------------------------------------------------------


def _choose(
    request: ResolutionRequest,
    source: SnapshotSource,
    candidates: list[_Candidate],
    entry: EntryMetadata | None,
    warnings: list[str],
    skipped: list[Skipped],
) -> Resolution:
    # A deprecated snapshot only when no other is usable.
    usable = [c for c in candidates if c.lifecycle != "deprecated"] or candidates
    fitting = [c for c in usable if c.size_gb >= request.size_gb]
    pool = fitting or usable

    def age_key(c: _Candidate) -> tuple[float, str]:
        return (c.start_time.timestamp() if c.start_time else 0.0, c.snapshot_id)

    chosen = max(pool, key=age_key)
    volume_size = max(request.size_gb, chosen.size_gb)
    size_note = (
        f"{chosen.size_gb} GiB >= the {request.size_gb} GiB asked for"
        if fitting
        else f"{chosen.size_gb} GiB, the largest size available"
    )
    reason = (
        f"newest of {len(pool)} usable snapshot(s) from {source.label} matching "
        f"{request.fingerprint[:19]}..., {request.os}, {request.architecture} in "
        f"{request.region}; {size_note}"
    )
    notes = [*warnings, LAZY_LOADING_WARNING]
    if not fitting:
        notes.append(
            f"the snapshot is {chosen.size_gb} GiB: the volume is created with "
            f"{volume_size} GiB but its filesystem stays {chosen.size_gb} GiB until grown "
            "on the head node (sudo resize2fs on the volume's device)"
        )
    elif chosen.size_gb > request.size_gb:
        notes.append(
            f"the volume will be {chosen.size_gb} GiB, the snapshot's size, not the "
            f"{request.size_gb} GiB asked for (ParallelCluster cannot shrink a snapshot)"
        )
    if chosen.encrypted and chosen.kms_key_id and source.type != "local":
        notes.append(
            f"the snapshot is encrypted with {chosen.kms_key_id}: that key's policy must let "
            "this account use it (kms:Decrypt, kms:CreateGrant, kms:DescribeKey, "
            "kms:GenerateDataKeyWithoutPlaintext, kms:ReEncrypt*)"
        )
    if chosen.lifecycle == "deprecated":
        notes.append(
            f"{chosen.snapshot_id} is marked deprecated (petal:lifecycle tag) and no current "
            "snapshot of this stack is usable: build the seed again, or "
            f"`petal build reinstate {chosen.snapshot_id}`"
        )
    notes += chosen.extra_warnings
    return Resolution(
        snapshot_id=chosen.snapshot_id,
        region=request.region,
        os=request.os,
        architecture=request.architecture,
        snapshot_size_gb=chosen.size_gb,
        volume_size_gb=volume_size,
        owner=chosen.owner,
        source=source.type,
        source_label=source.label,
        reason=reason,
        start_time=chosen.start_time.isoformat() if chosen.start_time else None,
        encrypted=chosen.encrypted,
        kms_key_id=chosen.kms_key_id,
        seed_name=chosen.seed_name,
        builder_image=chosen.builder_image,
        registry_url=source.url if entry is not None else None,
        stack_name=entry.name if entry is not None else None,
        warnings=tuple(notes),
        skipped=tuple(skipped),
    )
