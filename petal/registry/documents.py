"""What a snapshot registry holds: the index, one metadata document per entry, and
how each is decoded and validated (size-capped, strict, against petal/schemas/)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from petal.errors import PetalError
from petal.platforms import Architecture
from petal.validation import JSON, kind_of, problems

MAX_DOCUMENT_BYTES: Final = 2 * 1024 * 1024
# The index's cap follows from its schema's maxItems (a test keeps the two equal): a
# registry may list MAX_INDEX_ENTRIES stacks of about 1 KiB each (name, fingerprint,
# metadata_url, a line of description, a few dozen packages), so a full index loads.
MAX_INDEX_ENTRIES: Final = 10_000
INDEX_ENTRY_BYTES: Final = 1024
MAX_INDEX_BYTES: Final = MAX_INDEX_ENTRIES * INDEX_ENTRY_BYTES


class RegistryError(PetalError):
    """Registry data that cannot be used, or a registry that cannot be read."""

    def __init__(self, document: str, field: str, message: str) -> None:
        self.document = document
        self.field = field
        self.message = message
        where = f"registry document {document}"
        super().__init__(f"{where}: {field}: {message}" if field else f"{where}: {message}")


class EntryNotFound(RegistryError):
    """The registry lists no entry by that name."""


@dataclass(frozen=True)
class IndexEntry:
    name: str
    fingerprint: str
    metadata_url: str  # absolute, inside the registry
    description: str = ""
    packages: tuple[str, ...] = ()


@dataclass(frozen=True)
class RegistryIndex:
    url: str
    version: str
    registry: str | None
    entries: tuple[IndexEntry, ...]
    _by_fingerprint: dict[str, IndexEntry] = field(default_factory=dict, repr=False)
    _by_name: dict[str, IndexEntry] = field(default_factory=dict, repr=False)

    def by_fingerprint(self, fingerprint: str) -> IndexEntry | None:
        return self._by_fingerprint.get(fingerprint)

    def by_name(self, name: str) -> IndexEntry | None:
        return self._by_name.get(name)

    def names(self, limit: int) -> list[str]:
        return [e.name for e in self.entries[:limit]]

    def whole(self) -> RegistryIndex:
        return self


class IndexLookup(Protocol):
    """A validated index, looked up one entry at a time: in memory, or in the cache's
    per-document store, where a lookup reads one row whatever the index's length."""

    def by_fingerprint(self, fingerprint: str) -> IndexEntry | None: ...

    def by_name(self, name: str) -> IndexEntry | None: ...

    def names(self, limit: int) -> list[str]: ...

    def whole(self) -> RegistryIndex: ...


@dataclass(frozen=True)
class SnapshotVariant:
    region: str
    snapshot_id: str
    os: str  # ParallelCluster name, whichever spelling the registry used
    architecture: Architecture
    size_gb: int
    aws_account: str
    description: str = ""


@dataclass(frozen=True)
class EntryMetadata:
    """One registry entry: the software of one fingerprint and its snapshot variants."""

    url: str
    name: str
    description: str
    fingerprint: str
    aws_account: str
    variants: tuple[SnapshotVariant, ...]
    packages: tuple[str, ...] = ()
    seed_url: str | None = None
    public: bool | None = None
    verified: bool | None = None
    created: str | None = None
    updated: str | None = None

    def regions(self) -> tuple[str, ...]:
        return tuple(sorted({v.region for v in self.variants}))


def too_big(url: str, size: int, limit: int) -> RegistryError:
    return RegistryError(
        url, "", f"is larger than {limit:,} bytes ({size:,}); a registry document is smaller"
    )


def decode(body: bytes, url: str) -> str:
    try:
        return body.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise RegistryError(url, "", f"is not UTF-8 text (byte {error.start})") from None


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def validated(body: bytes, url: str, schema: str) -> dict[str, Any]:
    data = loads(body, url)
    found = problems(data, schema, vocabulary=JSON)
    if found:
        first = found[0]
        more = f" (and {len(found) - 1} more problem(s))" if len(found) > 1 else ""
        raise RegistryError(url, first.path, first.message + more)
    return data


def loads(body: bytes, url: str) -> dict[str, Any]:
    """The document as a JSON object, strictly decoded; not yet checked against a schema."""
    text = decode(body, url)
    try:
        data = json.loads(text, parse_constant=_no_constants)
    except RecursionError:
        raise RegistryError(url, "", "is nested too deeply to be a registry document") from None
    except ValueError as error:
        start = text.lstrip()[:1]
        hint = " (it looks like an HTML page: is the registry URL right?)" if start == "<" else ""
        raise RegistryError(url, "", f"is not valid JSON: {error}{hint}") from None
    if not isinstance(data, dict):
        raise RegistryError(url, "", f"must be a JSON object, not {kind_of(data, JSON)}")
    return data
