"""The emulator's Query of a DynamoDB index (petal.local.moto_dynamodb_query) answers as
moto's own Query does, item for item, on random tables, queries and writes; it reads the
page, not the table; and a write is seen by the next Query."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.dynamodb.models.table import Table

from petal.build.records import BuildRecord, iso
from petal.build.table import BuildTable, table_definition
from petal.local import moto_dynamodb_query

MOTO_QUERY = Table.query
TABLE = "items"
LETTERS = "abc"


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A moto DynamoDB client with the module's patches installed."""
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        for owner, name, replacement in moto_dynamodb_query.patches():
            monkeypatch.setattr(owner, name, replacement)
        yield boto3.client("dynamodb", region_name="us-east-1")


@contextmanager
def moto_alone(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """moto's own Query, for the answer to compare with."""
    patched = Table.query
    monkeypatch.setattr(Table, "query", MOTO_QUERY)
    try:
        yield
    finally:
        monkeypatch.setattr(Table, "query", patched)


def create_table(client: Any) -> None:
    def attr(name: str, kind: str = "S") -> dict[str, str]:
        return {"AttributeName": name, "AttributeType": kind}

    def key(hash_name: str, range_name: str | None = None) -> list[dict[str, str]]:
        schema = [{"AttributeName": hash_name, "KeyType": "HASH"}]
        if range_name:
            schema.append({"AttributeName": range_name, "KeyType": "RANGE"})
        return schema

    def gsi(name: str, schema: list[dict[str, str]], projection: str) -> dict[str, Any]:
        return {
            "IndexName": name,
            "KeySchema": schema,
            "Projection": {"ProjectionType": projection},
        }

    client.create_table(
        TableName=TABLE,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[
            attr("pk"),
            attr("sk"),
            attr("gp"),
            attr("gs"),
            attr("gn"),
            attr("nn", "N"),
            attr("ls"),
        ],
        KeySchema=key("pk", "sk"),
        GlobalSecondaryIndexes=[
            gsi("by_text", key("gp", "gs"), "ALL"),
            gsi("by_number", key("gn", "nn"), "KEYS_ONLY"),
            gsi("by_hash_only", key("gp"), "ALL"),
        ],
        LocalSecondaryIndexes=[gsi("local", key("pk", "ls"), "ALL")],
    )


def random_text(rng: random.Random, size: int = 3) -> str:
    return "".join(rng.choice(LETTERS) for _ in range(rng.randint(1, size)))


def random_item(rng: random.Random, pk: str, sk: str) -> dict[str, Any]:
    item: dict[str, Any] = {"pk": {"S": pk}, "sk": {"S": sk}, "v": {"N": str(rng.randint(0, 9))}}
    # Some items lack an index's keys: the index does not hold them.
    if rng.random() < 0.8:
        item["gp"] = {"S": rng.choice("xy")}
    if rng.random() < 0.8:
        item["gs"] = {"S": random_text(rng)}
    if rng.random() < 0.7:
        item["gn"] = {"S": rng.choice("mn")}
        if rng.random() < 0.9:
            item["nn"] = {"N": str(rng.choice([-2, 0, 1, 1.5, 3, 10, 25]))}
    if rng.random() < 0.7:
        item["ls"] = {"S": random_text(rng)}
    if rng.random() < 0.1:
        item["blob"] = {"S": "z" * rng.randint(1000, 5000)}
    return item


def random_query(rng: random.Random) -> dict[str, Any]:
    index, hash_name, range_name, kind = rng.choice(
        [
            ("by_text", "gp", "gs", "S"),
            ("by_number", "gn", "nn", "N"),
            ("by_hash_only", "gp", None, "S"),
            ("local", "pk", "ls", "S"),
        ]
    )
    hash_value = {
        "gp": rng.choice("xyw"),
        "gn": rng.choice("mno"),
        "pk": rng.choice(["p0", "p1", "p2", "p9"]),
    }[hash_name]
    names = {"#h": hash_name}
    values: dict[str, Any] = {":h": {"S": hash_value}}
    condition = "#h = :h"
    if range_name and rng.random() < 0.7:
        names["#r"] = range_name

        def operand() -> dict[str, str]:
            if kind == "N":
                return {"N": str(rng.choice([-3, -2, 0, 1, 1.5, 2, 3, 10, 30]))}
            return {"S": random_text(rng)}

        op = rng.choice(["=", "<", "<=", ">", ">=", "between", "begins_with"])
        values[":a"] = operand()
        if op == "between":
            values[":b"] = operand()
            condition += " AND #r BETWEEN :a AND :b"
        elif op == "begins_with" and kind == "S":
            condition += " AND begins_with(#r, :a)"
        else:
            condition += f" AND #r {op if op not in ('between', 'begins_with') else '='} :a"
    request: dict[str, Any] = {
        "TableName": TABLE,
        "IndexName": index,
        "KeyConditionExpression": condition,
        "ScanIndexForward": rng.random() < 0.5,
    }
    if rng.random() < 0.8:
        request["Limit"] = rng.randint(1, 9)
    if rng.random() < 0.3 and index != "by_number":
        names["#v"] = "v"
        values[":v"] = {"N": str(rng.randint(0, 9))}
        request["FilterExpression"] = "#v >= :v"
    if rng.random() < 0.2:
        names["#p"] = "pk"
        request["ProjectionExpression"] = "#p, #h"
    request["ExpressionAttributeNames"] = names
    request["ExpressionAttributeValues"] = values
    return request


def pages(client: Any, request: dict[str, Any]) -> list[dict[str, Any]]:
    """Every page of a Query, following LastEvaluatedKey (at most 40 pages)."""
    found = []
    start = request.get("ExclusiveStartKey")
    for _ in range(40):
        asked = {**request, **({"ExclusiveStartKey": start} if start else {})}
        answer = client.query(**asked)
        answer.pop("ResponseMetadata", None)
        found.append(answer)
        start = answer.get("LastEvaluatedKey")
        if not start:
            break
    return found


def assert_same_answers(
    client: Any, monkeypatch: pytest.MonkeyPatch, request: dict[str, Any]
) -> None:
    ours = pages(client, request)
    with moto_alone(monkeypatch):
        theirs = pages(client, request)
    assert ours == theirs, request


def random_write(client: Any, rng: random.Random) -> None:
    pk, sk = f"p{rng.randint(0, 2)}", f"s{rng.randint(0, 60):02d}"
    choice = rng.random()
    if choice < 0.5:
        client.put_item(TableName=TABLE, Item=random_item(rng, pk, sk))
    elif choice < 0.8:
        client.update_item(
            TableName=TABLE,
            Key={"pk": {"S": pk}, "sk": {"S": sk}},
            UpdateExpression="SET gs = :g, gp = :p",
            ExpressionAttributeValues={":g": {"S": random_text(rng)}, ":p": {"S": "x"}},
        )
    else:
        client.delete_item(TableName=TABLE, Key={"pk": {"S": pk}, "sk": {"S": sk}})


@pytest.mark.parametrize("seed", range(4))
def test_random_queries_answer_as_moto_does(
    client: Any, monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    rng = random.Random(seed)
    create_table(client)
    for n in range(90):
        client.put_item(TableName=TABLE, Item=random_item(rng, f"p{n % 3}", f"s{n // 3:02d}"))
    for _ in range(30):
        request = random_query(rng)
        assert_same_answers(client, monkeypatch, request)
        if rng.random() < 0.5:
            random_write(client, rng)


@pytest.mark.parametrize("seed", range(3))
def test_any_exclusive_start_key_answers_as_moto_does(
    client: Any, monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    """A start key taken from any item, of the queried partition or another."""
    rng = random.Random(100 + seed)
    create_table(client)
    items = [random_item(rng, f"p{n % 3}", f"s{n // 3:02d}") for n in range(90)]
    for item in items:
        client.put_item(TableName=TABLE, Item=item)
    indexed = [i for i in items if "gp" in i and "gs" in i]
    for _ in range(30):
        request = random_query(rng)
        if request["IndexName"] != "by_text":
            continue
        start = rng.choice(indexed)
        request["ExclusiveStartKey"] = {k: start[k] for k in ("pk", "sk", "gp", "gs")}
        assert_same_answers(client, monkeypatch, request)


def test_pages_end_at_the_size_limit_as_moto_does(
    client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Items of 300 KB: a page stops before 1 MB, also on an item outside the range
    condition (moto then returns a LastEvaluatedKey with nothing more to match)."""
    create_table(client)
    for n in range(8):
        item = {
            "pk": {"S": "p0"},
            "sk": {"S": f"s{n}"},
            "gp": {"S": "x"},
            "gs": {"S": f"g{n}"},
            "blob": {"S": "z" * 300_000},
        }
        client.put_item(TableName=TABLE, Item=item)
    base = {"TableName": TABLE, "IndexName": "by_text", "ScanIndexForward": True}
    for condition, values in [
        ("gp = :h", {":h": {"S": "x"}}),
        ("gp = :h AND gs < :g", {":h": {"S": "x"}, ":g": {"S": "g3"}}),
        ("gp = :h AND gs > :g", {":h": {"S": "x"}, ":g": {"S": "g4"}}),
    ]:
        for forward in (True, False):
            request = {
                **base,
                "KeyConditionExpression": condition,
                "ExpressionAttributeValues": values,
                "ScanIndexForward": forward,
            }
            assert_same_answers(client, monkeypatch, request)
    first = client.query(
        **base,
        KeyConditionExpression="gp = :h AND gs < :g",
        ExpressionAttributeValues={":h": {"S": "x"}, ":g": {"S": "g3"}},
    )
    assert first["Count"] == 3
    assert "LastEvaluatedKey" in first


def test_a_page_reads_the_index_not_the_table(client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Once the index is sorted, a Query walks the page alone; a write re-sorts it."""
    create_table(client)
    rng = random.Random(7)
    for n in range(60):
        client.put_item(TableName=TABLE, Item=random_item(rng, f"p{n % 3}", f"s{n:02d}"))
    request = {
        "TableName": TABLE,
        "IndexName": "by_text",
        "KeyConditionExpression": "gp = :h",
        "ExpressionAttributeValues": {":h": {"S": "x"}},
        "Limit": 3,
    }
    first = client.query(**request)
    scans: list[int] = []
    all_items: Callable[[Any], Any] = Table.all_items

    def counted(table: Any) -> Any:
        scans.append(1)
        return all_items(table)

    monkeypatch.setattr(Table, "all_items", counted)
    assert client.query(**request)["Items"] == first["Items"]
    assert client.query(**request, ExclusiveStartKey=first["LastEvaluatedKey"])["Count"] == 3
    assert scans == []
    client.put_item(
        TableName=TABLE,
        Item={"pk": {"S": "p0"}, "sk": {"S": "s99"}, "gp": {"S": "x"}, "gs": {"S": "A"}},
    )
    assert client.query(**request)["Items"][0]["sk"] == {"S": "s99"}
    assert scans == [1]


def test_what_it_does_not_answer_goes_to_moto(client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The table itself, a consistent read of a global index (refused, as by AWS), an
    unknown index (refused)."""
    create_table(client)
    client.put_item(TableName=TABLE, Item={"pk": {"S": "p0"}, "sk": {"S": "s0"}})
    assert_same_answers(
        client,
        monkeypatch,
        {
            "TableName": TABLE,
            "KeyConditionExpression": "pk = :h",
            "ExpressionAttributeValues": {":h": {"S": "p0"}},
        },
    )
    for extra in ({"ConsistentRead": True}, {"IndexName": "nope"}):
        request = {
            "TableName": TABLE,
            "IndexName": "by_text",
            "KeyConditionExpression": "gp = :h",
            "ExpressionAttributeValues": {":h": {"S": "x"}},
            **extra,
        }
        with pytest.raises(client.exceptions.ClientError) as ours:
            client.query(**request)
        with moto_alone(monkeypatch), pytest.raises(client.exceptions.ClientError) as theirs:
            client.query(**request)
        assert str(ours.value) == str(theirs.value)


def test_build_list_pages_are_moto_s(client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """petal's own listing (BuildTable.list_page), every page by cursor, with and
    without a status filter."""
    client.create_table(**table_definition("builds"))
    table = BuildTable(client, "builds")
    start = datetime(2025, 3, 1, tzinfo=UTC)
    for n in range(45):
        table.create_build(
            BuildRecord(
                build_id=f"b{n:03d}",
                status="RUNNING" if n % 7 == 0 else "SUCCEEDED",
                started_at=iso(start + timedelta(minutes=n)),
                seed_name="bio" if n % 2 else "chem",
                fingerprint="sha256:" + "a" * 64,
                os="alinux2023",
                architecture="x86_64",
                execution_arn=f"arn:exec:{n}",
            )
        )

    def listing(status: str | None) -> list[list[str]]:
        found, cursor = [], None
        while True:
            page = table.list_page(10, status=status, after=cursor)
            found.append([b.build_id for b in page.records])
            cursor = page.next
            if not cursor:
                return found

    for status in (None, "RUNNING"):
        ours = listing(status)
        with moto_alone(monkeypatch):
            assert listing(status) == ours
