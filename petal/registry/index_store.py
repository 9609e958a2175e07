"""The validated index, kept beside its cached document as a small SQLite file.

Parsing and validating an index costs time in proportion to its length (about 1.5 s of
CPU at 10,000 entries), and a lookup needs one entry. So once a document has passed
validation, its entries are written here, one row each, in a file named by the
document's digest; a later lookup in any process opens it and reads one row by
fingerprint or name, whatever the index's length. The file is written to a temporary
name and renamed into place, and never changed after: readers open it read-only and
immutable (no locking), and a file that does not read back as the expected digest is
treated as absent (the caller validates the document again and rewrites it).
"""

from __future__ import annotations

import json
import os
import sqlite3
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Final
from urllib.parse import quote

from petal.registry.documents import IndexEntry, RegistryIndex

# Bump when the layout changes: files of another format are rebuilt, not misread.
FORMAT: Final = "1"

_COLUMNS: Final = "name, fingerprint, metadata_url, description, packages"


class StoreUnusable(Exception):
    """The file is missing, of another document or format, or unreadable."""


def _row_entry(row: Sequence[str]) -> IndexEntry:
    return IndexEntry(
        name=row[0],
        fingerprint=row[1],
        metadata_url=row[2],
        description=row[3],
        packages=tuple(json.loads(row[4])),
    )


class IndexStore:
    """Look-ups in one index's store file; satisfies documents.IndexLookup."""

    def __init__(self, path: Path, url: str, digest: str) -> None:
        self.path = path
        self.url = url
        self.digest = digest
        self._header: tuple[str, str | None] | None = None
        self._whole: RegistryIndex | None = None

    @classmethod
    def open(cls, path: Path, url: str, digest: str) -> IndexStore:
        """The store of the document `url` whose body has `digest`, checked."""
        store = cls(path, url, digest)
        store._header = store._read_header()
        return store

    def _connect(self) -> sqlite3.Connection:
        # immutable=1: the file is never written after its rename, so no locks.
        uri = f"file:{quote(str(self.path))}?mode=ro&immutable=1"
        try:
            return sqlite3.connect(uri, uri=True)
        except sqlite3.Error as error:
            raise StoreUnusable(str(error)) from error

    def _query(self, sql: str, parameters: Sequence[str | int] = ()) -> list[tuple[str, ...]]:
        try:
            connection = self._connect()
            try:
                return list(connection.execute(sql, parameters).fetchall())
            finally:
                connection.close()
        except sqlite3.Error as error:
            raise StoreUnusable(str(error)) from error

    def _read_header(self) -> tuple[str, str | None]:
        info = {row[0]: row[1] for row in self._query("SELECT key, value FROM info")}
        if info.get("format") != FORMAT or info.get("digest") != self.digest:
            raise StoreUnusable(f"{self.path} is not the store of {self.digest}")
        if info.get("url") != self.url or "version" not in info:
            raise StoreUnusable(f"{self.path} is not the store of {self.url}")
        return info["version"], info.get("registry")

    def _one(self, column: str, value: str) -> IndexEntry | None:
        rows = self._query(f"SELECT {_COLUMNS} FROM entries WHERE {column} = ?", (value,))  # noqa: S608 - column is ours
        return _row_entry(rows[0]) if rows else None

    def by_fingerprint(self, fingerprint: str) -> IndexEntry | None:
        return self._one("fingerprint", fingerprint)

    def by_name(self, name: str) -> IndexEntry | None:
        return self._one("name", name)

    def names(self, limit: int) -> list[str]:
        rows = self._query("SELECT name FROM entries ORDER BY position LIMIT ?", (limit,))
        return [row[0] for row in rows]

    def whole(self) -> RegistryIndex:
        """Every entry, in the document's order: what `list` and `search` need."""
        if self._whole is not None:
            return self._whole
        if self._header is None:
            self._header = self._read_header()
        version, registry = self._header
        rows = self._query(f"SELECT {_COLUMNS} FROM entries ORDER BY position")  # noqa: S608
        entries = tuple(_row_entry(row) for row in rows)
        self._whole = RegistryIndex(
            self.url,
            version,
            registry,
            entries,
            {e.fingerprint: e for e in entries},
            {e.name: e for e in entries},
        )
        return self._whole


def write_store(path: Path, index: RegistryIndex, digest: str) -> None:
    """Write the store of a validated index atomically (concurrent petal processes
    share the cache); OSError and sqlite3.Error are the caller's to report."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".sqlite")
    os.close(fd)
    try:
        connection = sqlite3.connect(tmp)
        try:
            # The file is renamed into place only once complete: no journal needed.
            connection.execute("PRAGMA journal_mode = OFF")
            connection.execute("PRAGMA synchronous = OFF")
            connection.execute("CREATE TABLE info (key TEXT PRIMARY KEY, value TEXT)")
            connection.execute(
                "CREATE TABLE entries (position INTEGER PRIMARY KEY, name TEXT NOT NULL "
                "UNIQUE, fingerprint TEXT NOT NULL UNIQUE, metadata_url TEXT NOT NULL, "
                "description TEXT NOT NULL, packages TEXT NOT NULL)"
            )
            info = {"format": FORMAT, "digest": digest, "url": index.url}
            info["version"] = index.version
            if index.registry is not None:
                info["registry"] = index.registry
            connection.executemany("INSERT INTO info VALUES (?, ?)", info.items())
            connection.executemany(
                "INSERT INTO entries VALUES (?, ?, ?, ?, ?, ?)",
                (
                    (
                        position,
                        e.name,
                        e.fingerprint,
                        e.metadata_url,
                        e.description,
                        json.dumps(e.packages),
                    )
                    for position, e in enumerate(index.entries)
                ),
            )
            connection.commit()
        finally:
            connection.close()
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
