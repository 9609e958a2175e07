"""Builds that run side by side (`petal build --os A,B --arch X,Y`) on the emulator."""

from __future__ import annotations

from types import SimpleNamespace

from moto.stepfunctions.parser.api import ExecutionStatus
from moto.stepfunctions.parser.models import stepfunctions_parser_backends

from petal.local.emulator import ACCOUNT_ID, LocalAws, LocalFailure
from tests.workflow.conftest import seed_document
from tests.workflow.helpers import assert_nothing_left


def test_a_bootstrap_reports_while_another_execution_is_starting(aws: LocalAws) -> None:
    # moto looks for a task token through every execution's worker environment; an
    # execution started a moment ago has none yet, which used to make SendTask*
    # fail for every other build (the bootstrap's report was lost, and the build hung
    # until its heartbeat timeout).
    arn = aws.start_build(
        {"seed": seed_document(), "build_id": "parked"}, failure=LocalFailure("bootstrap", "hang")
    )
    record = aws.wait_for_record(
        "parked",
        lambda r: (
            r.step == "bootstrap"
            and bool(r.command_id)
            and aws.table.get_token(str(r.command_id)) is not None
        ),
    )
    parked = aws.table.get_token(str(record.command_id))
    assert parked is not None

    backend = stepfunctions_parser_backends[ACCOUNT_ID][aws.region]
    [machine] = [m for m in backend.state_machines if m.arn == aws.deployment.state_machine_arn]
    starting = SimpleNamespace(
        status=ExecutionStatus.RUNNING, exec_worker=SimpleNamespace(env=None)
    )
    machine.executions.insert(0, starting)
    try:
        sfn = aws.client("stepfunctions")
        sfn.send_task_heartbeat(taskToken=parked.task_token)
        sfn.send_task_failure(taskToken=parked.task_token, error="Stop", cause="test over")
    finally:
        machine.executions.remove(starting)
    result = aws.wait(arn)
    assert (result.status, result.error) == ("FAILED", "Stop")
    assert_nothing_left(aws)
