"""Publishing a snapshot to a registry: the documents `petal build publish` writes."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Final, Literal

from petal.build.manifest import Manifest
from petal.deployment_contract import (
    TAG_FINGERPRINT,
)
from petal.platforms import operating_system
from petal.registry.documents import MAX_DOCUMENT_BYTES
from petal.sharing.errors import InvalidArgument, Refused, SharingError
from petal.sharing.kms import KeyLookup, aws_managed_refusal
from petal.sharing.public import BlockPublicAccessState
from petal.sharing.snapshots import SharingInfo, SnapshotRecord
from petal.snapshot_description import SnapshotDescription
from petal.validation import JSON, problems

INDEX_FILE: Final = "index.json"


INDEX_VERSION: Final = "1.0"


_NO_PACKAGES_WARNING: Final = "no package list: pass --seed FILE to record the seed's packages"


def schema_problems(document: Any, kind: Literal["index", "entry"]) -> list[str]:
    """What is wrong with a registry document, one line per problem (empty: valid)."""
    found = problems(document, f"registry_{kind}.schema.json", vocabulary=JSON)
    return [str(problem) for problem in found]


@dataclass(frozen=True)
class Publication:
    metadata: dict[str, Any]  # snapshots/<name>.json
    index_entry: dict[str, Any]  # one element of snapshots/index.json "snapshots"
    warnings: tuple[str, ...] = ()


def _variant_description(snapshot: SnapshotRecord, described: SnapshotDescription) -> str:
    os_ = operating_system(described.os)
    arch, size = described.architecture, snapshot.size_gb
    return f"{described.seed} stack - {os_.registry_name}, {arch}, {size} GiB"


# --- what may be published -------------------------------------------------------------


def check_publishable(
    snapshots: Sequence[SnapshotRecord],
    sharing: Mapping[str, SharingInfo],
    *,
    public: bool,
    keys: Callable[[str], KeyLookup] | None = None,
    block_public_access: Mapping[str, BlockPublicAccessState] | None = None,
) -> tuple[str, list[str]]:
    """The one fingerprint the snapshots share, and warnings; refuses snapshots that are
    not petal's, not finished, of different software, or whose encryption and sharing do
    not match what the registry entry will say (`public`). `keys(region)` looks up KMS
    keys for private entries: snapshots under the AWS managed key cannot be shared."""
    problems: list[str] = []
    warnings: list[str] = []
    fingerprints: dict[str, list[str]] = {}
    for snapshot in snapshots:
        fingerprint = _built_fingerprint(snapshot, problems)
        if fingerprint is None:
            continue
        if snapshot.state != "completed":
            problems.append(f"{snapshot.ref} is {snapshot.state}: publish it once it is completed")
        fingerprints.setdefault(fingerprint, []).append(str(snapshot.ref))
        info = sharing[snapshot.snapshot_id]
        if public:
            problems += _public_problems(snapshot, info, block_public_access)
        else:
            problems += _private_problems(snapshot, info, keys)
            if not info.account_ids:
                warnings.append(f"{snapshot.ref} is not shared with any account yet")
    if len(fingerprints) > 1:
        problems.append(_mixed_fingerprints(fingerprints))
    if problems:
        raise Refused("cannot publish:\n  " + "\n  ".join(problems))
    owners = {s.owner_id for s in snapshots}
    if len(owners) > 1:
        raise Refused(f"cannot publish: the snapshots belong to different accounts ({owners})")
    return next(iter(fingerprints)), warnings


def _built_fingerprint(snapshot: SnapshotRecord, problems: list[str]) -> str | None:
    """The fingerprint petal built the snapshot from; None, with the problem added, when
    its Description and tag do not both say it."""
    name = str(snapshot.ref)
    described = snapshot.petal
    tag = snapshot.tags.get(TAG_FINGERPRINT)
    if described is None:
        problems.append(
            f"{name} has no petal Description ('petal sha256:... os=... arch=... "
            "seed=...'): only snapshots built by petal can be published"
        )
    elif tag is None:
        problems.append(
            f"{name} has no {TAG_FINGERPRINT} tag: only snapshots built by petal can be "
            "published (a copy made outside petal loses its tags)"
        )
    elif tag != described.fingerprint:
        problems.append(
            f"{name}: its {TAG_FINGERPRINT} tag ({tag}) and its Description "
            f"({described.fingerprint}) disagree; it was changed after the build"
        )
    else:
        return described.fingerprint
    return None


def _public_problems(
    snapshot: SnapshotRecord,
    info: SharingInfo,
    block_public_access: Mapping[str, BlockPublicAccessState] | None,
) -> list[str]:
    """Why registry users could not use the snapshot in a public entry."""
    name = str(snapshot.ref)
    if snapshot.encrypted:
        return [
            f"{name} is encrypted, so it can never be public. Publish unencrypted "
            "snapshots, or pass --private for an organization registry whose readers "
            "the snapshot is shared with"
        ]
    if not info.public:
        return [
            f"{name} is not public, so registry users could not use it. Make it "
            f"public first (petal build share {name} --public --yes-make-public) or "
            "pass --private to publish it as shared with accounts only"
        ]
    if (block_public_access or {}).get(snapshot.region) == "block-all-sharing":
        return [
            f"{name} is marked public but block-all-sharing in {snapshot.region} "
            "hides it from every other account"
        ]
    return []


def _private_problems(
    snapshot: SnapshotRecord, info: SharingInfo, keys: Callable[[str], KeyLookup] | None
) -> list[str]:
    """Why the snapshot cannot be in a private entry: public, or unshareable."""
    found: list[str] = []
    if info.public:
        found.append(
            f"{snapshot.ref} is public but --private says it is not: leave out --private, "
            f"or make it private first (petal build unshare {snapshot.ref} --public)"
        )
    if snapshot.encrypted and keys is not None and snapshot.kms_key_id is not None:
        key = keys(snapshot.region).describe_key(snapshot.kms_key_id)
        if key.aws_managed:
            found.append(str(aws_managed_refusal(snapshot, key, "sharing")))
    return found


def _mixed_fingerprints(fingerprints: Mapping[str, list[str]]) -> str:
    listing = "; ".join(f"{fp}: {', '.join(names)}" for fp, names in fingerprints.items())
    return (
        "the snapshots are of different stacks (fingerprints differ); publish each "
        f"stack under its own --name: {listing}"
    )


# --- the documents ---------------------------------------------------------------------


@dataclass(frozen=True)
class _EntryDraft:
    """What the published entry will say, before it is written as its two documents."""

    name: str
    fingerprint: str
    public: bool
    aws_account: str
    variants: list[dict[str, Any]]
    description: str
    packages: tuple[str, ...]
    seed_url: str | None
    created: str
    updated: str

    def metadata(self) -> dict[str, Any]:
        metadata: dict[str, Any] = {
            "name": self.name,
            "description": self.description,
            "fingerprint": self.fingerprint,
        }
        if self.seed_url:
            metadata["seed_url"] = self.seed_url
        metadata.update(
            {
                "snapshots": self.variants,
                "packages": list(self.packages),
                "aws_account": self.aws_account,
                "public": self.public,
                "verified": False,  # only the registry's maintainers set it, after review
                "created": self.created,
                "updated": self.updated,
            }
        )
        return metadata

    def index_entry(self) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "name": self.name,
            "fingerprint": self.fingerprint,
            # relative to index.json, as the registry resolves it
            "metadata_url": f"{self.name}.json",
        }
        # what `petal registry snapshots list` shows and `search` searches, without the
        # entry's document
        if self.description:
            entry["description"] = self.description
        if self.packages:
            entry["packages"] = list(self.packages)
        return entry


def build_publication(
    snapshots: Sequence[SnapshotRecord],
    *,
    name: str,
    fingerprint: str,
    public: bool,
    description: str = "",
    packages: Sequence[str] = (),
    seed_url: str | None = None,
    today: date | None = None,
    existing: Mapping[str, Any] | None = None,
    manifests: Mapping[str, Manifest] | None = None,
) -> Publication:
    """The registry documents for checked snapshots (see `check_publishable`). With
    `existing` (the current <name>.json) the entry is updated: other variants are kept,
    `created` is kept, `updated` is today."""
    day = (today or datetime.now(UTC).date()).isoformat()
    draft = _EntryDraft(
        name=name,
        fingerprint=fingerprint,
        public=public,
        aws_account=snapshots[0].owner_id,
        variants=[
            _variant(snapshot, (manifests or {}).get(snapshot.snapshot_id))
            for snapshot in snapshots
        ],
        description=description,
        packages=tuple(packages),
        seed_url=seed_url,
        created=day,
        updated=day,
    )
    if existing is not None:
        draft = _updated(draft, existing)
    metadata, index_entry = draft.metadata(), draft.index_entry()
    problems = schema_problems(metadata, "entry") + schema_problems(
        _index_with([index_entry]), "index"
    )
    if problems:
        raise SharingError(
            "the generated registry documents are invalid (a petal bug, please report it): "
            + "; ".join(problems)
        )
    size = len(json.dumps(metadata, indent=2).encode())
    if size > MAX_DOCUMENT_BYTES:
        # Each variant's manifest carries its spack.lock: many variants of a large stack
        # outgrow what registry clients read.
        raise Refused(
            f"the entry would be {size} bytes, more than the {MAX_DOCUMENT_BYTES} registry "
            "clients read: publish fewer snapshots under this --name, or split them into "
            "entries by region"
        )
    warnings = () if draft.packages else (_NO_PACKAGES_WARNING,)
    return Publication(metadata, index_entry, warnings)


def _variant(snapshot: SnapshotRecord, manifest: Manifest | None) -> dict[str, Any]:
    described = snapshot.petal
    assert described is not None  # check_publishable refused the others
    variant = {
        "region": snapshot.region,
        "snapshot_id": snapshot.snapshot_id,
        "os": operating_system(described.os).registry_name,
        "size_gb": snapshot.size_gb,
        "description": _variant_description(snapshot, described),
        "architecture": described.architecture,
    }
    if manifest is not None:
        variant["manifest"] = registry_manifest(manifest)
    return variant


def registry_manifest(manifest: Manifest) -> dict[str, Any]:
    """What a registry entry tells of the build behind a snapshot: from its manifest,
    enough to rebuild it exactly (the lock and Spack's commit) and to see how it was
    made (image, compilers, parent, where each package came from)."""
    data = manifest.data
    os_release = data.get("os") or {}
    found = {
        "build_id": manifest.build_id,
        "spack_version": data.get("spack_version"),
        "spack_commit": data.get("spack_commit"),
        "builder_image": data.get("builder_image"),
        "os": " ".join(filter(None, (os_release.get("id"), os_release.get("version_id")))),
        "compilers": data.get("compilers"),
        "core_compilers": data.get("core_compilers"),
        "parent_snapshot": data.get("parent_snapshot"),
        "install_sources": data.get("install_sources"),
        "spack_lock": data.get("lock"),
    }
    return {k: v for k, v in found.items() if v not in (None, "", [], {})}


def _updated(draft: _EntryDraft, existing: Mapping[str, Any]) -> _EntryDraft:
    """The draft merged into the entry already published under its name: the new
    snapshots replace their own variants only, and what the draft leaves out is kept."""
    if existing.get("fingerprint") != draft.fingerprint:
        raise Refused(
            f"the registry already has {draft.name} with fingerprint "
            f"{existing.get('fingerprint')}, another stack: publish this one under a new "
            "--name (e.g. with a -v2 suffix)"
        )
    if bool(existing.get("public", True)) != draft.public:
        raise Refused(
            f"the registry's {draft.name} says public={existing.get('public')}, these "
            f"snapshots are public={draft.public}: one entry cannot mix public and private "
            "snapshots"
        )
    new_keys = {(v["region"], v["snapshot_id"]) for v in draft.variants}
    kept = [
        v
        for v in existing.get("snapshots", [])
        if (v.get("region"), v.get("snapshot_id")) not in new_keys
    ]
    return replace(
        draft,
        variants=kept + draft.variants,
        description=draft.description or str(existing.get("description", "")),
        packages=draft.packages or tuple(existing.get("packages", [])),
        seed_url=draft.seed_url or existing.get("seed_url"),
        created=str(existing.get("created", draft.created)),
    )


def _index_with(entries: list[dict[str, Any]]) -> dict[str, Any]:
    return {"version": INDEX_VERSION, "snapshots": entries}


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as failure:
        raise InvalidArgument(f"--out: {path} cannot be read as JSON: {failure}") from None


def read_existing_metadata(out_dir: Path, name: str) -> dict[str, Any] | None:
    path = out_dir / f"{name}.json"
    if not path.exists():
        return None
    document = _read_json(path)
    problems = schema_problems(document, "entry")
    if problems:
        raise InvalidArgument(
            f"--out: {path} exists but is not valid registry metadata ({'; '.join(problems)}); "
            "fix or remove it"
        )
    result: dict[str, Any] = document
    return result


def updated_index(out_dir: Path, entry: Mapping[str, Any]) -> dict[str, Any]:
    """index.json with `entry` added, or replacing the entry of the same name."""
    path = out_dir / INDEX_FILE
    index: dict[str, Any] = _index_with([]) if not path.exists() else _read_json(path)
    problems = schema_problems(index, "index")
    if problems:
        raise InvalidArgument(
            f"--out: {path} is not a valid registry index ({'; '.join(problems)}); fix it first"
        )
    entries: list[dict[str, Any]] = []
    replaced = False
    for current in index["snapshots"]:
        if current.get("name") == entry["name"]:
            if current.get("fingerprint") != entry["fingerprint"]:
                raise Refused(
                    f"{path} lists {entry['name']} with fingerprint {current.get('fingerprint')}, "
                    "another stack: publish this one under a new --name"
                )
            entries.append({**current, **entry})
            replaced = True
            continue
        if current.get("fingerprint") == entry["fingerprint"]:
            # petal.registry refuses an index with two entries of one fingerprint
            raise Refused(
                f"{path} already lists this stack as {current.get('name')} (same "
                f"fingerprint): publish under --name {current.get('name')} to add snapshots "
                "to it, or remove that entry first"
            )
        entries.append(current)
    if not replaced:
        entries.append(dict(entry))
    index["snapshots"] = entries
    return index


def _write_json(path: Path, document: Any) -> None:
    """Write through a temporary file so an interrupted publish never leaves half a
    registry file behind."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    temporary.replace(path)


def write_publication(out_dir: Path, publication: Publication) -> list[Path]:
    """Write <name>.json and the updated index.json into `out_dir` (a checkout's
    snapshots/ directory); returns the files written. Nothing is written when the index
    refuses the entry."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as failure:
        raise InvalidArgument(f"--out: cannot create {out_dir}: {failure.strerror}") from None
    index = updated_index(out_dir, publication.index_entry)
    metadata_path = out_dir / f"{publication.metadata['name']}.json"
    index_path = out_dir / INDEX_FILE
    try:
        _write_json(metadata_path, publication.metadata)
        _write_json(index_path, index)
    except OSError as failure:
        raise SharingError(f"--out: cannot write into {out_dir}: {failure.strerror}") from None
    return [metadata_path, index_path]
