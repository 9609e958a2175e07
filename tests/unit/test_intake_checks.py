"""Intake's own checks: where a seed may come from, its size before it is read, and
no record written over another."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from petal.build.intake import on_seed_uploaded, seed_location_problem
from petal.build.records import BuildRecord
from petal.build.table import BuildIdTaken
from petal.seed.model import MAX_SEED_BYTES


class _Table:
    def __init__(self, existing: BuildRecord | None = None) -> None:
        self.existing = existing
        self.created: list[BuildRecord] = []

    def get_intake(self, *args: object) -> None:
        return None

    def get_build(self, build_id: str) -> BuildRecord | None:
        return None  # as if written between this read and the create

    def create_build(self, record: BuildRecord) -> None:
        if self.existing is not None:
            raise BuildIdTaken(record.build_id)
        self.created.append(record)


def _event(key: str = "seeds/a.yaml", bucket: str = "seeds-bucket") -> dict[str, Any]:
    obj = {"key": key, "version-id": "v1", "etag": "e"}
    return {"detail-type": "Object Created", "detail": {"bucket": {"name": bucket}, "object": obj}}


def _never_read(bucket: str, key: str, version: str | None) -> bytes:
    raise AssertionError("the object was read")


def _intake(table: _Table, event: dict[str, Any], **kwargs: Any) -> Any:
    return on_seed_uploaded(
        event,
        table=table,  # type: ignore[arg-type]
        sfn=None,
        state_machine_arn="arn",
        now=datetime(2026, 1, 1, tzinfo=UTC),
        seed_bucket="seeds-bucket",
        **kwargs,
    )


@pytest.mark.parametrize(
    ("bucket", "key"),
    [("other", "seeds/a.yaml"), ("seeds-bucket", "a.yaml"), ("seeds-bucket", "seedsx/a.yaml")],
)
def test_a_seed_outside_the_seed_buckets_seeds_is_refused(bucket: str, key: str) -> None:
    assert seed_location_problem(bucket, key, "seeds-bucket") is not None
    table = _Table()
    result = _intake(table, _event(key, bucket), read_seed=_never_read)
    assert result.started is False and result.reason.startswith("ignored:")
    assert table.created == []


def test_a_seed_in_the_seed_bucket_is_accepted() -> None:
    assert seed_location_problem("seeds-bucket", "seeds/a.yaml", "seeds-bucket") is None


def test_an_event_without_a_size_is_sized_by_head_before_reading() -> None:
    table = _Table()
    asked: list[tuple[str, str, str | None]] = []

    def head(bucket: str, key: str, version: str | None) -> int:
        asked.append((bucket, key, version))
        return 200 * 1024 * 1024

    _intake(table, _event(), read_seed=_never_read, object_size=head)
    assert asked == [("seeds-bucket", "seeds/a.yaml", "v1")]
    [record] = table.created
    assert record.error is not None and f"at most {MAX_SEED_BYTES:,} bytes" in record.error.cause


def test_a_rejected_seed_never_overwrites_an_existing_record() -> None:
    existing = BuildRecord(build_id="a-1", status="SUCCEEDED", started_at="2026-01-01T00:00:00Z")
    table = _Table(existing)
    result = _intake(table, _event(), read_seed=lambda b, k, v: b"not: [a seed")
    assert result.started is False and "duplicate" in result.reason
    assert table.created == []
