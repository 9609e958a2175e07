"""Callback events arriving twice, late or out of order; two builds of one stack."""

from __future__ import annotations

import pytest

from petal.deployment_contract import CALLBACK_FUNCTION, TAG_BUILD_ID
from petal.local.emulator import LocalAws, LocalFailure, SimulatedInstall, command_status_event
from tests.workflow.conftest import seed_document
from tests.workflow.helpers import assert_nothing_left, locks, petal_instances, petal_snapshots


@pytest.fixture
def install() -> SimulatedInstall:
    return SimulatedInstall(duplicate_events=True)


def callback_actions(aws: LocalAws) -> list[tuple[str, str]]:
    return [
        (event["detail"].get("status") or event["detail"].get("state"), result["action"])
        for module, event, result in aws.event_results
        if module == CALLBACK_FUNCTION and isinstance(result, dict)
    ]


def test_duplicate_and_out_of_order_status_events_are_harmless(aws: LocalAws) -> None:
    result = aws.build({"seed": seed_document(), "build_id": "noisy"})

    assert result.status == "SUCCEEDED", result.cause
    actions = callback_actions(aws)
    # Success, Success again, a stale InProgress, a conflicting Failed; then the
    # builder's own termination by cleanup (shutting-down, terminated).
    assert actions[:4] == [
        ("Success", "succeeded"),
        ("Success", "ignored"),
        ("InProgress", "ignored"),
        ("Failed", "ignored"),
    ]
    assert set(actions[4:]) == {("shutting-down", "ignored"), ("terminated", "ignored")}
    assert not [r for m, _, r in aws.event_results if isinstance(r, Exception)]
    assert len(petal_snapshots(aws)) == 1
    assert_nothing_left(aws)


def test_an_event_for_a_finished_build_changes_nothing(aws: LocalAws) -> None:
    result = aws.build({"seed": seed_document(), "build_id": "done-already"})
    record = aws.table.get_build("done-already")
    assert record is not None and record.command_id and record.instance_id
    late = command_status_event(
        record.command_id, record.instance_id, aws.deployment.document_name, "Failed", aws.region
    )

    outcome = aws.invoke(CALLBACK_FUNCTION, late)

    assert outcome["action"] == "ignored"
    assert result.status == "SUCCEEDED"
    after = aws.table.get_build("done-already")
    assert after is not None and after.status == "SUCCEEDED"


def test_a_second_build_of_the_same_stack_is_refused(aws: LocalAws) -> None:
    document = seed_document()
    first = aws.start_build(
        {"seed": document, "build_id": "first"}, failure=LocalFailure("bootstrap", "hang")
    )
    running = aws.wait_for_record("first", lambda r: r.step == "bootstrap" and bool(r.command_id))

    second = aws.build({"seed": document, "build_id": "second"})

    assert second.status == "FAILED"
    assert second.error == "BuildAlreadyRunning"
    assert "build first" in str(second.cause)
    refused = aws.table.get_build("second")
    assert refused is not None and refused.status == "FAILED"
    assert refused.error is not None and refused.error.step == "prepare"
    assert all(
        {t["Key"]: t["Value"] for t in i["Tags"]}[TAG_BUILD_ID] == "first"
        for i in petal_instances(aws)
    )
    [(_, holder)] = locks(aws)
    assert holder.build_id == "first"

    # The first build's command succeeds after all: it finishes normally.
    assert running.command_id and running.instance_id
    aws.deliver_event(
        CALLBACK_FUNCTION,
        command_status_event(
            running.command_id,
            running.instance_id,
            aws.deployment.document_name,
            "Success",
            aws.region,
        ),
    )
    finished = aws.wait(first)
    assert finished.status == "SUCCEEDED", finished.cause
    assert_nothing_left(aws)


def test_the_install_reports_progress_on_the_build_record(aws: LocalAws) -> None:
    arn = aws.start_build(
        {"seed": seed_document(), "build_id": "watched"},
        failure=LocalFailure("bootstrap", "hang"),
    )
    record = aws.wait_for_record("watched", lambda r: r.progress is not None)
    assert record.step == "bootstrap"
    assert record.bootstrap_step == "install"
    assert record.progress is not None and record.progress.done == 1
    assert record.progress.total == 3
    assert record.progress.spec == "zlib@=1.3.1"  # the rendered spec: exact
    assert record.last_heartbeat_at is not None
    aws.stop_execution(arn)
