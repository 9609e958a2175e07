"""The failure matrix: a failure injected at every step, in every mode the
emulator can act out, with and without the cleanup failing after it, leaves no
builder instance, no software volume and no lock once the janitor has run, and a
record that says the build failed and names the step: for a build onto an empty volume,
and for one onto a volume created from a parent snapshot (`petal build --from`), whose
parent snapshot stays as it was."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from petal.build.definition import StateMachineSettings
from petal.local.emulator import LocalAws, LocalFailure
from petal.local.failures import FAILURE_MODES
from tests.workflow.conftest import seed_document
from tests.workflow.helpers import locks, petal_instances, petal_snapshots, petal_volumes

# Modes a build recovers from (it succeeds): covered in test_build_failures.py.
RECOVERED = {("launch", "capacity-first-subnet"), ("launch", "throttle-once")}
# The steps a failure can be injected into before the cleanup.
STEPS = ("prepare", "launch", "ready", "bootstrap", "snapshot")

CASES: list[LocalFailure] = [
    LocalFailure(step, mode)
    for step, modes in FAILURE_MODES.items()
    for mode in modes
    if (step, mode) not in RECOVERED
] + [
    LocalFailure(step, FAILURE_MODES[step][-1] if step == "bootstrap" else "exception", cleanup)
    for step in STEPS
    for cleanup in FAILURE_MODES["cleanup"]
]


def case_id(failure: LocalFailure) -> str:
    then = f"+cleanup-{failure.cleanup}" if failure.cleanup else ""
    return f"{failure.step}-{failure.mode}{then}"


@pytest.fixture
def settings() -> StateMachineSettings:
    # A hung install fails on its heartbeat: 3 s instead of 15 minutes.
    return replace(StateMachineSettings.fast(), bootstrap_heartbeat_seconds=3)


def test_the_matrix_covers_every_step_and_mode() -> None:
    injected = {(f.step, f.mode) for f in CASES}
    every = {(step, mode) for step, modes in FAILURE_MODES.items() for mode in modes}
    assert injected | RECOVERED == every
    assert {f.step for f in CASES if f.cleanup} == set(STEPS)


# On a parent, each case repeats the fresh one's cleanup with a volume made from a
# snapshot: `make test` runs the fresh half, `make test-all` (CI) both.
@pytest.mark.parametrize(
    "on_parent",
    [
        pytest.param(False, id="fresh"),
        pytest.param(True, id="on-parent", marks=pytest.mark.slow),
    ],
)
@pytest.mark.parametrize("failure", CASES, ids=case_id)
def test_a_failure_leaves_nothing_after_the_janitor(
    aws: LocalAws, failure: LocalFailure, on_parent: bool
) -> None:
    request: dict[str, Any] = {"seed": seed_document(), "build_id": "doomed"}
    if on_parent:
        assert aws.build({"seed": seed_document(), "build_id": "parent"}).status == "SUCCEEDED"
        parent = aws.table.get_build("parent")
        assert parent is not None and parent.snapshot_id
        request.update(parent=parent.snapshot_id, force=True)
    result = aws.build(request, failure=failure)
    assert result.status == "FAILED"

    aws.run_janitor()  # its schedule's own settings: no age override
    aws.quiesce()

    assert (len(petal_instances(aws)), len(petal_volumes(aws)), len(locks(aws))) == (0, 0, 0)
    record = aws.table.get_build("doomed")
    assert record is not None, "every execution that started has a record"
    assert record.status == "FAILED"
    assert record.error is not None
    assert record.error.step == failure.step
    assert f"failed in step {failure.step}" in record.error.cause
    assert record.execution_arn == result.execution_arn
    if on_parent:
        completed = [s["SnapshotId"] for s in petal_snapshots(aws) if s["State"] == "completed"]
        assert request["parent"] in completed
