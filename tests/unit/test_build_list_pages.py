"""`BuildTable.list_page`: a listing reads the page it shows (Limit), continues with a
cursor, and a filtered page reads a bounded number of Queries."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from moto import mock_aws

from petal.build import table as table_module
from petal.build.records import BuildRecord, iso
from petal.build.table import BuildTable, InvalidCursor, table_definition

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
FP = "sha256:" + "a" * 64


class Recorded:
    """The DynamoDB client, with the Query requests it was given."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.queries: list[dict[str, Any]] = []

    def query(self, **request: Any) -> Any:
        self.queries.append(request)
        return self._client.query(**request)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch) -> Iterator[Recorded]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        dynamodb.create_table(**table_definition("builds"))
        yield Recorded(dynamodb)


def fill(table: BuildTable, count: int, status: Any = lambda n: "SUCCEEDED") -> None:
    for n in range(count):
        table.create_build(
            BuildRecord(
                build_id=f"b{n:03d}",
                status=status(n),
                started_at=iso(NOW + timedelta(minutes=n)),
                seed_name="bio" if n % 2 == 0 else "chem",
                fingerprint=FP,
                os="alinux2023",
                architecture="x86_64",
                execution_arn=f"arn:exec:{n}",
            )
        )


def ids(records: list[BuildRecord]) -> list[str]:
    return [r.build_id for r in records]


def test_a_page_is_one_query_with_a_limit(client: Recorded) -> None:
    table = BuildTable(client, "builds")
    fill(table, 60)
    client.queries.clear()
    page = table.list_page(limit=20)
    assert ids(page.records) == [f"b{n:03d}" for n in range(59, 39, -1)]
    assert [q["Limit"] for q in client.queries] == [21]
    assert page.next is not None


def test_cursors_walk_the_whole_history_once(client: Recorded) -> None:
    table = BuildTable(client, "builds")
    fill(table, 30)
    seen: list[str] = []
    after: str | None = None
    pages = 0
    while True:
        page = table.list_page(limit=7, after=after)
        seen += ids(page.records)
        pages += 1
        after = page.next
        if after is None:
            break
    assert seen == [f"b{n:03d}" for n in range(29, -1, -1)]
    assert pages == 5  # 7+7+7+7+2: the last page says there is no more
    assert all(q["Limit"] == 8 for q in client.queries)


def test_a_page_that_ends_the_history_has_no_cursor(client: Recorded) -> None:
    table = BuildTable(client, "builds")
    fill(table, 20)
    assert table.list_page(limit=20).next is None
    assert table.list_page(limit=25).next is None


def test_a_filtered_page_reads_a_bounded_number_of_queries(
    client: Recorded, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(table_module, "FILTERED_READ", 5)
    monkeypatch.setattr(table_module, "MAX_PAGE_READS", 2)
    table = BuildTable(client, "builds")
    # Only the oldest two builds failed: a page of FAILED builds reads up to 10 items.
    fill(table, 30, status=lambda n: "FAILED" if n < 2 else "SUCCEEDED")
    client.queries.clear()
    page = table.list_page(limit=5, status="FAILED")
    assert page.records == []
    assert page.next is not None
    assert len(client.queries) == 2
    assert all(q["Limit"] == 6 and "FilterExpression" in q for q in client.queries)
    found: list[str] = []
    after: str | None = page.next
    while after is not None:
        page = table.list_page(limit=5, status="FAILED", after=after)
        found += ids(page.records)
        after = page.next
    assert found == ["b001", "b000"]
    # list_builds (the janitor's) reads on until it has what it asked for.
    assert ids(table.list_builds(limit=5, status="FAILED")) == ["b001", "b000"]


def test_filters_fill_the_page_across_reads(
    client: Recorded, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(table_module, "FILTERED_READ", 4)
    table = BuildTable(client, "builds")
    fill(table, 30)
    page = table.list_page(limit=6, seed="chem")
    assert ids(page.records) == ["b029", "b027", "b025", "b023", "b021", "b019"]
    rest = table.list_page(limit=100, seed="chem", after=page.next)
    assert ids(rest.records)[0] == "b017" and rest.next is None


@pytest.mark.parametrize("cursor", ["", "not base64!", "e30", "eyJhIjoxfQ"])
def test_a_cursor_petal_did_not_print_is_refused(client: Recorded, cursor: str) -> None:
    table = BuildTable(client, "builds")
    fill(table, 3)
    with pytest.raises(InvalidCursor, match="is not a cursor of this listing"):
        table.list_page(limit=2, after=cursor)


def test_a_cursor_of_another_listing_is_refused(client: Recorded) -> None:
    table = BuildTable(client, "builds")
    fill(table, 5)
    cursor = table._query_index("by-fingerprint", "gsi1pk", f"FP#{FP}", 2, max_reads=1).next
    assert cursor is not None
    with pytest.raises(InvalidCursor):
        table.list_page(limit=2, after=cursor)
