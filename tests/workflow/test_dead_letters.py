"""No event lost: what a function keeps failing on waits in its dead-letter queue and
`redrive` replays it; with every callback event lost, the janitor's reconciler still
ends each build (petal/build/redrive.py, petal/build/janitor.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import lambdas.callback
import lambdas.intake
from petal.aws.deployment import DeadLetterQueue, dead_letter_queues
from petal.build.redrive import RedriveReport, redrive
from petal.deployment_contract import CALLBACK_FUNCTION, INTAKE_FUNCTION
from petal.local.emulator import LocalAws, LocalFailure
from petal.local.event_bus import DROPPED
from tests.workflow.conftest import SEED_FILE, seed_document
from tests.workflow.helpers import assert_nothing_left, executions


def queues(aws: LocalAws, name: str | None = None) -> list[DeadLetterQueue]:
    """The queues as the CLI finds them: from the deployment's stack outputs."""
    found = dead_letter_queues(aws.deployment.outputs())
    return [q for q in found if name is None or q.name == name]


def messages(aws: LocalAws, module: str) -> int:
    url = aws.deployment.dead_letter_queues[module]
    attributes = aws.client("sqs").get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )


def run_redrive(aws: LocalAws, *, dry_run: bool = False, name: str | None = None) -> RedriveReport:
    return redrive(
        queues(aws, name),
        sqs=aws.client("sqs"),
        lambda_client=aws.client("lambda"),
        dry_run=dry_run,
    )


@pytest.fixture
def broken_callback(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """The callback function fails on every event, until the test calls undo()."""

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("callback broken (injected by the test)")

    monkeypatch.setattr(lambdas.callback, "handle_event", broken)
    yield monkeypatch


def test_a_callback_that_keeps_failing_leaves_its_event_for_redrive(
    aws: LocalAws, broken_callback: pytest.MonkeyPatch
) -> None:
    arn = aws.start_build({"seed": seed_document(), "build_id": "dead-lettered"})
    aws.wait_for_record("dead-lettered", lambda r: bool(r.command_id))
    aws.quiesce()

    # Tried three times (Lambda's retries), then kept: the build still waits.
    failures = [
        r for m, e, r in aws.event_results if m == CALLBACK_FUNCTION and isinstance(r, Exception)
    ]
    assert len(failures) == 3
    assert messages(aws, CALLBACK_FUNCTION) == 1
    record = aws.table.get_build("dead-lettered")
    assert record is not None and record.status == "RUNNING" and record.step == "bootstrap"

    # A dry run lists it and leaves it where it is.
    preview = run_redrive(aws, dry_run=True)
    [(queue, action, why)] = [(r.queue, r.action, r.detail) for r in preview.replays]
    assert (queue, action) == (CALLBACK_FUNCTION, "would replay")
    assert "RetriesExhausted after 3 attempt(s)" in why and "callback broken" in why
    assert messages(aws, CALLBACK_FUNCTION) == 1

    # Still broken: the replay fails, and the event stays for the next redrive.
    again = run_redrive(aws, name=CALLBACK_FUNCTION)
    assert [r.action for r in again.replays] == ["failed"] and again.failed
    assert messages(aws, CALLBACK_FUNCTION) == 1

    broken_callback.undo()  # the fix is deployed
    report = run_redrive(aws)

    [replay] = report.replays
    assert replay.action == "replayed"
    assert replay.result["action"] == "succeeded"
    assert "command" in replay.event and "Success" in replay.event
    assert messages(aws, CALLBACK_FUNCTION) == 0
    result = aws.wait(arn)
    assert result.status == "SUCCEEDED", result.cause
    assert_nothing_left(aws)
    # Nothing left to replay, and replaying the same event again changes nothing.
    assert run_redrive(aws).replays == []
    event = next(e for m, e, _ in aws.event_results if m == CALLBACK_FUNCTION)
    assert aws.invoke(CALLBACK_FUNCTION, event)["action"] == "ignored"
    final = aws.table.get_build("dead-lettered")
    assert final is not None and final.status == "SUCCEEDED"


def test_an_intake_failure_keeps_the_upload_and_redrive_starts_the_build_once(
    aws: LocalAws, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("intake broken (injected by the test)")

    monkeypatch.setattr(lambdas.intake, "on_seed_uploaded", broken)
    event = aws.upload_seed("seeds/workload-basic.yaml", SEED_FILE.read_bytes())
    aws.quiesce()
    assert executions(aws) == []
    assert messages(aws, INTAKE_FUNCTION) == 1

    monkeypatch.undo()
    report = run_redrive(aws, name=INTAKE_FUNCTION)

    [replay] = report.replays
    assert replay.action == "replayed" and replay.result["started"] is True
    assert "seeds/workload-basic.yaml" in replay.event
    [execution] = executions(aws)
    # Redriving again, or the same upload delivered again, starts nothing more.
    assert run_redrive(aws).replays == []
    assert aws.invoke(INTAKE_FUNCTION, event)["started"] is False
    assert len(executions(aws)) == 1
    result = aws.wait(execution["executionArn"])
    assert result.status == "SUCCEEDED", result.cause


# One build per emulator: moto (5.2.5, as the emulator drives it) adds an earlier
# command's instances to a later SendCommand's, so a second build's simulated agent
# would also act on the first builder.
@pytest.mark.parametrize(
    ("failure", "status", "error", "in_cause"),
    [
        (None, "SUCCEEDED", None, None),
        (LocalFailure("bootstrap", "failed"), "FAILED", "BootstrapFailed", "spack install failed"),
        (LocalFailure("bootstrap", "timed-out"), "FAILED", "BootstrapTimedOut", "ran out of time"),
        (LocalFailure("bootstrap", "terminated"), "FAILED", "BuilderStopped", "is terminated"),
    ],
    ids=["success", "failed", "timed-out", "builder-terminated"],
)
def test_with_every_callback_event_lost_one_janitor_run_ends_the_build(
    aws: LocalAws,
    failure: LocalFailure | None,
    status: str,
    error: str | None,
    in_cause: str | None,
) -> None:
    aws.lose_events(CALLBACK_FUNCTION)
    arn = aws.start_build({"seed": seed_document(), "build_id": "quiet"}, failure=failure)
    aws.wait_for_record("quiet", lambda r: bool(r.command_id))
    aws.quiesce()
    # The command has ended (the agent is done), and no event told anyone.
    lost = [r for m, _, r in aws.event_results if m == CALLBACK_FUNCTION]
    assert lost and all(r is DROPPED for r in lost)
    record = aws.table.get_build("quiet")
    assert record is not None and (record.status, record.step) == ("RUNNING", "bootstrap")

    report = aws.run_janitor()

    [reconciled] = report["reconciled"]
    assert reconciled.startswith("quiet: ")
    assert report["reconcile_errors"] == []
    result = aws.wait(arn)
    assert (result.status, result.error) == (status, error), result.cause
    if in_cause:
        assert in_cause in str(result.cause)
    assert_nothing_left(aws)
    final = aws.table.get_build("quiet")
    assert final is not None and final.status == status
    assert any("no event had ended the bootstrap" in note for note in final.notes)
    # A second run finds nothing left to reconcile.
    assert aws.run_janitor()["reconciled"] == []


def test_the_reconciler_leaves_a_running_install_alone(aws: LocalAws) -> None:
    aws.start_build(
        {"seed": seed_document(), "build_id": "busy"}, failure=LocalFailure("bootstrap", "hang")
    )
    aws.wait_for_record(
        "busy", lambda r: bool(r.command_id) and aws.table.get_token(str(r.command_id)) is not None
    )

    report = aws.run_janitor()

    assert report["reconciled"] == [] and report["reconcile_errors"] == []
    record = aws.table.get_build("busy")
    assert record is not None and record.status == "RUNNING" and record.step == "bootstrap"
