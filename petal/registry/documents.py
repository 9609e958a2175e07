"""What a snapshot registry holds: the index, one metadata document per stack, and
how each is decoded and validated (size-capped, strict, against petal/schemas/)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any, Final

import jsonschema

from petal.platforms import Architecture

MAX_DOCUMENT_BYTES: Final = 2 * 1024 * 1024  # a 10,000-stack index is ~1.5 MiB


MAX_SEED_BYTES: Final = 1024 * 1024  # petal.yaml_source's limit for seeds


class RegistryError(Exception):
    """Registry data that cannot be used, or a registry that cannot be read."""

    def __init__(self, document: str, field: str, message: str) -> None:
        self.document = document
        self.field = field
        self.message = message
        where = f"registry document {document}"
        super().__init__(f"{where}: {field}: {message}" if field else f"{where}: {message}")


class StackNotFound(RegistryError):
    """The registry lists no stack by that name."""


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
class StackMetadata:
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


@cache
def _validator(name: str) -> jsonschema.Draft202012Validator:
    text = resources.files("petal").joinpath(f"schemas/{name}").read_text()
    return jsonschema.Draft202012Validator(json.loads(text))


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
        raise RegistryError(url, "", f"must be a JSON object, not {_json_kind(data)}")
    errors = sorted(_validator(schema).iter_errors(data), key=lambda e: list(e.absolute_path))
    if errors:
        first = errors[0]
        path, message = _explain(first)
        more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
        raise RegistryError(url, path, message + more)
    return data


_KINDS: Final = {
    "string": "text",
    "integer": "a whole number",
    "number": "a number",
    "boolean": "true or false",
    "array": "a list",
    "object": "an object",
}


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return "null"


def _path(parts: Iterable[Any]) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _explain(error: jsonschema.ValidationError) -> tuple[str, str]:
    path = _path(error.absolute_path)
    schema = error.schema if isinstance(error.schema, dict) else {}
    hint = schema.get("description")
    kind = error.validator
    expected: Any = error.validator_value
    value: Any = error.instance
    if kind == "required":
        missing = next((n for n in expected if n not in value), expected[0])
        sub = schema.get("properties", {}).get(missing, {})
        detail = f": {sub['description']}" if "description" in sub else ""
        return (f"{path}.{missing}" if path else str(missing)), f"is required{detail}"
    if kind == "type":
        message = f"must be {_KINDS.get(str(expected), expected)}, not {_json_kind(value)}"
    elif kind == "pattern":
        message = f"{short(value)} is not valid: use {hint or 'the documented format'}"
    elif kind == "enum":
        message = f"{short(value)} is not allowed; use one of: {', '.join(map(str, expected))}"
    elif kind in ("minimum", "maximum"):
        message = f"{short(value)} is out of range ({hint or kind + ' ' + str(expected)})"
    elif kind in ("maxItems", "minItems"):
        bound = "at most" if kind == "maxItems" else "at least"
        message = f"has {len(value)} entries; {bound} {expected} allowed"
    elif kind in ("maxLength", "minLength"):
        bound = "at most" if kind == "maxLength" else "at least"
        message = f"is {len(value)} characters long; {bound} {expected} allowed"
    else:
        message = re.sub(r"\s+", " ", error.message)[:200]
    return path or "(document)", message
