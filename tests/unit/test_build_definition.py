"""statemachines/build.asl.json: what every state must have, checked on the file itself."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from petal.build.definition import (
    NUMERIC_PLACEHOLDERS,
    StateMachineSettings,
    definition_substitutions,
    placeholders,
    render_definition,
)
from petal.deployment_contract import STATE_MACHINE_FILE, STEP_FUNCTIONS

REPO_ROOT = Path(__file__).resolve().parents[2]
TEXT = (REPO_ROOT / STATE_MACHINE_FILE).read_text()
DEFINITION: dict[str, Any] = json.loads(TEXT)
STATES: dict[str, Any] = DEFINITION["States"]
TASKS = {name: state for name, state in STATES.items() if state["Type"] == "Task"}
LAMBDA_ERRORS = {
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
}
# Exception class names the handlers raise (petal.aws.errors), which Retry matches.
HANDLER_ERRORS = {"RetryableAwsError", "CleanupPending"}


def test_the_file_is_json_and_uses_exactly_the_known_placeholders() -> None:
    assert placeholders(TEXT) == set(STEP_FUNCTIONS) | set(NUMERIC_PLACEHOLDERS)


def test_substitutions_cover_every_placeholder() -> None:
    arns = {key: f"arn:aws:lambda:us-east-1:123456789012:function:{key}" for key in STEP_FUNCTIONS}
    rendered = json.loads(
        render_definition(TEXT, definition_substitutions(arns, StateMachineSettings()))
    )
    assert rendered["States"]["Prepare"]["Resource"].endswith(":function:PrepareFunctionArn")
    assert "${" not in json.dumps(rendered)


def test_a_missing_arn_is_named() -> None:
    with pytest.raises(ValueError, match="LaunchFunctionArn"):
        definition_substitutions({"PrepareFunctionArn": "x"}, StateMachineSettings())


def test_bad_settings_are_named() -> None:
    with pytest.raises(ValueError, match="ready_max_attempts"):
        StateMachineSettings(ready_max_attempts=0).numbers()


@pytest.mark.parametrize("name", sorted(TASKS))
def test_every_task_has_a_timeout_a_retry_and_a_catch(name: str) -> None:
    state = TASKS[name]
    assert "TimeoutSeconds" in state or "TimeoutSecondsPath" in state
    retried = {error for retrier in state["Retry"] for error in retrier["ErrorEquals"]}
    assert retried >= LAMBDA_ERRORS
    assert "RetryableAwsError" in retried
    assert retried <= LAMBDA_ERRORS | HANDLER_ERRORS
    [catcher] = state["Catch"]
    assert catcher["ErrorEquals"] == ["States.ALL"]
    if name == "CleanUpRecordFailure":
        assert catcher["Next"] == "ExplainCleanupFailure"
    elif name.startswith("CleanUp"):
        # A failed cleanup still records the build FAILED before the execution fails.
        assert catcher["Next"] == "CleanUpRecordFailure"
    else:
        assert catcher["Next"] == "CleanUpAfterFailure"
        # The Catch writes the failed step's name: cleanup reports it.
        assert catcher["ResultPath"].startswith("$.failure.")


def test_catch_keys_are_the_step_names_the_record_uses() -> None:
    keys = {
        state["Catch"][0]["ResultPath"].removeprefix("$.failure.")
        for name, state in TASKS.items()
        if not name.startswith("CleanUp")
    }
    assert keys == {"prepare", "launch", "ready", "bootstrap", "snapshot"}


def test_the_install_waits_by_callback_with_a_heartbeat() -> None:
    bootstrap = STATES["Bootstrap"]
    assert bootstrap["Resource"] == "arn:aws:states:::lambda:invoke.waitForTaskToken"
    assert bootstrap["Parameters"]["Payload"]["task_token.$"] == "$$.Task.Token"
    assert bootstrap["TimeoutSecondsPath"] == "$.build.task_timeout_seconds"
    assert bootstrap["HeartbeatSecondsPath"] == "$.settings.bootstrap_heartbeat_seconds"


def test_waits_are_bounded_loops() -> None:
    for check, choice, wait in (
        ("CheckReady", "BuilderReady", "WaitForBuilder"),
        # The snapshot's first wait is WaitForSnapshot; later ones are the check's own.
        ("CheckSnapshot", "SnapshotCompleted", "WaitLongerForSnapshot"),
    ):
        assert STATES[check]["Next"] == choice
        assert STATES[choice]["Default"] == wait
        assert STATES[wait]["Next"] == check
        assert "max_attempts.$" in STATES[check]["Parameters"]
    assert STATES["WaitForSnapshot"]["Next"] == "CheckSnapshot"
    assert STATES["WaitLongerForSnapshot"]["SecondsPath"] == "$.snapshot.wait_seconds"


def test_it_ends_with_the_outcome_or_a_fail_with_a_cause() -> None:
    ends = {name for name, s in STATES.items() if s["Type"] == "Fail" or s.get("End")}
    assert ends == {"Reused", "Built", "BuildFailed", "CleanupFailed"}
    assert STATES["Built"]["OutputPath"] == "$.outcome"
    assert STATES["BuildFailed"]["CausePath"] == "$.outcome.cause"


def test_asl_validator_accepts_the_file() -> None:
    npx = shutil.which("npx")
    assert npx, "npx is needed (make setup-dev installs node_modules)"
    result = subprocess.run(
        [npx, "--no-install", "asl-validator", "--json-path", STATE_MACHINE_FILE],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_definitions_defaults_are_the_stacks() -> None:
    # The benchmark and the docs quote StateMachineSettings(); a deployment uses the
    # stack's settings: they must be the same numbers.
    from stacks.settings import DEFAULTS

    ours = StateMachineSettings()
    assert (ours.snapshot_wait_seconds, ours.snapshot_max_attempts) == (
        DEFAULTS["snapshotWaitSeconds"],
        DEFAULTS["snapshotMaxAttempts"],
    )
    assert ours.snapshot_max_wait_seconds >= DEFAULTS["snapshotWaitSeconds"]
