"""The builds table (DynamoDB): build records, build locks, parked task tokens and
intake de-duplication markers, in one table whose keys are named in
petal/deployment_contract.py.

Item shapes (pk / sk, then attributes):

- build  ``BUILD#<id>`` / ``BUILD``: build_id, status (RUNNING, SUCCEEDED, FAILED,
  REUSED, CANCELLED), seed_name, seed_source, fingerprint, os, architecture,
  spack_version, step, bootstrap_step, progress {done, total, spec}, started_at, finished_at,
  duration_seconds, last_heartbeat_at, snapshot_id, parent_snapshot_id, instance_id, volume_id,
  execution_arn, command_id, log_group, error {step, error, cause}, failure_line,
  log_key (LOG_KEY_ATTRIBUTE: the secret its builder tags its log lines with, kept out
  of BuildRecord so that nothing that shows a record can show it),
  notes [...];
  gsi1pk ``FP#<fingerprint>`` / gsi1sk started_at (by fingerprint),
  gsi2pk ``BUILDS`` / gsi2sk started_at (by recency).
- lock   ``LOCK#<fingerprint>#<os>#<arch>`` / ``LOCK``: build_id, execution_arn,
  acquired_at, ttl.
- token  ``TOKEN#<command id>`` / ``TOKEN``: task_token, build_id, instance_id,
  execution_arn, parked_at, outcome + claimed_at (once claimed), sent_at (once its
  SendTask* call went through), ttl.
- intake ``INTAKE#<bucket>/<key>#<version>`` / ``INTAKE``: build_id, received_at,
  execution_arn (once started), ttl.

Timestamps are UTC ISO 8601 strings ("2025-01-31T12:00:00Z"), which sort as text;
`ttl` is epoch seconds (DynamoDB's TTL format).

The adapter takes a boto3 DynamoDB client, so tests hand in moto's."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from decimal import Clamped, Context, Decimal, Inexact, Overflow, Rounded, Underflow
from typing import Any, Final, Literal

from petal.deployment_contract import (
    INDEX_BY_FINGERPRINT,
    INDEX_BY_RECENCY,
    INDEX_KEYS,
    TABLE_PARTITION_KEY,
    TABLE_SORT_KEY,
    TABLE_TTL_ATTRIBUTE,
)

BuildStatus = Literal["RUNNING", "SUCCEEDED", "FAILED", "REUSED", "CANCELLED"]


STATUSES: Final[tuple[BuildStatus, ...]] = ("RUNNING", "SUCCEEDED", "FAILED", "REUSED", "CANCELLED")


FINISHED: Final = frozenset({"SUCCEEDED", "FAILED", "REUSED", "CANCELLED"})
# The finished states that leave a software volume (snapshot) behind.
SUCCESSFUL: Final = frozenset({"SUCCEEDED", "REUSED"})


PK: Final = TABLE_PARTITION_KEY


SK: Final = TABLE_SORT_KEY


TTL: Final = TABLE_TTL_ATTRIBUTE


# The build item's attribute holding its log key (petal.build.log_markers): read and
# written only by BuildTable.get_build_and_log_key and the bootstrap step, never a field
# of BuildRecord, whose every field the CLI's --json and the Lambda results may show.
LOG_KEY_ATTRIBUTE: Final = "log_key"


FP_PK, _FP_SK = INDEX_KEYS[INDEX_BY_FINGERPRINT]


RECENT_PK, _RECENT_SK = INDEX_KEYS[INDEX_BY_RECENCY]


RECENCY_PARTITION: Final = "BUILDS"


# DynamoDB's numbers: 38 significant digits, exponents within its range; anything that
# would be rounded or overflow raises, as in boto3.dynamodb.types (whose context this is).
_NUMBERS: Final = Context(
    Emin=-128, Emax=126, prec=38, traps=[Clamped, Overflow, Inexact, Rounded, Underflow]
)


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def build_key(build_id: str) -> dict[str, str]:
    return {PK: f"BUILD#{build_id}", SK: "BUILD"}


def lock_key(fingerprint: str, os_name: str, architecture: str) -> dict[str, str]:
    return {PK: f"LOCK#{fingerprint}#{os_name}#{architecture}", SK: "LOCK"}


def token_key(command_id: str) -> dict[str, str]:
    return {PK: f"TOKEN#{command_id}", SK: "TOKEN"}


def intake_key(bucket: str, key: str, version: str) -> dict[str, str]:
    return {PK: f"INTAKE#{bucket}/{key}#{version}", SK: "INTAKE"}


@dataclass(frozen=True)
class Progress:
    done: int
    total: int
    spec: str


@dataclass(frozen=True)
class BuildFailure:
    step: str
    error: str
    cause: str


@dataclass
class BuildRecord:
    build_id: str
    status: BuildStatus
    started_at: str
    seed_name: str | None = None
    seed_source: str | None = None
    fingerprint: str | None = None
    os: str | None = None
    architecture: str | None = None
    spack_version: str | None = None
    step: str | None = None  # prepare, launch, ready, bootstrap, snapshot, cleanup, done
    bootstrap_step: str | None = None  # the bootstrap's own PETAL-STEP (install, ...)
    progress: Progress | None = None
    finished_at: str | None = None
    duration_seconds: int | None = None
    last_heartbeat_at: str | None = None
    snapshot_id: str | None = None
    instance_id: str | None = None
    volume_id: str | None = None
    execution_arn: str | None = None
    command_id: str | None = None
    log_group: str | None = None
    error: BuildFailure | None = None
    failure_line: str | None = None  # the PETAL-FAILED line the bootstrap printed
    # The snapshot the build's volume was created from (`petal build --from`).
    parent_snapshot_id: str | None = None
    # sha256:<hex> of the manifest the builder uploaded (PETAL-MANIFEST): petal build
    # diff refuses a copy that no longer matches (petal.build.manifest).
    manifest_sha256: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def variant(self) -> str:
        """os/architecture for people; "?" where unknown (a seed the intake rejected)."""
        return f"{self.os or '?'}/{self.architecture or '?'}"

    def to_item(self) -> dict[str, Any]:
        data = {k: v for k, v in asdict(self).items() if v is not None and v != []}
        data.update(build_key(self.build_id))
        if self.fingerprint:
            data[FP_PK] = f"FP#{self.fingerprint}"
            data[_FP_SK] = self.started_at
        data[RECENT_PK] = RECENCY_PARTITION
        data[_RECENT_SK] = self.started_at
        return data

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> BuildRecord:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in item.items() if k in known}
        if isinstance(values.get("progress"), Mapping):
            values["progress"] = Progress(**values["progress"])
        if isinstance(values.get("error"), Mapping):
            values["error"] = BuildFailure(**values["error"])
        values["notes"] = list(values.get("notes") or [])
        return cls(**values)

    def to_json(self) -> dict[str, Any]:
        """Plain JSON (for the CLI's --json and the Lambda results)."""
        return {k: v for k, v in asdict(self).items() if v is not None and v != []}


@dataclass(frozen=True)
class LockHolder:
    build_id: str
    execution_arn: str
    acquired_at: str


@dataclass(frozen=True)
class ParkedToken:
    command_id: str
    task_token: str
    build_id: str
    instance_id: str
    execution_arn: str
    outcome: str | None


@dataclass(frozen=True)
class IntakeMarker:
    build_id: str
    received_at: str
    execution_arn: str | None
    created: bool  # this call created the marker (first delivery)


# to_dynamo/from_dynamo do what boto3.dynamodb.types' TypeSerializer/TypeDeserializer
# do for the types petal stores (tests/unit/test_dynamo_values.py compares them), without
# importing boto3, whose import pulls in s3transfer: ~25 ms of every handler's cold start.


def to_dynamo(value: Mapping[str, Any]) -> dict[str, Any]:
    """Attribute values of a plain mapping (str, int, float, Decimal, bool, None,
    mappings and lists of those)."""
    return {k: _serialize(plain(v)) for k, v in value.items()}


def from_dynamo(item: Mapping[str, Any]) -> dict[str, Any]:
    """The plain values of an item's attributes: whole numbers as int, others float."""
    return {k: _deserialize(v) for k, v in item.items()}


def _serialize(value: Any) -> dict[str, Any]:
    if value is None:
        return {"NULL": True}
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, int | Decimal):
        number = _NUMBERS.create_decimal(value)
        if not number.is_finite():
            raise TypeError(f"DynamoDB stores no {number} (attribute value {value!r})")
        return {"N": str(number)}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, Mapping):
        return {"M": {k: _serialize(v) for k, v in value.items()}}
    if isinstance(value, list | tuple):
        return {"L": [_serialize(v) for v in value]}
    # Binary and sets: petal writes none.
    raise TypeError(f"petal stores no {type(value).__name__} in DynamoDB: {value!r}")


def _deserialize(value: Mapping[str, Any]) -> Any:
    kind, data = next(iter(value.items()))
    if kind == "S" or kind == "BOOL":
        return data
    if kind == "N":
        return _native(_NUMBERS.create_decimal(data))
    if kind == "M":
        return {k: _deserialize(v) for k, v in data.items()}
    if kind == "L":
        return [_deserialize(v) for v in data]
    if kind == "NULL":
        return None
    # Types petal never writes, read as boto3 reads them should an item hold one.
    if kind == "SS":
        return set(data)
    if kind == "NS":
        return {_NUMBERS.create_decimal(n) for n in data}
    if kind == "B":
        return bytes(data)
    if kind == "BS":
        return {bytes(b) for b in data}
    raise TypeError(f"unknown DynamoDB attribute type {kind!r}")


def plain(value: Any) -> Any:
    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def _native(value: Decimal) -> int | float:
    return int(value) if value == value.to_integral_value() else float(value)


def record_of_ended_execution(
    build_id: str, execution: Mapping[str, Any], *, now: datetime
) -> BuildRecord:
    """How a build ended whose execution ended before anything recorded it (Prepare
    refused the request, or failed, and no cleanup could write): DescribeExecution says
    it. Its step is prepare: every later step runs after Prepare wrote the record."""
    try:
        request = json.loads(execution.get("input") or "{}")
    except ValueError:
        request = {}
    if not isinstance(request, dict):
        request = {}
    status = str(execution.get("status") or "FAILED")
    started, stopped = execution.get("startDate"), execution.get("stopDate")
    return BuildRecord(
        build_id=build_id,
        status="CANCELLED" if status == "ABORTED" else "FAILED",
        started_at=iso(started if isinstance(started, datetime) else now),
        finished_at=iso(stopped if isinstance(stopped, datetime) else now),
        os=request.get("os") if isinstance(request.get("os"), str) else None,
        architecture=(
            request.get("architecture") if isinstance(request.get("architecture"), str) else None
        ),
        step="prepare",
        execution_arn=str(execution.get("executionArn") or "") or None,
        error=BuildFailure(
            step="prepare",
            error=str(execution.get("error") or status),
            cause=str(execution.get("cause") or f"the execution ended {status} before it began"),
        ),
    )
