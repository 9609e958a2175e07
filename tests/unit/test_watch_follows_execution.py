"""The watcher follows a build's execution as well as its record: a record left
RUNNING by a failed cleanup does not keep `petal build` waiting."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest

from petal.build.records import BuildFailure, BuildRecord
from petal.cli import build_watch

MACHINE = "arn:aws:states:us-east-1:123456789012:stateMachine:petal-build"
ARN = "arn:aws:states:us-east-1:123456789012:execution:petal-build:messy"
STUCK = BuildRecord(
    build_id="messy",
    status="RUNNING",
    started_at="2026-01-01T00:00:00Z",
    step="cleanup",
    execution_arn=ARN,
    error=BuildFailure("bootstrap", "BootstrapFailed", "Build messy failed in step bootstrap."),
)


class Table:
    def get_build(self, build_id: str) -> BuildRecord:
        return STUCK


class StepFunctions:
    def __init__(self, status: str) -> None:
        self.status = status

    def describe_execution(self, executionArn: str) -> dict[str, Any]:
        assert executionArn == ARN
        return {
            "status": self.status,
            "startDate": datetime(2026, 1, 1, tzinfo=UTC),
            "stopDate": datetime(2026, 1, 1, 0, 20, tzinfo=UTC),
            "error": "CleanupFailed",
            "cause": "The build could not clean up after itself.",
        }


@pytest.mark.parametrize(("execution", "status"), [("FAILED", "FAILED"), ("ABORTED", "CANCELLED")])
def test_a_record_left_running_ends_the_watch_when_the_execution_has_ended(
    execution: str, status: str, capsys: pytest.CaptureFixture[str]
) -> None:
    sfn = StepFunctions(execution)
    pipeline = SimpleNamespace(
        table=Table(),
        deployment=SimpleNamespace(state_machine_arn=MACHINE, region="us-east-1"),
        client=lambda service: {"stepfunctions": sfn}[service],
    )
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        raise AssertionError("the watcher waited on a build whose execution had ended")

    code = build_watch.watch(
        pipeline,  # type: ignore[arg-type]
        ["messy"],
        None,
        None,
        as_json=True,
        sleep=sleep,
    )

    assert code == 1 and sleeps == []
    out = capsys.readouterr().out
    assert f'"status": "{status}"' in out
    assert '"step": "bootstrap"' in out and "CleanupFailed" in out


def test_a_running_execution_keeps_the_watch_going() -> None:
    sfn = StepFunctions("RUNNING")
    pipeline = SimpleNamespace(
        table=Table(),
        deployment=SimpleNamespace(state_machine_arn=MACHINE, region="us-east-1"),
        client=lambda service: {"stepfunctions": sfn}[service],
    )

    def sleep(seconds: float) -> None:
        raise KeyboardInterrupt

    code = build_watch.watch(
        pipeline,  # type: ignore[arg-type]
        ["messy"],
        None,
        None,
        as_json=True,
        sleep=sleep,
    )
    assert code == build_watch.EXIT_INTERRUPTED
