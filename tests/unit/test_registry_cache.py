"""The registry client validates a document once per content: warm and revalidated
lookups read the cached index store and never parse or validate the index again."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from petal.registry import client as client_module
from petal.registry.client import forget_parsed_documents
from petal.registry.documents import (
    INDEX_ENTRY_BYTES,
    MAX_INDEX_BYTES,
    MAX_INDEX_ENTRIES,
    RegistryError,
)
from petal.validation import load_schema
from tests.data.registry.registry_server import RegistryServer
from tests.unit.test_registry_client import Clock, client_for, new_process, server

# The registry and a new petal process per test (test_registry_client's fixtures).
__all__ = ["new_process", "server"]

BIO_FP = "sha256:a21acae4900f6c337bbb35dc5b6abf927699f2432c2362f03ff85356b0d90783"
INDEX = "snapshots/index.json"


class Calls:
    """The documents the client parsed (`loads`) and validated (`validated`)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.parsed: list[str] = []
        self.validated: list[str] = []
        loads, validated = client_module.loads, client_module.validated

        def counting_loads(body: bytes, url: str) -> dict[str, Any]:
            self.parsed.append(url)
            return loads(body, url)

        def counting_validated(body: bytes, url: str, schema: str) -> dict[str, Any]:
            self.validated.append(url)
            return validated(body, url, schema)

        monkeypatch.setattr(client_module, "loads", counting_loads)
        monkeypatch.setattr(client_module, "validated", counting_validated)

    def reset(self) -> None:
        self.parsed.clear()
        self.validated.clear()


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Calls:
    return Calls(monkeypatch)


def test_a_warm_lookup_neither_parses_nor_validates_the_index(
    server: RegistryServer, tmp_path: Path, calls: Calls
) -> None:
    clock = Clock()
    cold = client_for(server, tmp_path, clock).find(BIO_FP)
    assert calls.validated == [
        server.url + "/" + INDEX,
        server.url + "/snapshots/bioinformatics-v1.json",
    ]
    calls.reset()
    # A new process: nothing in memory, only the cache on disk.
    forget_parsed_documents()
    warm = client_for(server, tmp_path, clock).find(BIO_FP)
    assert warm == cold
    assert calls.validated == []
    # Only the small entry document is read (its digest checked), never the index.
    assert calls.parsed == [server.url + "/snapshots/bioinformatics-v1.json"]
    calls.reset()
    # The same process again: nothing is read at all.
    assert client_for(server, tmp_path, clock).find(BIO_FP) == cold
    assert (calls.parsed, calls.validated, server.requests()) == ([], [], 2)


def test_a_revalidated_lookup_validates_nothing_again(
    server: RegistryServer, tmp_path: Path, calls: Calls
) -> None:
    clock = Clock()
    client_for(server, tmp_path, clock).find(BIO_FP)
    forget_parsed_documents()
    calls.reset()
    server.reset_hits()
    clock.now += 601
    assert client_for(server, tmp_path, clock).find(BIO_FP) is not None
    assert [h.status for h in server.hits] == [304, 304]
    assert calls.validated == []


def test_a_changed_index_is_validated_and_its_store_replaced(
    server: RegistryServer, tmp_path: Path, calls: Calls
) -> None:
    clock = Clock()
    client_for(server, tmp_path, clock).find(BIO_FP)
    [first_store] = tmp_path.rglob("*.sqlite")
    index = json.loads(server.files[INDEX])
    index["snapshots"][0]["description"] = "changed"
    server.files[INDEX] = json.dumps(index).encode()
    clock.now += 601
    forget_parsed_documents()
    calls.reset()
    entries = client_for(server, tmp_path, clock).index().entries
    assert entries[0].description == "changed"
    assert calls.validated == [server.url + "/" + INDEX]
    [store] = tmp_path.rglob("*.sqlite")
    assert store != first_store


def test_a_broken_store_is_rebuilt_from_the_cached_document(
    server: RegistryServer, tmp_path: Path, calls: Calls
) -> None:
    clock = Clock()
    client_for(server, tmp_path, clock).find(BIO_FP)
    [store] = tmp_path.rglob("*.sqlite")
    store.write_bytes(b"not a database")
    forget_parsed_documents()
    calls.reset()
    server.reset_hits()
    assert client_for(server, tmp_path, clock).entry("chemistry-v1").name == "chemistry-v1"
    assert server.requests() == 1  # chemistry-v1.json: the index came from the cache
    assert calls.validated[0] == server.url + "/" + INDEX
    forget_parsed_documents()
    calls.reset()
    assert client_for(server, tmp_path, clock).find(BIO_FP) is not None
    assert calls.validated == []


def test_an_edited_cached_index_is_not_trusted(server: RegistryServer, tmp_path: Path) -> None:
    clock = Clock()
    client_for(server, tmp_path, clock).find(BIO_FP)
    for store in tmp_path.rglob("*.sqlite"):
        store.unlink()
    [index_body] = [p for p in tmp_path.rglob("*.body") if b'"version"' in p.read_bytes()]
    index_body.write_bytes(index_body.read_bytes().replace(b"Genomics", b"Tampered"))
    forget_parsed_documents()
    server.reset_hits()
    entries = client_for(server, tmp_path, clock).index().entries
    assert entries[0].description.startswith("Genomics")
    assert [h.status for h in server.hits] == [200]


def test_the_index_cap_follows_the_schemas_limit() -> None:
    schema = load_schema("registry_index.schema.json")
    assert schema["properties"]["snapshots"]["maxItems"] == MAX_INDEX_ENTRIES
    assert MAX_INDEX_BYTES == MAX_INDEX_ENTRIES * INDEX_ENTRY_BYTES


def _big_index(server: RegistryServer, entries: int) -> None:
    index = json.loads(server.files[INDEX])
    for n in range(entries - len(index["snapshots"])):
        index["snapshots"].append(
            {
                "name": f"stack-{n:05d}-v1",
                "fingerprint": f"sha256:{n:064x}",
                "metadata_url": f"stack-{n:05d}-v1.json",
                "description": f"Software stack number {n} for the tests of the index cap",
                "packages": ["gcc@13.2.0", "openmpi@5.0.3", f"hdf5@1.14.{n % 10}+mpi"],
            }
        )
    server.files[INDEX] = json.dumps(index, indent=2).encode()


def test_an_index_of_the_schemas_most_entries_loads(server: RegistryServer, tmp_path: Path) -> None:
    _big_index(server, MAX_INDEX_ENTRIES)
    assert len(server.files[INDEX]) > 2 * 1024 * 1024  # the former cap
    clock = Clock()
    index = client_for(server, tmp_path, clock).index()
    assert len(index.entries) == MAX_INDEX_ENTRIES
    forget_parsed_documents()
    warm = client_for(server, tmp_path, clock)
    assert warm.find(BIO_FP) is not None
    assert warm.index().entries[-1].name == index.entries[-1].name


def test_one_entry_more_than_the_schema_allows_is_refused(
    server: RegistryServer, tmp_path: Path
) -> None:
    _big_index(server, MAX_INDEX_ENTRIES + 1)
    with pytest.raises(RegistryError, match="snapshots"):
        client_for(server, tmp_path, Clock()).index()
