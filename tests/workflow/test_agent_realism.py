"""What the SSM agent and its events do in AWS, acted out by the emulator: batched log
events, a command that ends before its token is parked, a command never delivered."""

from __future__ import annotations

from dataclasses import replace

import pytest

from petal.build.definition import StateMachineSettings
from petal.build.log_events import decode_subscription_event
from petal.deployment_contract import CALLBACK_FUNCTION, LOG_HEARTBEAT_FUNCTION
from petal.errors import TaskTokenNotParked
from petal.local.emulator import LocalAws, SimulatedInstall
from tests.workflow.conftest import seed_document
from tests.workflow.helpers import assert_nothing_left


@pytest.fixture
def settings() -> StateMachineSettings:
    # A lost status event shows as a heartbeat timeout: let it come soon.
    return replace(StateMachineSettings.fast(), bootstrap_heartbeat_seconds=3)


def test_progress_reaches_the_record_from_events_of_many_lines(aws: LocalAws) -> None:
    result = aws.build({"seed": seed_document(), "build_id": "batched"})
    assert result.status == "SUCCEEDED", result.cause

    record = aws.table.get_build("batched")
    assert record is not None
    assert record.bootstrap_step == "done"
    assert record.progress is not None and record.progress.done == record.progress.total
    deliveries = [
        decode_subscription_event(event)
        for module, event, _ in aws.event_results
        if module == LOG_HEARTBEAT_FUNCTION
    ]
    messages = [m for batch in deliveries if batch is not None for _, m in batch.messages]
    # As the agent uploads: lines ending in a newline, markers inside events of several
    # lines, and several events in one delivery.
    assert messages and all(m.endswith("\n") for m in messages)
    assert any("\nPETAL-" in m for m in messages)
    assert any(batch is not None and len(batch.messages) > 1 for batch in deliveries)


@pytest.mark.parametrize("install", [SimulatedInstall(finish_before_parked=True)])
def test_a_command_that_ends_before_its_token_is_parked_still_completes(aws: LocalAws) -> None:
    result = aws.build({"seed": seed_document(), "build_id": "quick"})

    assert result.status == "SUCCEEDED", result.cause
    outcomes = [outcome for module, _, outcome in aws.event_results if module == CALLBACK_FUNCTION]
    # The first delivery came before the token was parked, and failed so as to come again.
    assert isinstance(outcomes[0], TaskTokenNotParked)
    assert any(isinstance(o, dict) and o.get("action") == "succeeded" for o in outcomes[1:])
    assert_nothing_left(aws)


@pytest.mark.parametrize("install", [SimulatedInstall(agent_unreachable=True)])
def test_a_command_never_delivered_is_not_reported_as_a_slow_install(aws: LocalAws) -> None:
    result = aws.build({"seed": seed_document(), "build_id": "unreachable"})

    assert result.status == "FAILED"
    assert result.error == "BootstrapNotDelivered"
    cause = str(result.cause)
    assert "could not deliver the bootstrap command" in cause
    assert "ran out of time" not in cause and "timeout_minutes" not in cause
    assert "reach Systems Manager" in cause
    assert_nothing_left(aws)
