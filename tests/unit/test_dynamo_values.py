"""petal.build.records' DynamoDB attribute values (to_dynamo / from_dynamo) agree with
boto3's TypeSerializer / TypeDeserializer, which they replace in the handlers, on
random records and on every type petal writes."""

from __future__ import annotations

import random
import string
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import fields
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from boto3.dynamodb.types import Binary, TypeDeserializer, TypeSerializer

from petal.build.records import (
    STATUSES,
    BuildFailure,
    BuildRecord,
    Progress,
    from_dynamo,
    plain,
    to_dynamo,
)

REPO = Path(__file__).resolve().parents[2]
SERIALIZER = TypeSerializer()
DESERIALIZER = TypeDeserializer()


def boto3_to_dynamo(value: Mapping[str, Any]) -> dict[str, Any]:
    return {k: SERIALIZER.serialize(plain(v)) for k, v in value.items()}


def boto3_from_dynamo(item: Mapping[str, Any]) -> dict[str, Any]:
    return {k: native(DESERIALIZER.deserialize(v)) for k, v in item.items()}


def native(value: Any) -> Any:
    """What petal makes of boto3's values: whole numbers int, others float."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: native(v) for k, v in value.items()}
    if isinstance(value, list):
        return [native(v) for v in value]
    return value


def text(rng: random.Random) -> str:
    alphabet = string.printable + "éü中🙂\x00"
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30)))


def number(rng: random.Random) -> int | float | Decimal:
    choices: list[int | float | Decimal] = [
        rng.randint(-(2**63), 2**63),
        rng.randint(0, 10**38 - 1),
        round(rng.uniform(-1e6, 1e6), rng.randint(0, 9)),
        Decimal(rng.randint(-(10**20), 10**20)).scaleb(rng.randint(-60, 60)),
        0,
        -0.0,
    ]
    return rng.choice(choices)


def value(rng: random.Random, depth: int = 0) -> Any:
    kinds = ["str", "number", "bool", "none"] + (["map", "list"] if depth < 3 else [])
    kind = rng.choice(kinds)
    if kind == "str":
        return text(rng)
    if kind == "number":
        return number(rng)
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "none":
        return None
    if kind == "map":
        return {text(rng): value(rng, depth + 1) for _ in range(rng.randint(0, 4))}
    return [value(rng, depth + 1) for _ in range(rng.randint(0, 4))]


def random_record(rng: random.Random) -> BuildRecord:
    values: dict[str, Any] = {
        "build_id": text(rng),
        "status": rng.choice(STATUSES),
        "started_at": text(rng),
    }
    for spec in fields(BuildRecord):
        if spec.name in values or rng.random() < 0.3:
            continue
        if spec.name == "progress":
            values["progress"] = Progress(rng.randint(0, 900), rng.randint(0, 900), text(rng))
        elif spec.name == "error":
            values["error"] = BuildFailure(text(rng), text(rng), text(rng))
        elif spec.name == "notes":
            values["notes"] = [text(rng) for _ in range(rng.randint(0, 5))]
        elif str(spec.type).startswith("int"):
            values[spec.name] = rng.randint(0, 10**9)
        else:
            values[spec.name] = text(rng)
    return BuildRecord(**values)


@pytest.mark.parametrize("seed", range(20))
def test_records_serialize_as_boto3_does_and_come_back_whole(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(50):
        record = random_record(rng)
        item = {**record.to_item(), "log_key": text(rng), "ttl": rng.randint(0, 2**40)}
        wire = to_dynamo(item)
        assert wire == boto3_to_dynamo(item)
        assert from_dynamo(wire) == boto3_from_dynamo(wire)
        assert BuildRecord.from_item(from_dynamo(wire)) == record


@pytest.mark.parametrize("seed", range(20))
def test_any_plain_value_serializes_as_boto3_does(seed: int) -> None:
    rng = random.Random(1000 + seed)
    for _ in range(100):
        values = {text(rng): value(rng) for _ in range(rng.randint(1, 6))}
        wire = to_dynamo(values)
        assert wire == boto3_to_dynamo(values)
        assert from_dynamo(wire) == boto3_from_dynamo(wire)


def test_types_petal_never_writes_are_read_as_boto3_reads_them() -> None:
    item = {
        "ss": {"SS": ["a", "b"]},
        "ns": {"NS": ["1", "2.5"]},
        "b": {"B": b"\x00\x01"},
        "bs": {"BS": [b"x", b"y"]},
    }
    assert from_dynamo(item) == boto3_from_dynamo(item)
    assert boto3_from_dynamo(item)["b"] == Binary(b"\x00\x01")


@pytest.mark.parametrize(
    "bad",
    [
        Decimal("1" * 39),  # more digits than DynamoDB keeps
        10**200,
        Decimal("1e-200"),
        Decimal("NaN"),
        Decimal("Infinity"),
        object(),
    ],
)
def test_what_boto3_refuses_is_refused_alike(bad: Any) -> None:
    with pytest.raises(Exception) as refused:
        boto3_to_dynamo({"v": bad})
    with pytest.raises(type(refused.value)):
        to_dynamo({"v": bad})


@pytest.mark.parametrize("bad", [b"bytes", {"a", "set"}, [b"in a list"]])
def test_binary_and_sets_which_petal_never_writes_are_refused(bad: Any) -> None:
    with pytest.raises(TypeError, match="petal stores no"):
        to_dynamo({"v": bad})


def test_the_builds_table_does_not_import_boto3() -> None:
    # boto3's import pulls in s3transfer: 20 to 25 ms of every handler's cold start.
    probe = (
        "import sys, petal.build.table; print(sorted({'boto3', 's3transfer'} & set(sys.modules)))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=REPO
    )
    assert result.stdout.strip() == "[]"
