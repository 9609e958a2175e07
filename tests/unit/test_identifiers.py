"""The JSON Schemas spell identifiers exactly as petal.identifiers does."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from petal import identifiers

SCHEMAS = sorted((Path(__file__).resolve().parents[2] / "petal" / "schemas").glob("*.json"))
# What a schema pattern that checks one of these identifiers contains.
# The first shape that matches is the one checked: a zone's pattern contains a region's.
SHAPES: dict[str, identifiers.Shape] = {
    "-[0-9][a-z]": identifiers.AVAILABILITY_ZONE,
    "snap-": identifiers.SNAPSHOT_ID,
    "ami-": identifiers.IMAGE_ID,
    "subnet-": identifiers.SUBNET_ID,
    "^sha256:": identifiers.FINGERPRINT,
    "^[0-9]{12}$": identifiers.ACCOUNT_ID,
    "[a-z]{2}(-": identifiers.REGION,
}


def walk(node: Any, path: str = "") -> Iterator[tuple[str, str, Any]]:
    """(path, key, value) of every key in a JSON document."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield path, key, value
            yield from walk(value, f"{path}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from walk(value, f"{path}/{index}")


@pytest.mark.parametrize("schema", SCHEMAS, ids=lambda p: p.name)
def test_schema_patterns_are_the_identifiers(schema: Path) -> None:
    for path, key, value in walk(json.loads(schema.read_text())):
        if key != "pattern":
            continue
        for marker, identifier in SHAPES.items():
            if marker in value and not value.startswith("^(arn:"):
                assert value == identifier.pattern, f"{schema.name}{path}"
                break


@pytest.mark.parametrize("schema", SCHEMAS, ids=lambda p: p.name)
def test_volume_sizes_end_at_the_gp3_limit(schema: Path) -> None:
    for path, key, value in walk(json.loads(schema.read_text())):
        if path.endswith("/size_gb") and key == "maximum":
            assert value == identifiers.MAX_VOLUME_GB, f"{schema.name}{path}"


def test_every_identifier_shape_is_found_in_some_schema() -> None:
    patterns = [
        value
        for schema in SCHEMAS
        for _, key, value in walk(json.loads(schema.read_text()))
        if key == "pattern"
    ]
    for identifier in SHAPES.values():
        assert identifier.pattern in patterns
