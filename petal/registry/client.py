"""Client for a snapshot registry: snapshots/index.json, one metadata document per
entry, and the seed files, served over http(s) (by default from GitHub).

The registry is data from the internet, so every document is size-capped, decoded
strictly, validated against the JSON Schemas in petal/schemas/ and cross-checked
(index against entry, names, fingerprints); anything wrong is a `RegistryError`
naming the document, the field and the fix, and nothing unvalidated (a snapshot id
above all) ever leaves this module. A valid registry entry is still only a claim:
petal.cluster.resolution confirms each snapshot with EC2 before using it.

Documents are cached on disk under $XDG_CACHE_HOME/petal (else ~/.cache/petal) with
their ETag: within the TTL a lookup makes no request, after it one conditional request
(304 Not Modified costs no body). Looking up a fingerprint reads the index (keyed by
fingerprint) and that one entry's document: at most 2 requests, however long the index."""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeVar
from urllib.parse import urljoin, urlsplit

from petal.platforms import operating_system
from petal.registry.documents import (
    MAX_DOCUMENT_BYTES,
    EntryMetadata,
    EntryNotFound,
    IndexEntry,
    RegistryError,
    RegistryIndex,
    SnapshotVariant,
    decode,
    too_big,
    validated,
)
from petal.validation import short
from petal.yaml_source import MAX_BYTES as MAX_SEED_BYTES

INDEX_PATH: Final = "snapshots/index.json"


USER_AGENT: Final = "petal-registry-client/1"


_SCHEMES: Final = ("http", "https")


_T = TypeVar("_T")


_ENCODED_ESCAPE: Final = re.compile(r"%(2e|2f|5c)", re.IGNORECASE)


@dataclass(frozen=True)
class UpdateResult:
    registry: str
    documents: int
    downloaded: int
    not_modified: int


def default_cache_dir(environ: dict[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    base = env.get("XDG_CACHE_HOME")
    root = Path(base) if base and Path(base).is_absolute() else Path.home() / ".cache"
    return root / "petal"


class _SafeRedirects(urllib.request.HTTPRedirectHandler):
    """Follow redirects only to http(s): urllib would also follow one to ftp://."""

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: Any,
        code: int,
        msg: str,
        headers: Any,
        newurl: str,
    ) -> urllib.request.Request | None:
        if urlsplit(newurl).scheme not in _SCHEMES:
            raise urllib.error.HTTPError(
                newurl, code, f"redirect to a non-http(s) URL {newurl}", headers, fp
            )
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _opener() -> urllib.request.OpenerDirector:
    return urllib.request.build_opener(_SafeRedirects())


class RegistryClient:
    def __init__(
        self,
        base_url: str,
        *,
        cache_dir: Path | None = None,
        use_cache: bool = True,
        ttl_seconds: int = 3600,
        timeout: float = 10.0,
        max_bytes: int = MAX_DOCUMENT_BYTES,
        clock: Callable[[], float] = time.time,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in _SCHEMES or not parts.netloc:
            raise RegistryError(
                base_url, "", "the registry URL must be http(s)://host/path (--registry-url)"
            )
        self.base_url = base_url.rstrip("/")
        self.index_url = f"{self.base_url}/{INDEX_PATH}"
        self.ttl_seconds = ttl_seconds
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.clock = clock
        self.warnings: list[str] = []
        self._opener = _opener()
        self._cache: Path | None = None
        if use_cache:
            key = hashlib.sha256(self.base_url.encode()).hexdigest()[:16]
            self._cache = (cache_dir or default_cache_dir()) / "registry" / key
        self._index: RegistryIndex | None = None
        self._stats = {"downloaded": 0, "not_modified": 0}

    # --- public API ------------------------------------------------------------------

    def index(self, *, refresh: bool = False) -> RegistryIndex:
        if self._index is None or refresh:
            self._index = self._load(self.index_url, refresh, self._parse_index)
        return self._index

    def entry(self, name: str, *, refresh: bool = False) -> EntryMetadata:
        listed = self.index(refresh=refresh).by_name(name)
        if listed is None:
            names = ", ".join(e.name for e in self.index().entries[:20]) or "none"
            raise EntryNotFound(
                self.index_url, "", f"lists no stack named {name!r}; it lists: {names}"
            )
        return self._metadata(listed, refresh)

    def find(self, fingerprint: str) -> EntryMetadata | None:
        """The entry built from this fingerprint, or None if the registry has none."""
        listed = self.index().by_fingerprint(fingerprint)
        return None if listed is None else self._metadata(listed, refresh=False)

    def seed_text(self, name: str) -> str:
        """The seed file an entry was built from."""
        entry = self.entry(name)
        if entry.seed_url is None:
            raise RegistryError(entry.url, "seed_url", "is not given for this stack")

        def parse(body: bytes, url: str) -> str:
            return decode(body, url)

        return self._load(entry.seed_url, False, parse, limit=MAX_SEED_BYTES)

    def update(self) -> UpdateResult:
        """Revalidate the index and every entry's document, whatever their age."""
        before = dict(self._stats)
        index = self.index(refresh=True)
        for listed in index.entries:
            self._metadata(listed, refresh=True)
        return UpdateResult(
            registry=self.base_url,
            documents=1 + len(index.entries),
            downloaded=self._stats["downloaded"] - before["downloaded"],
            not_modified=self._stats["not_modified"] - before["not_modified"],
        )

    # --- documents -------------------------------------------------------------------

    def _metadata(self, listed: IndexEntry, refresh: bool) -> EntryMetadata:
        def parse(body: bytes, url: str) -> EntryMetadata:
            return self._parse_entry(body, url, listed)

        return self._load(listed.metadata_url, refresh, parse)

    def _parse_index(self, body: bytes, url: str) -> RegistryIndex:
        data = validated(body, url, "registry_index.schema.json")
        entries: list[IndexEntry] = []
        by_fp: dict[str, IndexEntry] = {}
        by_name: dict[str, IndexEntry] = {}
        for i, raw in enumerate(data["snapshots"]):
            where = f"snapshots[{i}]"
            metadata = self._inside(url, raw.get("metadata_url") or f"{raw['name']}.json")
            if metadata is None:
                raise RegistryError(
                    url,
                    f"{where}.metadata_url",
                    f"{short(raw.get('metadata_url'))} is outside the registry "
                    f"{self.base_url}: use a path relative to the index",
                )
            entry = IndexEntry(
                name=raw["name"],
                fingerprint=raw["fingerprint"],
                metadata_url=metadata,
                description=raw.get("description", ""),
                packages=tuple(raw.get("packages", ())),
            )
            if entry.name in by_name:
                raise RegistryError(url, f"{where}.name", f"{entry.name!r} is listed twice")
            if entry.fingerprint in by_fp:
                other = by_fp[entry.fingerprint].name
                raise RegistryError(
                    url,
                    f"{where}.fingerprint",
                    f"repeats the fingerprint of {other!r}: one stack per fingerprint",
                )
            by_name[entry.name] = by_fp[entry.fingerprint] = entry
            entries.append(entry)
        return RegistryIndex(
            url, data["version"], data.get("registry"), tuple(entries), by_fp, by_name
        )

    def _parse_entry(self, body: bytes, url: str, listed: IndexEntry) -> EntryMetadata:
        data = validated(body, url, "registry_entry.schema.json")
        if data["name"] != listed.name:
            raise RegistryError(
                url, "name", f"{data['name']!r} differs from the index's {listed.name!r}"
            )
        if data["fingerprint"] != listed.fingerprint:
            raise RegistryError(
                url,
                "fingerprint",
                f"differs from the index's {listed.fingerprint} for {listed.name}",
            )
        variants: list[SnapshotVariant] = []
        seen: set[str] = set()
        for i, raw in enumerate(data["snapshots"]):
            if raw["snapshot_id"] in seen:
                raise RegistryError(
                    url, f"snapshots[{i}].snapshot_id", f"{raw['snapshot_id']} is listed twice"
                )
            seen.add(raw["snapshot_id"])
            variants.append(
                SnapshotVariant(
                    region=raw["region"],
                    snapshot_id=raw["snapshot_id"],
                    os=operating_system(raw["os"]).name,
                    architecture=raw["architecture"],
                    size_gb=raw["size_gb"],
                    aws_account=raw.get("aws_account", data["aws_account"]),
                    description=raw.get("description", ""),
                )
            )
        seed_url = data.get("seed_url")
        if seed_url is not None:
            resolved = self._inside(url, seed_url)
            if resolved is None:
                raise RegistryError(
                    url, "seed_url", f"{short(seed_url)} is outside the registry {self.base_url}"
                )
            seed_url = resolved
        return EntryMetadata(
            url=url,
            name=data["name"],
            description=data.get("description", ""),
            fingerprint=data["fingerprint"],
            aws_account=data["aws_account"],
            variants=tuple(variants),
            packages=tuple(data.get("packages", ())),
            seed_url=seed_url,
            public=data.get("public"),
            verified=data.get("verified"),
            created=data.get("created"),
            updated=data.get("updated"),
        )

    def _inside(self, document_url: str, reference: str) -> str | None:
        """`reference` resolved against the document, if it stays inside the registry.

        A registry names its own documents; following a link elsewhere would let one
        entry pull data (or, in the Lambda, requests) from anywhere.
        """
        resolved = urljoin(document_url, reference)
        parts = urlsplit(resolved)
        if parts.scheme not in _SCHEMES or parts.query or parts.fragment:
            return None
        if not resolved.startswith(self.base_url + "/") or "/../" in parts.path:
            return None
        # A server may decode %2e%2e or %2f after this check and step outside the base.
        if _ENCODED_ESCAPE.search(parts.path) or "\\" in parts.path:
            return None
        return resolved

    # --- HTTP and the cache ----------------------------------------------------------

    def _load(
        self,
        url: str,
        refresh: bool,
        parse: Callable[[bytes, str], _T],
        limit: int | None = None,
    ) -> _T:
        cached = self._read_cache(url)
        fresh = (
            cached is not None and self.clock() - cached[1].get("fetched_at", 0) < self.ttl_seconds
        )
        if cached is not None and fresh and not refresh:
            try:
                return parse(cached[0], url)
            except RegistryError:
                cached = None  # a cache file that no longer validates: fetch again
        body = self._fetch(url, cached, limit or self.max_bytes)
        return parse(body, url)

    def _fetch(self, url: str, cached: tuple[bytes, dict[str, Any]] | None, limit: int) -> bytes:
        headers = {"User-Agent": USER_AGENT, "Accept": "application/json, text/plain, */*"}
        if cached is not None and cached[1].get("etag"):
            headers["If-None-Match"] = str(cached[1]["etag"])
        request = urllib.request.Request(url, headers=headers)  # noqa: S310 - scheme checked
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                length = response.headers.get("Content-Length")
                if length and length.isdigit() and int(length) > limit:
                    raise too_big(url, int(length), limit)
                body: bytes = response.read(limit + 1)
                if len(body) > limit:
                    raise too_big(url, len(body), limit)
                etag = response.headers.get("ETag")
        except urllib.error.HTTPError as error:
            if error.code == 304 and cached is not None:
                self._stats["not_modified"] += 1
                self._write_cache(url, cached[0], cached[1].get("etag"))
                return cached[0]
            if error.code == 404:
                raise RegistryError(
                    url,
                    "",
                    "not found (HTTP 404): check the registry URL (--registry-url, "
                    "PETAL_REGISTRY_URL or registry.url in ~/.petal/config.yaml)",
                ) from None
            return self._stale(url, cached, f"HTTP {error.code} {error.reason}")
        except (urllib.error.URLError, TimeoutError, OSError) as error:
            reason = getattr(error, "reason", None) or error
            return self._stale(url, cached, f"cannot be reached ({reason})")
        self._stats["downloaded"] += 1
        self._write_cache(url, body, etag)
        return body

    def _stale(self, url: str, cached: tuple[bytes, dict[str, Any]] | None, problem: str) -> bytes:
        if cached is None:
            raise RegistryError(url, "", f"{problem}; try again, or check the registry URL")
        age = int(self.clock() - cached[1].get("fetched_at", 0))
        self.warnings.append(f"registry {url} {problem}; using the cached copy ({age} s old)")
        return cached[0]

    def _paths(self, url: str) -> tuple[Path, Path] | None:
        if self._cache is None:
            return None
        key = hashlib.sha256(url.encode()).hexdigest()
        return self._cache / f"{key}.body", self._cache / f"{key}.json"

    def _read_cache(self, url: str) -> tuple[bytes, dict[str, Any]] | None:
        paths = self._paths(url)
        if paths is None:
            return None
        try:
            meta = json.loads(paths[1].read_text())
            body = paths[0].read_bytes()
        except (OSError, ValueError):
            return None
        if not isinstance(meta, dict) or meta.get("url") != url:
            return None
        if not isinstance(meta.get("fetched_at"), int | float):
            return None
        return body, meta

    def _write_cache(self, url: str, body: bytes, etag: str | None) -> None:
        paths = self._paths(url)
        if paths is None:
            return
        meta = {"url": url, "etag": etag, "fetched_at": self.clock()}
        try:
            paths[0].parent.mkdir(parents=True, exist_ok=True)
            _atomic_write(paths[0], body)
            _atomic_write(paths[1], json.dumps(meta).encode())
        except OSError as error:
            # A read-only home (a Lambda, a locked-down host) only costs requests.
            self.warnings.append(f"registry cache {paths[0].parent} not writable: {error}")
            self._cache = None


def _atomic_write(path: Path, data: bytes) -> None:
    # Concurrent petal processes share the cache: never leave a half-written file.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
