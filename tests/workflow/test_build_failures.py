"""A failure at each step ends the build FAILED, names the step, and leaves nothing."""

from __future__ import annotations

from dataclasses import replace

import pytest

from petal.build.definition import StateMachineSettings
from petal.local.emulator import LocalAws, LocalFailure
from tests.workflow.conftest import REPO_ROOT, seed_document
from tests.workflow.helpers import assert_nothing_left, petal_snapshots

FAILURES = [
    ("prepare", "exception", "InjectedFailure"),
    ("launch", "exception", "InjectedFailure"),
    ("launch", "capacity", "NoBuilderCapacity"),
    ("ready", "exception", "InjectedFailure"),
    ("ready", "agent-offline", "BuilderNotReady"),
    ("bootstrap", "exception", "InjectedFailure"),
    ("bootstrap", "failed", "BootstrapFailed"),
    ("bootstrap", "timed-out", "BootstrapTimedOut"),
    ("bootstrap", "cancelled", "BootstrapCancelled"),
    ("bootstrap", "terminated", "BuilderStopped"),
    ("snapshot", "exception", "InjectedFailure"),
    ("snapshot", "error", "SnapshotFailed"),
]


@pytest.mark.parametrize(
    ("step", "mode", "error"), FAILURES, ids=[f"{s}-{m}" for s, m, _ in FAILURES]
)
def test_a_failed_step_is_named_and_cleaned_up(
    aws: LocalAws, step: str, mode: str, error: str
) -> None:
    result = aws.build(
        {"seed": seed_document(), "build_id": "doomed"}, failure=LocalFailure(step, mode)
    )

    assert result.status == "FAILED"
    assert result.error == error
    assert result.cause is not None
    assert f"failed in step {step} ({error})" in result.cause
    assert "What to do:" in result.cause
    assert_nothing_left(aws)
    assert petal_snapshots(aws) == [] or step == "snapshot"
    record = aws.table.get_build("doomed")
    # Even a failure before Prepare wrote anything leaves a record (the cleanup's).
    assert record is not None
    assert record.status == "FAILED"
    assert record.error is not None and record.error.step == step
    assert record.error.error == error
    assert ("BuildFailed", 1, "Count") in aws.metrics


def test_a_failed_install_names_the_bootstrap_step_and_the_log_tail(aws: LocalAws) -> None:
    result = aws.build(
        {"seed": seed_document(), "build_id": "bad-package"},
        failure=LocalFailure("bootstrap", "failed"),
    )
    assert result.status == "FAILED"
    assert "failed in its 'install' step" in str(result.cause)
    assert "Last lines of the build log" in str(result.cause)
    record = aws.table.get_build("bad-package")
    assert record is not None and record.failure_line is not None
    assert record.failure_line.startswith("install:")


@pytest.fixture
def settings() -> StateMachineSettings:
    return replace(StateMachineSettings.fast(), bootstrap_heartbeat_seconds=3)


def test_a_hung_install_times_out_on_its_heartbeat(aws: LocalAws) -> None:
    result = aws.build(
        {"seed": seed_document(), "build_id": "hung"}, failure=LocalFailure("bootstrap", "hang")
    )
    assert result.status == "FAILED"
    assert result.error == "HeartbeatTimeout"
    assert "failed in step bootstrap (States.HeartbeatTimeout)" in str(result.cause)
    assert "stopped reporting progress" in str(result.cause)
    assert_nothing_left(aws)
    record = aws.table.get_build("hung")
    assert record is not None and record.error is not None
    assert record.error.error == "States.HeartbeatTimeout"


def test_a_failed_cleanup_is_reported_and_the_janitor_removes_the_rest(aws: LocalAws) -> None:
    result = aws.build(
        {"seed": seed_document(), "build_id": "messy"}, failure=LocalFailure("cleanup")
    )
    assert result.status == "FAILED"
    assert result.error == "CleanupFailed"
    assert "could not clean up" in str(result.cause)
    record = aws.table.get_build("messy")
    assert record is not None and record.status == "RUNNING"

    report = aws.run_janitor(older_than_minutes=0)

    assert report["terminated_instances"]
    assert report["closed_builds"] == ["messy: FAILED"]
    aws.run_janitor(older_than_minutes=0)  # the volume, once detached
    assert_nothing_left(aws)
    record = aws.table.get_build("messy")
    assert record is not None and record.status == "FAILED"
    assert any("janitor" in note for note in record.notes)


def test_capacity_in_one_subnet_moves_to_the_next(aws: LocalAws) -> None:
    result = aws.build(
        {"seed": seed_document(), "build_id": "moved"},
        failure=LocalFailure("launch", "capacity-first-subnet"),
    )
    assert result.status == "SUCCEEDED", result.cause
    launched = [e for e in aws.history(result.execution_arn) if e["type"] == "TaskStateExited"]
    assert launched


def test_a_throttled_step_is_retried(aws: LocalAws) -> None:
    result = aws.build(
        {"seed": seed_document(), "build_id": "throttled"},
        failure=LocalFailure("launch", "throttle-once"),
    )
    assert result.status == "SUCCEEDED", result.cause
    assert [m for m, _ in aws.handler_calls].count("launch") == 2


def test_the_repo_root_is_the_one_the_harness_uses() -> None:
    assert (REPO_ROOT / "statemachines" / "build.asl.json").is_file()
