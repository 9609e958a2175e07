"""The builds table adapter (petal.build.records) on moto's DynamoDB."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from moto import mock_aws

from petal.build.records import BuildFailure, BuildRecord, Progress, iso
from petal.build.table import BuildIdTaken, BuildTable, get_build, list_builds, table_definition

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
FP = "sha256:" + "a" * 64


@pytest.fixture
def table(monkeypatch: pytest.MonkeyPatch) -> Iterator[BuildTable]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(**table_definition("builds"))
        yield BuildTable(client, "builds")


def record(build_id: str, minutes: int = 0, **changes: object) -> BuildRecord:
    values: dict[str, object] = {
        "build_id": build_id,
        "status": "RUNNING",
        "started_at": iso(NOW + timedelta(minutes=minutes)),
        "seed_name": "bio",
        "fingerprint": FP,
        "os": "alinux2023",
        "architecture": "x86_64",
        "execution_arn": f"arn:exec:{build_id}",
    }
    values.update(changes)
    return BuildRecord(**values)  # type: ignore[arg-type]


def test_a_record_round_trips(table: BuildTable) -> None:
    original = record(
        "b1",
        progress=Progress(2, 5, "samtools@1.17"),
        error=BuildFailure("bootstrap", "BootstrapFailed", "it broke"),
        notes=["one"],
    )
    table.create_build(original)
    assert table.get_build("b1") == original
    assert get_build(table._client, "builds", "b1") == original
    assert table.get_build("missing") is None


def test_an_id_is_used_once(table: BuildTable) -> None:
    table.create_build(record("b1"))
    with pytest.raises(BuildIdTaken):
        table.create_build(record("b1"))


def test_updates_are_guarded_by_the_execution(table: BuildTable) -> None:
    table.create_build(record("b1"))
    assert table.update_build("b1", {"step": "launch"}, execution_arn="arn:exec:b1")
    assert not table.update_build("b1", {"step": "hijack"}, execution_arn="arn:exec:other")
    assert not table.update_build("nope", {"step": "launch"})
    table.update_build("b1", {"status": "FAILED"})
    assert not table.update_build("b1", {"step": "late"}, only_if_running=True)
    table.update_build("b1", {}, append_note="first")
    table.update_build("b1", {}, append_note="second")
    stored = table.get_build("b1")
    assert stored is not None
    assert (stored.step, stored.status, stored.notes) == ("launch", "FAILED", ["first", "second"])


def test_builds_list_newest_first_with_filters(table: BuildTable) -> None:
    for index in range(30):
        status = "SUCCEEDED" if index % 3 == 0 else "FAILED"
        seed = "bio" if index % 2 == 0 else "chem"
        table.create_build(record(f"b{index:02d}", minutes=index, status=status, seed_name=seed))
    newest = table.list_builds(limit=5)
    assert [r.build_id for r in newest] == ["b29", "b28", "b27", "b26", "b25"]
    succeeded_bio = table.list_builds(limit=3, status="SUCCEEDED", seed="bio")
    assert [r.build_id for r in succeeded_bio] == ["b24", "b18", "b12"]
    assert len(list_builds(table._client, "builds", limit=100)) == 30
    assert len(table.builds_for_fingerprint(FP, limit=100)) == 30
    with pytest.raises(ValueError, match="status 'DONE'"):
        list_builds(table._client, "builds", status="DONE")


def test_one_lock_per_stack_variant(table: BuildTable) -> None:
    later = NOW + timedelta(hours=1)
    take = {"now": NOW, "expires_at": later}
    assert (
        table.acquire_lock(FP, "alinux2023", "x86_64", build_id="a", execution_arn="A", **take)
        is None
    )
    # The same execution again (a retried step) keeps it.
    assert (
        table.acquire_lock(FP, "alinux2023", "x86_64", build_id="a", execution_arn="A", **take)
        is None
    )
    holder = table.acquire_lock(FP, "alinux2023", "x86_64", build_id="b", execution_arn="B", **take)
    assert holder is not None and holder.build_id == "a"
    # Another variant is another lock.
    assert (
        table.acquire_lock(FP, "alinux2023", "arm64", build_id="c", execution_arn="C", **take)
        is None
    )
    assert not table.release_lock(FP, "alinux2023", "x86_64", execution_arn="B")
    assert table.release_lock(FP, "alinux2023", "x86_64", execution_arn="A")
    assert table.get_lock(FP, "alinux2023", "x86_64") is None


def test_an_expired_lock_is_taken_over(table: BuildTable) -> None:
    table.acquire_lock(
        FP, "rocky9", "x86_64", build_id="old", execution_arn="OLD", now=NOW, expires_at=NOW
    )
    later = NOW + timedelta(minutes=1)
    taken = table.acquire_lock(
        FP,
        "rocky9",
        "x86_64",
        build_id="new",
        execution_arn="NEW",
        now=later,
        expires_at=later + timedelta(hours=1),
    )
    assert taken is None
    assert [holder.build_id for _, holder in table.locks()] == ["new"]


def test_a_token_is_claimed_for_one_outcome_and_sent_once(table: BuildTable) -> None:
    table.park_token(
        "cmd-1",
        task_token="T",
        build_id="b1",
        instance_id="i-1",
        execution_arn="A",
        now=NOW,
        expires_at=NOW + timedelta(days=1),
    )
    assert table.claim_token("cmd-1", "command:Success", NOW) is not None
    # Until it is sent, the same outcome may claim again (a retried delivery).
    assert table.claim_token("cmd-1", "command:Success", NOW) is not None
    assert table.claim_token("cmd-1", "command:Failed", NOW) is None
    table.mark_token_sent("cmd-1", NOW)
    assert table.claim_token("cmd-1", "command:Success", NOW) is None
    token = table.get_token("cmd-1")
    assert token is not None and token.outcome == "command:Success"
    assert table.claim_token("unknown", "command:Success", NOW) is None


def test_an_upload_is_claimed_once(table: BuildTable) -> None:
    first = table.claim_intake(
        "bucket", "seeds/a.yaml", "v1", build_id="a-1", now=NOW, expires_at=NOW
    )
    assert first.created and first.execution_arn is None
    table.mark_intake_started("bucket", "seeds/a.yaml", "v1", "arn:exec:a-1")
    again = table.claim_intake(
        "bucket", "seeds/a.yaml", "v1", build_id="other", now=NOW, expires_at=NOW
    )
    assert not again.created
    assert (again.build_id, again.execution_arn) == ("a-1", "arn:exec:a-1")
