"""A build's manifest (/shared/petal/manifest.json) read back, and two builds compared.

The bootstrap writes the manifest (ssm_documents/bootstrap_helper.py `manifest`) and
uploads a copy to the seed bucket under MANIFEST_PREFIX, named by the build id; its
SHA-256 comes back in a PETAL-MANIFEST marker line and stays on the build record, so a
copy changed after the build (every builder may write under that prefix) is refused.

Nothing here calls AWS: `petal.build.manifest_store` fetches and checks the copy.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Final, Literal

# Where the builder uploads its manifest in the seed bucket: <prefix><build id>.json.
MANIFEST_PREFIX: Final = "manifests/"
# The marker line the bootstrap prints once the copy is uploaded:
#   PETAL-MANIFEST sha256:<64 hex>
MANIFEST_MARKER: Final = "PETAL-MANIFEST"
# Manifests before format 2 carry no lock, image or install sources: nothing to compare.
DIFFABLE_FORMAT: Final = 2

InstallSource = Literal["built", "cache", "parent"]
INSTALL_SOURCES: Final = ("built", "cache", "parent")
# Lock parameters that are compiler flags, not variants: Spack keeps both in `parameters`.
_FLAGS: Final = frozenset({"cflags", "cppflags", "cxxflags", "fflags", "ldflags", "ldlibs"})


class ManifestError(ValueError):
    """A manifest is missing, unreadable or does not match what its build recorded."""


def manifest_key(build_id: str) -> str:
    return f"{MANIFEST_PREFIX}{build_id}.json"


def sha256_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Package:
    """One concrete spec of a build's spack.lock."""

    name: str
    version: str
    hash: str
    compiler: str
    variants: dict[str, Any]
    source: str | None = None  # built / cache / parent, as the bootstrap found it

    def to_json(self) -> dict[str, Any]:
        data = {
            "name": self.name,
            "version": self.version,
            "hash": self.hash,
            "compiler": self.compiler,
            "variants": self.variants,
        }
        if self.source:
            data["source"] = self.source
        return data


@dataclass(frozen=True)
class Manifest:
    data: Mapping[str, Any]

    @property
    def build_id(self) -> str:
        return str(self.data.get("build_id", ""))

    @property
    def fingerprint(self) -> str:
        return str(self.data.get("fingerprint", ""))

    def packages(self) -> list[Package]:
        """The lock's concrete specs, each with how it got onto the volume."""
        lock = self.data.get("lock")
        if not isinstance(lock, Mapping):
            raise ManifestError(
                f"the manifest of build {self.build_id or '?'} holds no spack.lock "
                f"(format {self.data.get('format', '?')}; build diff needs format "
                f"{DIFFABLE_FORMAT} or later: rebuild the stack with this petal)"
            )
        sources = self.data.get("install_sources") or {}
        found = []
        for spec_hash, node in (lock.get("concrete_specs") or {}).items():
            compiler = node.get("compiler") or {}
            parameters = node.get("parameters") or {}
            found.append(
                Package(
                    name=str(node.get("name", "?")),
                    version=str(node.get("version", "?")),
                    hash=str(spec_hash),
                    compiler=f"{compiler.get('name', '?')}@{compiler.get('version', '?')}",
                    variants={k: v for k, v in parameters.items() if k not in _FLAGS},
                    source=sources.get(spec_hash),
                )
            )
        return sorted(found, key=lambda p: (p.name, p.version, p.hash))

    def source_counts(self) -> dict[str, int]:
        counts = dict.fromkeys(INSTALL_SOURCES, 0)
        for source in (self.data.get("install_sources") or {}).values():
            if source in counts:
                counts[source] += 1
        return counts


def parse_manifest(data: bytes, *, expected_sha256: str | None, where: str) -> Manifest:
    """The manifest in `data`, refused when it is not the one the build reported."""
    if expected_sha256 is not None and sha256_of(data) != expected_sha256:
        raise ManifestError(
            f"{where} does not match the SHA-256 its build reported ({expected_sha256}): "
            "it was changed after the build; do not trust it (rebuild the stack to get "
            "a new one)"
        )
    try:
        document = json.loads(data)
    except ValueError as error:
        raise ManifestError(f"{where} is not JSON: {error}") from None
    if not isinstance(document, dict):
        raise ManifestError(f"{where} is not a JSON object")
    return Manifest(document)


@dataclass(frozen=True)
class Change:
    name: str
    before: Package
    after: Package

    def fields(self) -> list[str]:
        changed = [
            what
            for what in ("version", "compiler", "variants")
            if getattr(self.before, what) != getattr(self.after, what)
        ]
        # Same version, compiler and variants, yet another hash: a dependency changed.
        return changed or ["dependencies"]

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "changed": self.fields(),
            "before": self.before.to_json(),
            "after": self.after.to_json(),
        }


@dataclass(frozen=True)
class ManifestDiff:
    a: str
    b: str
    added: list[Package] = field(default_factory=list)
    removed: list[Package] = field(default_factory=list)
    changed: list[Change] = field(default_factory=list)
    unchanged: int = 0

    @property
    def identical(self) -> bool:
        return not (self.added or self.removed or self.changed)

    def to_json(self) -> dict[str, Any]:
        return {
            "a": self.a,
            "b": self.b,
            "added": [p.to_json() for p in self.added],
            "removed": [p.to_json() for p in self.removed],
            "changed": [c.to_json() for c in self.changed],
            "unchanged": self.unchanged,
        }


def diff_manifests(a: Manifest, b: Manifest, *, a_label: str, b_label: str) -> ManifestDiff:
    """Packages of `b` against those of `a`, by name.

    A name present several times (two pythons: one built for a build tool) is paired by
    hash first; what remains of it pairs in order, so a changed version reads as a
    change rather than a removal and an addition.
    """
    before, after = _by_name(a.packages()), _by_name(b.packages())
    diff = ManifestDiff(a_label, b_label)
    for name in sorted(set(before) | set(after)):
        old, new = before.get(name, []), after.get(name, [])
        same = {p.hash for p in old} & {p.hash for p in new}
        old = [p for p in old if p.hash not in same]
        new = [p for p in new if p.hash not in same]
        for left, right in zip(old, new, strict=False):
            diff.changed.append(Change(name, left, right))
        diff.removed.extend(old[len(new) :])
        diff.added.extend(new[len(old) :])
    shared = {p.hash for group in before.values() for p in group}
    unchanged = sum(p.hash in shared for group in after.values() for p in group)
    return replace(diff, unchanged=unchanged)


def _by_name(packages: list[Package]) -> dict[str, list[Package]]:
    grouped: dict[str, list[Package]] = {}
    for package in packages:
        grouped.setdefault(package.name, []).append(package)
    return grouped


def format_variants(variants: Mapping[str, Any]) -> str:
    """Variants as Spack writes them: +on ~off name=value (patches left out)."""
    words = []
    for name, value in sorted(variants.items()):
        if name == "patches":
            continue
        if value is True:
            words.append(f"+{name}")
        elif value is False:
            words.append(f"~{name}")
        elif isinstance(value, list):
            words.append(f"{name}={','.join(str(v) for v in value)}")
        else:
            words.append(f"{name}={value}")
    return " ".join(words)


def format_diff(diff: ManifestDiff) -> list[str]:
    """The diff for people, one package a line."""
    lines = [f"--- {diff.a}", f"+++ {diff.b}"]
    if diff.identical:
        lines.append(f"same {diff.unchanged} packages (same hashes)")
        return lines
    for package in diff.added:
        lines.append(f"+ {_spec(package)}")
    for package in diff.removed:
        lines.append(f"- {_spec(package)}")
    for change in diff.changed:
        lines.append(f"~ {change.name}: {', '.join(change.fields())}")
        lines.append(f"    - {_spec(change.before)}")
        lines.append(f"    + {_spec(change.after)}")
    lines.append(
        f"{len(diff.added)} added, {len(diff.removed)} removed, {len(diff.changed)} changed, "
        f"{diff.unchanged} unchanged"
    )
    return lines


def _spec(package: Package) -> str:
    variants = format_variants(package.variants)
    text = f"{package.name}@{package.version}%{package.compiler}"
    text += f" {variants}" if variants else ""
    return f"{text} /{package.hash[:7]}"
