"""The registry client over real HTTP: request bounds, the ETag cache, and malformed
registry data of every kind rejected with a message naming the document and field."""

from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from petal.platforms import OPERATING_SYSTEMS
from petal.registry.client import (
    RedirectRefused,
    RegistryClient,
    _SafeRedirects,
    default_cache_dir,
    forget_parsed_documents,
)
from petal.registry.documents import (
    MAX_DOCUMENT_BYTES,
    MAX_INDEX_BYTES,
    EntryNotFound,
    RegistryError,
)
from petal.seed.fingerprint import fingerprint
from petal.seed.loading import parse_seed
from tests.data.registry.registry_server import BAD, RegistryServer, Trickle, good_files

BIO_FP = "sha256:a21acae4900f6c337bbb35dc5b6abf927699f2432c2362f03ff85356b0d90783"
SNAPSHOT_ID = re.compile(r"^snap-([0-9a-f]{8}|[0-9a-f]{17})$")


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def server() -> Iterator[RegistryServer]:
    registry = RegistryServer()
    yield registry
    registry.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(autouse=True)
def new_process() -> Iterator[None]:
    """Each test starts as a new petal process: nothing parsed in memory yet."""
    forget_parsed_documents()
    yield
    forget_parsed_documents()


def client_for(
    server: RegistryServer, cache: Path, clock: Clock | None = None, **kwargs: object
) -> RegistryClient:
    return RegistryClient(
        server.url,
        cache_dir=cache,
        ttl_seconds=600,
        timeout=5,
        clock=clock or Clock(),
        **kwargs,  # type: ignore[arg-type]
    )


# --- request bounds and the cache ------------------------------------------------------


def test_cold_lookup_costs_two_requests_and_warm_lookup_none(
    server: RegistryServer, tmp_path: Path, clock: Clock
) -> None:
    entry = client_for(server, tmp_path, clock).find(BIO_FP)
    assert entry is not None and entry.name == "bioinformatics-v1"
    assert server.requests() == 2
    server.reset_hits()
    # A new client (a new `petal` process) with the same cache, within the TTL.
    again = client_for(server, tmp_path, clock).find(BIO_FP)
    assert again == entry
    assert server.requests() == 0


def test_two_requests_however_many_entries_the_index_lists(
    server: RegistryServer, tmp_path: Path
) -> None:
    index = json.loads(server.files["snapshots/index.json"])
    for n in range(3000):
        index["snapshots"].append({"name": f"entry-{n}", "fingerprint": f"sha256:{n:064x}"})
    server.files["snapshots/index.json"] = json.dumps(index).encode()
    client = client_for(server, tmp_path)
    assert client.find(BIO_FP) is not None
    assert client.find("sha256:" + "f" * 64) is None
    assert server.requests() == 2


def test_unknown_fingerprint_costs_one_request(server: RegistryServer, tmp_path: Path) -> None:
    assert client_for(server, tmp_path).find("sha256:" + "e" * 64) is None
    assert server.requests() == 1


def test_after_the_ttl_documents_are_revalidated_with_304(
    server: RegistryServer, tmp_path: Path, clock: Clock
) -> None:
    client_for(server, tmp_path, clock).find(BIO_FP)
    server.reset_hits()
    clock.now += 601
    entry = client_for(server, tmp_path, clock).find(BIO_FP)
    assert entry is not None
    assert [(h.status, h.conditional) for h in server.hits] == [(304, True), (304, True)]
    server.reset_hits()
    # The 304 renewed the copies: within the new TTL, no request at all.
    client_for(server, tmp_path, clock).find(BIO_FP)
    assert server.requests() == 0


def test_a_changed_document_is_downloaded_again(
    server: RegistryServer, tmp_path: Path, clock: Clock
) -> None:
    client_for(server, tmp_path, clock).find(BIO_FP)
    doc = json.loads(server.files["snapshots/bioinformatics-v1.json"])
    doc["description"] = "updated"
    server.files["snapshots/bioinformatics-v1.json"] = json.dumps(doc).encode()
    clock.now += 601
    server.reset_hits()
    entry = client_for(server, tmp_path, clock).find(BIO_FP)
    assert entry is not None and entry.description == "updated"
    assert [h.status for h in server.hits] == [304, 200]


def test_update_revalidates_every_document_whatever_its_age(
    server: RegistryServer, tmp_path: Path, clock: Clock
) -> None:
    client = client_for(server, tmp_path, clock)
    first = client.update()
    assert (first.documents, first.downloaded, first.not_modified) == (4, 4, 0)
    server.reset_hits()
    second = client_for(server, tmp_path, clock).update()
    assert (second.documents, second.downloaded, second.not_modified) == (4, 0, 4)
    assert all(h.conditional and h.status == 304 for h in server.hits)


def test_without_etags_the_ttl_still_bounds_requests(
    server: RegistryServer, tmp_path: Path, clock: Clock
) -> None:
    server.etags = False
    client_for(server, tmp_path, clock).find(BIO_FP)
    client_for(server, tmp_path, clock).find(BIO_FP)
    assert server.requests() == 2
    clock.now += 601
    client_for(server, tmp_path, clock).find(BIO_FP)
    assert [h.status for h in server.hits[2:]] == [200, 200]


def test_stale_copy_is_used_with_a_warning_when_the_registry_fails(
    server: RegistryServer, tmp_path: Path, clock: Clock
) -> None:
    client_for(server, tmp_path, clock).find(BIO_FP)
    clock.now += 601
    server.status["snapshots/index.json"] = 500
    client = client_for(server, tmp_path, clock)
    assert client.find(BIO_FP) is not None
    assert any("HTTP 500" in w and "cached copy" in w for w in client.warnings)


def test_a_cache_file_that_no_longer_validates_is_fetched_again(
    server: RegistryServer, tmp_path: Path, clock: Clock
) -> None:
    client_for(server, tmp_path, clock).find(BIO_FP)
    for cached in [*tmp_path.rglob("*.body"), *tmp_path.rglob("*.sqlite")]:
        cached.write_bytes(b"{ broken")
    forget_parsed_documents()
    server.reset_hits()
    assert client_for(server, tmp_path, clock).find(BIO_FP) is not None
    assert server.requests() == 2


def test_an_unwritable_cache_only_costs_requests(server: RegistryServer, tmp_path: Path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    client = client_for(server, blocked)
    assert client.find(BIO_FP) is not None
    assert any("not writable" in w for w in client.warnings)


def test_cache_location_follows_xdg(tmp_path: Path) -> None:
    assert default_cache_dir({"XDG_CACHE_HOME": str(tmp_path)}) == tmp_path / "petal"
    assert default_cache_dir({"XDG_CACHE_HOME": "relative"}) == Path.home() / ".cache/petal"
    assert default_cache_dir({}) == Path.home() / ".cache" / "petal"


# --- what the client returns -----------------------------------------------------------


def test_entry_metadata_is_parsed_with_os_names_normalised(
    server: RegistryServer, tmp_path: Path
) -> None:
    client = client_for(server, tmp_path)
    entry = client.entry("bioinformatics-v1")
    assert entry.aws_account == "999888777666"
    assert entry.regions() == ("eu-west-1", "us-east-1", "us-west-2")
    assert {v.os for v in entry.variants} == {"alinux2023", "ubuntu2404"}
    assert all(SNAPSHOT_ID.match(v.snapshot_id) for v in entry.variants)
    # An index entry without metadata_url reads <name>.json next to the index.
    assert client.entry("machine-learning-v1").variants[0].size_gb == 300


def test_unknown_entry_name_is_a_clear_error(server: RegistryServer, tmp_path: Path) -> None:
    with pytest.raises(EntryNotFound, match="no stack named 'genomics'; it lists: bioinf"):
        client_for(server, tmp_path).entry("genomics")


def test_seed_file_is_served_and_matches_the_fingerprint(
    server: RegistryServer, tmp_path: Path
) -> None:
    text = client_for(server, tmp_path).seed_text("bioinformatics-v1")
    assert fingerprint(parse_seed(text)) == BIO_FP


def test_fixture_fingerprints_match_their_seed() -> None:
    files = good_files()
    seed = parse_seed(files["seeds/bioinformatics-v1.yaml"])
    index = json.loads(files["snapshots/index.json"])
    assert index["snapshots"][0]["fingerprint"] == fingerprint(seed) == BIO_FP, (
        "petal.seed.fingerprint changed: regenerate the fixture registry's fingerprints"
    )


def test_entry_schema_accepts_every_os_spelling_and_only_those() -> None:
    schema_path = Path("petal/schemas/registry_entry.schema.json")
    schema = json.loads(schema_path.read_text())
    enum = set(schema["properties"]["snapshots"]["items"]["properties"]["os"]["enum"])
    names = {os.name for os in OPERATING_SYSTEMS.values()}
    names |= {os.registry_name for os in OPERATING_SYSTEMS.values()}
    assert enum == names


# --- malformed registry data -----------------------------------------------------------

INDEX = "snapshots/index.json"
BIO = "snapshots/bioinformatics-v1.json"


@pytest.mark.parametrize(
    ("target", "fixture", "field", "message"),
    [
        (INDEX, "index-not-json.json", "", "is not valid JSON"),
        (INDEX, "index-html.html", "", "looks like an HTML page"),
        (INDEX, "index-wrong-types.json", "snapshots", "must be a list, not an object"),
        (INDEX, "index-top-level-list.json", "", "must be a JSON object, not a list"),
        (INDEX, "index-bad-fingerprint.json", "snapshots[1].fingerprint", "'sha256:abc123...'"),
        (INDEX, "index-outside-url.json", "snapshots[0].metadata_url", "outside the registry"),
        (INDEX, "index-duplicate-fingerprint.json", "snapshots[2].fingerprint", "repeats"),
        (INDEX, "index-version-2.json", "version", "'2.0' is not valid: use format version 1"),
        (BIO, "entry-bad-snapshot-id.json", "snapshots[0].snapshot_id", "'snap-0abc123'"),
        (BIO, "entry-bad-account.json", "aws_account", "12-digit AWS account id"),
        (BIO, "entry-bad-region.json", "snapshots[4].region", "'US-WEST-2' is not valid"),
        (BIO, "entry-size-as-text.json", "snapshots[1].size_gb", "must be a whole number"),
        (BIO, "entry-fingerprint-mismatch.json", "fingerprint", "differs from the index"),
        (BIO, "entry-name-mismatch.json", "name", "differs from the index"),
        (BIO, "entry-map-form.json", "snapshots", "must be a list, not an object"),
        (BIO, "entry-unknown-os.json", "snapshots[0].os", "'windows2022' is not allowed"),
        (BIO, "entry-missing-account.json", "aws_account", "is required"),
        (BIO, "entry-duplicate-snapshot.json", "snapshots[1].snapshot_id", "listed twice"),
    ],
)
def test_malformed_documents_are_rejected_naming_document_and_field(
    server: RegistryServer, tmp_path: Path, target: str, fixture: str, field: str, message: str
) -> None:
    server.files[target] = (BAD / fixture).read_bytes()
    with pytest.raises(RegistryError) as caught:
        client_for(server, tmp_path).find(BIO_FP)
    failure = caught.value
    assert failure.document == f"{server.url}/{target}"
    assert failure.field == (field or failure.field)
    assert message in failure.message
    assert str(failure).startswith(f"registry document {server.url}/{target}: ")


def test_wrongly_typed_values_never_crash(server: RegistryServer, tmp_path: Path) -> None:
    for body in (b"null", b"42", b'"text"', b"[[[[", b"{}", b'{"version": 1, "snapshots": 2}'):
        server.files[INDEX] = body
        with pytest.raises(RegistryError):
            client_for(server, tmp_path / str(len(body))).index()


def test_deeply_nested_json_is_refused(server: RegistryServer, tmp_path: Path) -> None:
    server.files[INDEX] = b"[" * 100_000 + b"]" * 100_000
    with pytest.raises(RegistryError, match=r"nested too deeply|not valid JSON"):
        client_for(server, tmp_path).index()


def test_nan_is_not_a_number_here(server: RegistryServer, tmp_path: Path) -> None:
    doc = server.files[BIO].replace(b'"size_gb": 500', b'"size_gb": NaN', 1)
    server.files[BIO] = doc
    with pytest.raises(RegistryError, match="not valid JSON"):
        client_for(server, tmp_path).find(BIO_FP)


def test_oversized_documents_are_refused(server: RegistryServer, tmp_path: Path) -> None:
    server.files[INDEX] = b" " * (MAX_INDEX_BYTES + 1) + server.files[INDEX]
    with pytest.raises(RegistryError, match="larger than 10,240,000 bytes"):
        client_for(server, tmp_path).index()
    server.files[INDEX] = good_files()[INDEX]
    server.files[BIO] = b" " * (MAX_DOCUMENT_BYTES + 1) + server.files[BIO]
    with pytest.raises(RegistryError, match="larger than 2,097,152 bytes"):
        client_for(server, tmp_path / "entry").find(BIO_FP)
    small = client_for(server, tmp_path / "small", max_bytes=100)
    server.files[INDEX] = good_files()[INDEX]
    with pytest.raises(RegistryError, match="larger than 100 bytes"):
        small.index()


def test_not_utf8_is_refused(server: RegistryServer, tmp_path: Path) -> None:
    server.files[INDEX] = b'{"version": "1.0", "registry": "\xff\xfe", "snapshots": []}'
    with pytest.raises(RegistryError, match="not UTF-8"):
        client_for(server, tmp_path).index()


def test_missing_index_is_a_404_naming_the_setting(tmp_path: Path) -> None:
    empty = RegistryServer(files={})
    try:
        with pytest.raises(RegistryError) as caught:
            client_for(empty, tmp_path).index()
    finally:
        empty.close()
    assert "not found (HTTP 404)" in str(caught.value)
    assert "--registry-url" in str(caught.value)
    assert caught.value.document.endswith("/snapshots/index.json")


def test_missing_entry_document_names_it(server: RegistryServer, tmp_path: Path) -> None:
    del server.files[BIO]
    with pytest.raises(RegistryError, match=r"bioinformatics-v1\.json: not found \(HTTP 404\)"):
        client_for(server, tmp_path).find(BIO_FP)


def test_server_errors_without_a_cache_are_reported(server: RegistryServer, tmp_path: Path) -> None:
    server.status[INDEX] = 503
    with pytest.raises(RegistryError, match="HTTP 503"):
        client_for(server, tmp_path).index()


def test_unreachable_registry(tmp_path: Path) -> None:
    gone = RegistryServer()
    url = gone.url
    gone.close()
    client = RegistryClient(url, cache_dir=tmp_path, timeout=2)
    with pytest.raises(RegistryError, match="cannot be reached"):
        client.index()


@pytest.mark.parametrize(
    "url", ["file:///etc/passwd", "ftp://example.com/registry", "registry.example.com", ""]
)
def test_only_http_and_https_registries(url: str, tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match=r"http\(s\)://"):
        RegistryClient(url, cache_dir=tmp_path)


@pytest.mark.parametrize(
    "reference",
    [
        "../../other-repo/main/snapshots/x.json",
        "%2e%2e/%2E%2E/other/x.json",
        "..%2fother.json",
        "x.json?download=1",
        "http://127.0.0.2/registry/x.json",
        "ftp://example.com/x.json",
    ],
)
def test_links_must_stay_inside_the_registry(
    server: RegistryServer, tmp_path: Path, reference: str
) -> None:
    index = json.loads(server.files[INDEX])
    index["snapshots"][0]["metadata_url"] = reference
    server.files[INDEX] = json.dumps(index).encode()
    with pytest.raises(RegistryError, match="outside the registry"):
        client_for(server, tmp_path).index()


def test_redirect_to_another_scheme_is_refused(server: RegistryServer, tmp_path: Path) -> None:
    server.redirects[INDEX] = "file:///etc/passwd"
    with pytest.raises(RegistryError, match="HTTP 302"):
        client_for(server, tmp_path).index()


def test_redirect_within_http_is_followed(server: RegistryServer, tmp_path: Path) -> None:
    server.files["moved/index.json"] = server.files[INDEX]
    server.redirects[INDEX] = f"{server.url}/moved/index.json"
    assert client_for(server, tmp_path).index().entries[0].name == "bioinformatics-v1"


def test_redirect_to_another_host_is_refused(server: RegistryServer, tmp_path: Path) -> None:
    # localhost reaches the very same server, but it is another host name.
    server.files["moved/index.json"] = server.files[INDEX]
    elsewhere = server.url.replace("127.0.0.1", "localhost") + "/moved/index.json"
    server.redirects[INDEX] = elsewhere
    with pytest.raises(RegistryError) as caught:
        client_for(server, tmp_path).index()
    assert caught.value.document == f"{server.url}/{INDEX}"
    assert f"redirects (HTTP 302) to another host: {elsewhere!r}" in caught.value.message
    assert "only within http://127.0.0.1:" in caught.value.message
    assert [h.path for h in server.hits] == [f"/registry/{INDEX}"], "nothing fetched there"


def test_redirect_to_another_port_is_refused(server: RegistryServer, tmp_path: Path) -> None:
    other = RegistryServer()
    try:
        server.redirects[INDEX] = f"{other.url}/{INDEX}"
        with pytest.raises(RegistryError, match="to another port"):
            client_for(server, tmp_path).index()
        assert other.requests() == 0
    finally:
        other.close()


@pytest.mark.parametrize(
    ("start", "target", "refused"),
    [
        ("https://example.org/r/x.json", "http://example.org/r/x.json", "from https to http"),
        ("https://example.org/r/x.json", "https://example.org:8443/x.json", "to another port"),
        ("https://example.org/r/x.json", "https://evil.example/x.json", "to another host"),
        ("https://example.org/r/x.json", "https://example.org.evil/x.json", "to another host"),
        ("http://example.org/r/x.json", "https://example.org/r/x.json", "from http to https"),
        ("https://example.org/r/x.json", "ftp://example.org/r/x.json", "non-http(s)"),
        ("https://example.org/r/x.json", "https://EXAMPLE.org:443/r/y.json", None),
        ("http://example.org:80/r/x.json", "http://example.org/moved/x.json", None),
    ],
)
def test_redirects_keep_scheme_host_and_port(start: str, target: str, refused: str | None) -> None:
    request = urllib.request.Request(start)
    redirects = _SafeRedirects()
    if refused is None:
        followed = redirects.redirect_request(request, None, 301, "Moved", {}, target)
        assert followed is not None and followed.full_url == target
    else:
        with pytest.raises(RedirectRefused, match=re.escape(refused)):
            redirects.redirect_request(request, None, 301, "Moved", {}, target)


# --- the deadline of a request ---------------------------------------------------------
#
# The server trickles a byte every 50 ms: each read is well within the 5 s socket
# timeout, so only the deadline of the whole request can stop the client. The server
# gives up on its own after a few seconds, so a client without a deadline ends with a
# (valid, padded) document rather than hanging the test run.


@pytest.mark.parametrize("headers", [False, True], ids=["body", "headers"])
def test_a_trickling_server_is_cut_off_at_the_deadline(
    server: RegistryServer, tmp_path: Path, headers: bool
) -> None:
    server.trickle[INDEX] = Trickle(interval=0.05, headers=headers, seconds=4)
    client = client_for(server, tmp_path, deadline=0.5)
    with pytest.raises(RegistryError) as caught:
        client.index()
    assert caught.value.document == f"{server.url}/{INDEX}"
    assert "did not answer within the deadline of 0.5 s" in caught.value.message
    assert "registry.timeout_seconds" in caught.value.message


def test_the_deadline_defaults_to_the_timeout(server: RegistryServer, tmp_path: Path) -> None:
    server.trickle[INDEX] = Trickle(interval=0.05, seconds=4)
    client = RegistryClient(server.url, cache_dir=tmp_path, timeout=0.5)
    assert client.deadline == 0.5
    with pytest.raises(RegistryError, match=r"deadline of 0\.5 s"):
        client.index()


def test_past_the_deadline_a_cached_copy_is_used_with_a_warning(
    server: RegistryServer, tmp_path: Path, clock: Clock
) -> None:
    client_for(server, tmp_path, clock).find(BIO_FP)
    clock.now += 601
    server.trickle[INDEX] = Trickle(interval=0.05, seconds=4)
    client = client_for(server, tmp_path, clock, deadline=0.5)
    assert client.find(BIO_FP) is not None
    assert any("deadline of 0.5 s" in w and "cached copy" in w for w in client.warnings)


def test_a_document_cut_short_is_not_used(server: RegistryServer, tmp_path: Path) -> None:
    # The server stops early, before the Content-Length it announced: what came is
    # valid JSON, but it is not the whole document.
    server.trickle[INDEX] = Trickle(interval=0.001, seconds=0.2)
    with pytest.raises(RegistryError, match="connection closed after"):
        client_for(server, tmp_path, deadline=30).index()
