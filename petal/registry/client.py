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
fingerprint) and that one entry's document: at most 2 requests, however long the index.

A document is validated once per content, not once per lookup: the cache records the
digest of the body that passed, the index's entries go into a store keyed by that
digest (petal/registry/index_store.py) and parsed documents are kept in this process
(`_MEMORY`), so a warm lookup reads one row of the index and one small document and
costs the same at 10 or 10,000 entries."""

from __future__ import annotations

import functools
import hashlib
import http.client
import io
import json
import os
import re
import socket
import sqlite3
import tempfile
import time
import urllib.error
import urllib.request
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, TypeVar, cast
from urllib.parse import urljoin, urlsplit

from petal.platforms import operating_system
from petal.registry.documents import (
    MAX_DOCUMENT_BYTES,
    MAX_INDEX_BYTES,
    EntryMetadata,
    EntryNotFound,
    IndexEntry,
    IndexLookup,
    RegistryError,
    RegistryIndex,
    SnapshotVariant,
    decode,
    loads,
    too_big,
    validated,
)
from petal.registry.index_store import IndexStore, StoreUnusable, write_store
from petal.seed.model import MAX_SEED_BYTES
from petal.validation import short

INDEX_PATH: Final = "snapshots/index.json"


USER_AGENT: Final = "petal-registry-client/1"


_SCHEMES: Final = ("http", "https")


_T = TypeVar("_T")


_ENCODED_ESCAPE: Final = re.compile(r"%(2e|2f|5c)", re.IGNORECASE)


# Parsed documents of this process by (registry, document URL, body digest): a warm
# Lambda container or a long command looks each document up without reading it again.
# Only documents that passed validation go in; the digest ties each to its content.
_MEMORY: OrderedDict[tuple[str, str, str], Any] = OrderedDict()
_MEMORY_ITEMS: Final = 256


def forget_parsed_documents() -> None:
    """Empty this process's memory of parsed documents (a new process, for tests)."""
    _MEMORY.clear()


def _remembered(key: tuple[str, str, str]) -> Any | None:
    found = _MEMORY.get(key)
    if found is not None:
        _MEMORY.move_to_end(key)
    return found


def _remember(key: tuple[str, str, str], value: Any) -> None:
    _MEMORY[key] = value
    _MEMORY.move_to_end(key)
    while len(_MEMORY) > _MEMORY_ITEMS:
        _MEMORY.popitem(last=False)


@dataclass
class _Copy:
    """One document's body as fetched or cached, read from disk only when needed."""

    url: str
    source: str  # "network" (200), "cache" (fresh), "revalidated" (304), "stale"
    etag: str | None
    fetched_at: float
    body_path: Path | None = None
    digest_known: str | None = None  # the sha256 of the body, as the cache recorded it
    validated_digest: str | None = None  # the sha256 of the body that last passed
    _body: bytes | None = field(default=None, repr=False)

    def body(self) -> bytes:
        if self._body is None:
            try:
                body = self.body_path.read_bytes() if self.body_path else b""
            except OSError as error:
                raise RegistryError(self.url, "", f"cached copy unreadable: {error}") from None
            # Whatever was validated was this digest's body: an edited or torn file
            # must not inherit that.
            known = self.digest_known
            if known is not None and hashlib.sha256(body).hexdigest() != known:
                raise RegistryError(self.url, "", "cached copy changed on disk")
            self._body = body
        return self._body

    @property
    def digest(self) -> str:
        if self.digest_known is None:
            self.digest_known = hashlib.sha256(self.body()).hexdigest()
        return self.digest_known

    @property
    def validated(self) -> bool:
        """This exact body passed validation before (in any petal process)."""
        return self.validated_digest is not None and self.validated_digest == self.digest


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


class _Deadline:
    """The wall-clock limit of one request: connecting, redirects, headers and body.

    A socket timeout bounds each read, not the request: a server that sends a byte
    just within it holds the client for as long as it likes. So every read of the
    response (status line, headers and body alike) first checks the monotonic clock
    and waits at most for what is left of the deadline."""

    def __init__(self, seconds: float, per_read: float) -> None:
        self.seconds = seconds
        self.per_read = per_read
        self._ends = time.monotonic() + seconds

    def passed(self) -> bool:
        return time.monotonic() >= self._ends

    def read_timeout(self) -> float:
        """How long the next socket operation may wait; DeadlinePassed if no time is left."""
        left = self._ends - time.monotonic()
        if left <= 0:
            raise DeadlinePassed(f"no answer within {self.seconds:g} s")
        return min(self.per_read, left)


class DeadlinePassed(TimeoutError):
    """A request ran past its deadline (an OSError, so urllib passes it on as one)."""


class _DeadlineReader(io.RawIOBase):
    """A response's socket, read with the timeout of each read cut to the deadline."""

    def __init__(self, sock: socket.socket, deadline: _Deadline) -> None:
        super().__init__()
        self._sock = sock
        # The socket's own file object holds a reference that keeps the descriptor
        # open after urllib closes the connection's socket (it does, before the body).
        self._raw = sock.makefile("rb", buffering=0)
        self._deadline = deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int | None:
        self._sock.settimeout(self._deadline.read_timeout())
        return self._raw.readinto(buffer)

    def close(self) -> None:
        if not self.closed:
            self._raw.close()
        super().close()


class _DeadlineSocket:
    """All that HTTPResponse takes from its socket: a file to read the response from."""

    def __init__(self, sock: socket.socket, deadline: _Deadline) -> None:
        self._sock = sock
        self._deadline = deadline

    def makefile(self, mode: str = "rb", *args: Any, **kwargs: Any) -> io.BufferedReader:
        return io.BufferedReader(_DeadlineReader(self._sock, self._deadline))


class _DeadlineResponse(http.client.HTTPResponse):
    def __init__(self, sock: socket.socket, *args: Any, deadline: _Deadline, **kwargs: Any) -> None:
        super().__init__(cast(socket.socket, _DeadlineSocket(sock, deadline)), *args, **kwargs)


class _DeadlineHTTPConnection(http.client.HTTPConnection):
    def __init__(self, *args: Any, deadline: _Deadline, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline = deadline
        self.response_class = cast(
            type[http.client.HTTPResponse],
            functools.partial(_DeadlineResponse, deadline=deadline),
        )

    def connect(self) -> None:
        # Connecting (and a TLS handshake) waits at most for what the deadline leaves.
        self.timeout = self._deadline.read_timeout()
        super().connect()


class _DeadlineHTTPSConnection(_DeadlineHTTPConnection, http.client.HTTPSConnection):
    pass


class _DeadlineHTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, deadline: _Deadline) -> None:
        super().__init__()
        self._deadline = deadline

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        connection = functools.partial(_DeadlineHTTPConnection, deadline=self._deadline)
        return self.do_open(connection, req)


class _DeadlineHTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, deadline: _Deadline) -> None:
        super().__init__()
        self._deadline = deadline

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        connection = functools.partial(_DeadlineHTTPSConnection, deadline=self._deadline)
        context = getattr(self, "_context", None)  # the default verifying context
        return self.do_open(connection, req, context=context)


class RedirectRefused(Exception):
    """A redirect petal does not follow; the message says where it led."""


_DEFAULT_PORTS: Final = {"http": 80, "https": 443}


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    try:
        port = parts.port or _DEFAULT_PORTS.get(parts.scheme)
    except ValueError:  # a port that is not a number: no origin matches it
        port = -1
    return parts.scheme, (parts.hostname or "").lower(), port


class _SafeRedirects(urllib.request.HTTPRedirectHandler):
    """Follow a redirect only to the same scheme, host and port.

    A registry's documents are trusted because of where they come from: a redirect to
    another host would let whoever controls a path of the registry (or a hijacked
    GitHub name) hand out documents from anywhere, a downgrade from https to http
    would hand them to the network, and urllib would even follow one to ftp://."""

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: Any,
        code: int,
        msg: str,
        headers: Any,
        newurl: str,
    ) -> urllib.request.Request | None:
        here, there = _origin(req.full_url), _origin(newurl)
        if there != here:
            if there[0] not in _SCHEMES:
                what = "to a non-http(s) URL"
            elif there[1] != here[1]:
                what = "to another host"
            elif there[0] != here[0]:
                what = f"from {here[0]} to {there[0]}"  # a downgrade, or give the https URL
            else:
                what = "to another port"
            scheme, host, port = here
            raise RedirectRefused(
                f"redirects (HTTP {code}) {what}: {short(newurl)}; petal follows a "
                f"registry's redirects only within {scheme}://{host}:{port}. If you trust "
                "the new location, use it as the registry URL"
            )
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _opener(deadline: _Deadline) -> urllib.request.OpenerDirector:
    # These handlers replace urllib's own http(s) handlers (build_opener skips a
    # default when given a subclass of it); proxies from the environment still apply.
    return urllib.request.build_opener(
        _SafeRedirects(), _DeadlineHTTPHandler(deadline), _DeadlineHTTPSHandler(deadline)
    )


class RegistryClient:
    def __init__(
        self,
        base_url: str,
        *,
        cache_dir: Path | None = None,
        use_cache: bool = True,
        ttl_seconds: int = 3600,
        timeout: float = 10.0,
        deadline: float | None = None,
        max_bytes: int | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`timeout` bounds each socket operation and `deadline` (None: `timeout`)
        each request as a whole, redirects included. `max_bytes` caps every document;
        None: the index MAX_INDEX_BYTES, the others MAX_DOCUMENT_BYTES (seeds their
        own cap)."""
        parts = urlsplit(base_url)
        if parts.scheme not in _SCHEMES or not parts.netloc:
            raise RegistryError(
                base_url, "", "the registry URL must be http(s)://host/path (--registry-url)"
            )
        self.base_url = base_url.rstrip("/")
        self.index_url = f"{self.base_url}/{INDEX_PATH}"
        self.ttl_seconds = ttl_seconds
        self.timeout = timeout
        self.deadline = timeout if deadline is None else deadline
        self.max_bytes = max_bytes
        self.clock = clock
        self.warnings: list[str] = []
        self._cache: Path | None = None
        if use_cache:
            key = hashlib.sha256(self.base_url.encode()).hexdigest()[:16]
            self._cache = (cache_dir or default_cache_dir()) / "registry" / key
        self._index: IndexLookup | None = None
        self._stats = {"downloaded": 0, "not_modified": 0}

    # --- public API ------------------------------------------------------------------

    def index(self, *, refresh: bool = False) -> RegistryIndex:
        """Every entry; `find` and `entry` read only the one they need."""
        return self._listed(lambda index: index.whole(), refresh=refresh)

    def entry(self, name: str, *, refresh: bool = False) -> EntryMetadata:
        listed = self._listed(lambda index: index.by_name(name), refresh=refresh)
        if listed is None:
            names = ", ".join(self._listed(lambda index: index.names(20))) or "none"
            raise EntryNotFound(
                self.index_url, "", f"lists no stack named {name!r}; it lists: {names}"
            )
        return self._metadata(listed, refresh)

    def find(self, fingerprint: str) -> EntryMetadata | None:
        """The entry built from this fingerprint, or None if the registry has none."""
        listed = self._listed(lambda index: index.by_fingerprint(fingerprint))
        return None if listed is None else self._metadata(listed, refresh=False)

    def seed_text(self, name: str) -> str:
        """The seed file an entry was built from."""
        entry = self.entry(name)
        if entry.seed_url is None:
            raise RegistryError(entry.url, "seed_url", "is not given for this stack")

        def parse(copy: _Copy) -> str:
            return decode(copy.body(), copy.url)

        return self._load(entry.seed_url, False, parse, self._cap(MAX_SEED_BYTES))

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

    def _cap(self, default: int) -> int:
        return default if self.max_bytes is None else self.max_bytes

    def _listed(self, read: Callable[[IndexLookup], _T], *, refresh: bool = False) -> _T:
        """`read` applied to the index, loaded once per client (and per content)."""
        if self._index is None or refresh:
            self._index = self._load(
                self.index_url, refresh, self._index_from, self._cap(MAX_INDEX_BYTES)
            )
        try:
            return read(self._index)
        except StoreUnusable:
            # The store went away under us (another process replaced the index):
            # validate the cached document again rather than fail the lookup.
            _MEMORY.clear()

            def parse(copy: _Copy) -> IndexLookup:
                return self._index_from(copy, use_store=False)

            self._index = self._load(self.index_url, False, parse, self._cap(MAX_INDEX_BYTES))
            return read(self._index)

    def _index_from(self, copy: _Copy, *, use_store: bool = True) -> IndexLookup:
        key = (self.base_url, copy.url, copy.digest)
        remembered = _remembered(key) if use_store else None
        if remembered is not None:
            return remembered  # type: ignore[no-any-return]
        store = self._store_path(copy.url, copy.digest)
        if use_store and store is not None and copy.validated:
            try:
                lookup = IndexStore.open(store, copy.url, copy.digest)
            except StoreUnusable:
                pass  # validated again below, and the store rewritten
            else:
                _remember(key, lookup)
                return lookup
        index = self._parse_index(copy.body(), copy.url)
        self._mark_validated(copy)
        if store is not None:
            self._write_store(store, index, copy.digest)
        _remember(key, index)
        return index

    def _metadata(self, listed: IndexEntry, refresh: bool) -> EntryMetadata:
        def parse(copy: _Copy) -> EntryMetadata:
            key = (self.base_url, copy.url, copy.digest)
            entry: EntryMetadata | None = _remembered(key)
            if entry is None:
                if copy.validated:
                    data = loads(copy.body(), copy.url)
                else:
                    data = validated(copy.body(), copy.url, "registry_entry.schema.json")
                entry = self._entry_from(data, copy.url)
                self._mark_validated(copy)
                _remember(key, entry)
            # Per lookup, not per document: another index may list the same document.
            _check_listed(entry, listed)
            return entry

        return self._load(listed.metadata_url, refresh, parse, self._cap(MAX_DOCUMENT_BYTES))

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

    def _entry_from(self, data: dict[str, Any], url: str) -> EntryMetadata:
        """An entry document that passed its schema (now or on an earlier run)."""
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

    def _load(self, url: str, refresh: bool, parse: Callable[[_Copy], _T], limit: int) -> _T:
        copy = self._obtain(url, refresh, limit)
        try:
            return parse(copy)
        except RegistryError:
            if copy.source not in ("cache", "revalidated"):
                raise
        # A cached copy that no longer reads back or validates: download it again.
        return parse(self._fetch(url, None, limit))

    def _obtain(self, url: str, refresh: bool, limit: int) -> _Copy:
        cached = self._read_cache(url)
        if (
            cached is not None
            and not refresh
            and self.clock() - cached.fetched_at < self.ttl_seconds
        ):
            return cached
        return self._fetch(url, cached, limit)

    def _fetch(self, url: str, cached: _Copy | None, limit: int) -> _Copy:
        headers = {"User-Agent": USER_AGENT, "Accept": "application/json, text/plain, */*"}
        if cached is not None and cached.etag:
            headers["If-None-Match"] = cached.etag
        request = urllib.request.Request(url, headers=headers)  # noqa: S310 - scheme checked
        deadline = _Deadline(self.deadline, self.timeout)
        try:
            with _opener(deadline).open(request, timeout=self.timeout) as response:
                length = response.headers.get("Content-Length")
                if length and length.isdigit() and int(length) > limit:
                    raise too_big(url, int(length), limit)
                # Every read under the response checks the deadline (_DeadlineReader).
                body: bytes = response.read(limit + 1)
                if len(body) > limit:
                    raise too_big(url, len(body), limit)
                if length and length.isdigit() and len(body) < int(length):
                    # The server hung up early: a truncated document is not the document.
                    raise http.client.IncompleteRead(body, int(length) - len(body))
                etag = response.headers.get("ETag")
        except RedirectRefused as refused:
            raise RegistryError(url, "", str(refused)) from None
        except urllib.error.HTTPError as error:
            error.close()
            if error.code == 304 and cached is not None:
                self._stats["not_modified"] += 1
                # The body is unchanged: renew the copy's age, and keep its digest and
                # its validation, so a revalidated lookup costs what a warm one does.
                cached.source = "revalidated"
                cached.fetched_at = self.clock()
                self._write_meta(cached)
                return cached
            if error.code == 404:
                raise RegistryError(
                    url,
                    "",
                    "not found (HTTP 404): check the registry URL (--registry-url, "
                    "PETAL_REGISTRY_URL or registry.url in ~/.petal/config.yaml)",
                ) from None
            return self._stale(url, cached, f"HTTP {error.code} {error.reason}")
        except (urllib.error.URLError, http.client.HTTPException, OSError) as error:
            if deadline.passed() or isinstance(_reason(error), DeadlinePassed):
                problem = (
                    f"did not answer within the deadline of {self.deadline:g} s for a "
                    "request (registry.timeout_seconds)"
                )
            elif isinstance(error, http.client.IncompleteRead):
                got, expected = len(error.partial), len(error.partial) + (error.expected or 0)
                problem = (
                    f"cannot be read (the connection closed after {got:,} of {expected:,} bytes)"
                )
            else:
                problem = f"cannot be reached ({_reason(error)})"
            return self._stale(url, cached, problem)
        self._stats["downloaded"] += 1
        digest = hashlib.sha256(body).hexdigest()
        copy = _Copy(
            url=url,
            source="network",
            etag=etag,
            fetched_at=self.clock(),
            digest_known=digest,
            # A server without ETags sends the same body again: still validated.
            validated_digest=cached.validated_digest if cached is not None else None,
            _body=body,
        )
        self._write_cache(copy)
        return copy

    def _stale(self, url: str, cached: _Copy | None, problem: str) -> _Copy:
        if cached is None:
            raise RegistryError(url, "", f"{problem}; try again, or check the registry URL")
        age = int(self.clock() - cached.fetched_at)
        self.warnings.append(f"registry {url} {problem}; using the cached copy ({age} s old)")
        cached.source = "stale"
        return cached

    def _paths(self, url: str) -> tuple[Path, Path] | None:
        if self._cache is None:
            return None
        key = hashlib.sha256(url.encode()).hexdigest()
        return self._cache / f"{key}.body", self._cache / f"{key}.json"

    def _store_path(self, url: str, digest: str) -> Path | None:
        paths = self._paths(url)
        return None if paths is None else paths[0].with_suffix(f".{digest[:32]}.sqlite")

    def _read_cache(self, url: str) -> _Copy | None:
        paths = self._paths(url)
        if paths is None:
            return None
        try:
            meta = json.loads(paths[1].read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(meta, dict) or meta.get("url") != url:
            return None
        fetched_at, etag = meta.get("fetched_at"), meta.get("etag")
        digest, valid = meta.get("sha256"), meta.get("valid")
        if not isinstance(fetched_at, int | float) or not paths[0].is_file():
            return None
        return _Copy(
            url=url,
            source="cache",
            body_path=paths[0],
            etag=etag if isinstance(etag, str) else None,
            fetched_at=float(fetched_at),
            digest_known=digest if isinstance(digest, str) else None,
            validated_digest=valid if isinstance(valid, str) else None,
        )

    def _write_cache(self, copy: _Copy) -> None:
        paths = self._paths(copy.url)
        if paths is None:
            return
        try:
            paths[0].parent.mkdir(parents=True, exist_ok=True)
            _atomic_write(paths[0], copy.body())
        except OSError as error:
            self._unwritable(paths[0].parent, error)
            return
        self._write_meta(copy)

    def _write_meta(self, copy: _Copy) -> None:
        paths = self._paths(copy.url)
        if paths is None:
            return
        meta = {
            "url": copy.url,
            "etag": copy.etag,
            "fetched_at": copy.fetched_at,
            "sha256": copy.digest_known,
            "valid": copy.validated_digest,
        }
        try:
            _atomic_write(paths[1], json.dumps(meta).encode())
        except OSError as error:
            self._unwritable(paths[1].parent, error)

    def _mark_validated(self, copy: _Copy) -> None:
        if copy.validated_digest != copy.digest:
            copy.validated_digest = copy.digest
            self._write_meta(copy)

    def _write_store(self, path: Path, index: RegistryIndex, digest: str) -> None:
        try:
            write_store(path, index, digest)
            # Only the newest content's store is kept; a reader holding an older one
            # open keeps reading it, one opening it later validates again.
            for old in path.parent.glob(path.name.split(".", 1)[0] + ".*.sqlite"):
                if old != path:
                    old.unlink(missing_ok=True)
        except (OSError, sqlite3.Error) as error:
            self._unwritable(path.parent, error)

    def _unwritable(self, where: Path, error: Exception) -> None:
        # A read-only home (a Lambda, a locked-down host) only costs requests.
        self.warnings.append(f"registry cache {where} not writable: {error}")
        self._cache = None


def _reason(error: Exception) -> object:
    """What went wrong under a URLError (which wraps the socket's error), or the error."""
    return getattr(error, "reason", None) or error


def _check_listed(entry: EntryMetadata, listed: IndexEntry) -> None:
    if entry.name != listed.name:
        raise RegistryError(
            entry.url, "name", f"{entry.name!r} differs from the index's {listed.name!r}"
        )
    if entry.fingerprint != listed.fingerprint:
        raise RegistryError(
            entry.url,
            "fingerprint",
            f"differs from the index's {listed.fingerprint} for {listed.name}",
        )


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
