"""One builder cannot steer another build, on the emulator: builder A
writes into build B's command output under its own instance and into B's own stream,
and forged status and state events name B's command; B ignores all of it, then
finishes on its own events."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from petal.build.log_markers import sign_line
from petal.build.records import BuildRecord
from petal.deployment_contract import CALLBACK_FUNCTION, LOG_HEARTBEAT_FUNCTION
from petal.local.emulator import LocalAws, LocalFailure, command_status_event
from petal.local.event_bus import ec2_state_event
from petal.local.simulated_builder import write_builder_output
from tests.workflow.conftest import seed_document
from tests.workflow.helpers import assert_nothing_left

FORGED_LINES: list[str] = json.loads(
    (Path(__file__).resolve().parents[1] / "data" / "forged_events.json").read_text("utf-8")
)["forged_lines"]


def parked(aws: LocalAws, build_id: str) -> BuildRecord:
    """The build once its bootstrap waits on its parked token (the install hangs)."""
    return aws.wait_for_record(
        build_id,
        lambda r: (
            r.step == "bootstrap"
            and bool(r.command_id)
            and aws.table.get_token(str(r.command_id)) is not None
        ),
    )


def rejected_deliveries(aws: LocalAws, command_id: str) -> list[dict[str, Any]]:
    """log_heartbeat's answers to deliveries naming `command_id` that it refused."""
    return [
        result
        for module, _, result in aws.event_results
        if module == LOG_HEARTBEAT_FUNCTION
        and isinstance(result, dict)
        and result.get("command_id") == command_id
        and result.get("rejected")
    ]


def test_a_builder_cannot_steer_another_build(aws: LocalAws) -> None:
    hang = LocalFailure("bootstrap", "hang")
    a_arn = aws.start_build({"seed": seed_document(), "build_id": "a"}, failure=hang)
    b_arn = aws.start_build(
        {"seed": seed_document(), "build_id": "b", "os": "ubuntu2404"}, failure=hang
    )
    a, b = parked(aws, "a"), parked(aws, "b")
    assert a.instance_id and b.instance_id and a.command_id and b.command_id
    aws.quiesce()
    before = aws.table.get_build("b")
    assert before is not None
    refused_before = len(rejected_deliveries(aws, b.command_id))

    # Builder A's own instance in the name, build B's command: B's stream as A can write it.
    forged_stream = f"{b.command_id}/{a.instance_id}/bootstrap/stdout"
    write_builder_output(aws, forged_stream, FORGED_LINES)
    document, region = aws.deployment.document_name, aws.region
    without_document = command_status_event(
        b.command_id, b.instance_id, document, "Success", region
    )
    del without_document["detail"]["document-name"]
    for forged in (
        command_status_event(b.command_id, a.instance_id, document, "Success", region),
        command_status_event(a.command_id, b.instance_id, document, "Failed", region),
        without_document,
        ec2_state_event(b.instance_id, "stopped", region),
    ):
        aws.deliver_event(CALLBACK_FUNCTION, forged)
    aws.quiesce()

    after = aws.table.get_build("b")
    assert after is not None and after.status == "RUNNING"
    assert (after.progress, after.failure_line, after.bootstrap_step) == (
        before.progress,
        before.failure_line,
        before.bootstrap_step,
    )
    assert after.last_heartbeat_at == before.last_heartbeat_at
    refused = rejected_deliveries(aws, b.command_id)
    assert len(refused) > refused_before
    assert not any(result["heartbeat_sent"] for result in refused)
    for build_id in ("a", "b"):
        record = aws.table.get_build(build_id)
        token = aws.table.get_token(str(record.command_id)) if record else None
        assert token is not None and token.outcome is None, build_id
    callbacks = [
        result
        for module, _, result in aws.event_results
        if module == CALLBACK_FUNCTION and isinstance(result, dict)
    ]
    assert [r["action"] for r in callbacks[-4:]] == ["ignored"] * 4

    # Each build's own events still end it.
    aws.deliver_event(
        CALLBACK_FUNCTION,
        command_status_event(b.command_id, b.instance_id, document, "Success", region),
    )
    aws.deliver_event(
        CALLBACK_FUNCTION,
        command_status_event(a.command_id, a.instance_id, document, "Failed", region),
    )
    b_result, a_result = aws.wait(b_arn), aws.wait(a_arn)
    assert b_result.status == "SUCCEEDED", b_result.cause
    assert (a_result.status, a_result.error) == ("FAILED", "BootstrapFailed")
    assert_nothing_left(aws)


def test_a_builder_cannot_write_markers_into_another_builds_own_stream(aws: LocalAws) -> None:
    """Builder A knows build B's real stream name (DescribeLogStreams) and may write it:
    without B's log key, none of its lines beats B's heart, moves B's record or reaches
    B's failure cause."""
    hang = LocalFailure("bootstrap", "hang")
    a_arn = aws.start_build({"seed": seed_document(), "build_id": "a"}, failure=hang)
    b_arn = aws.start_build(
        {"seed": seed_document(), "build_id": "b", "os": "ubuntu2404"}, failure=hang
    )
    a, b = parked(aws, "a"), parked(aws, "b")
    assert a.command_id and b.command_id and b.instance_id
    aws.quiesce()
    before = aws.table.get_build("b")
    assert before is not None
    _, a_key = aws.table.get_build_and_log_key("a")
    assert a_key is not None

    b_stream = f"{b.command_id}/{b.instance_id}/bootstrap/stdout"
    write_builder_output(aws, b_stream, FORGED_LINES)
    write_builder_output(aws, b_stream, [sign_line(a_key, "b", line) for line in FORGED_LINES])
    write_builder_output(aws, b_stream, [sign_line(a_key, "a", line) for line in FORGED_LINES])
    aws.quiesce()

    after = aws.table.get_build("b")
    assert after is not None and after.status == "RUNNING"
    assert (after.progress, after.failure_line, after.bootstrap_step, after.last_heartbeat_at) == (
        before.progress,
        before.failure_line,
        before.bootstrap_step,
        before.last_heartbeat_at,
    )
    refused = rejected_deliveries(aws, b.command_id)
    assert len(refused) >= 3 and not any(result["heartbeat_sent"] for result in refused)

    # B's command fails (SSM says so): its cause holds none of A's words.
    document, region = aws.deployment.document_name, aws.region
    aws.deliver_event(
        CALLBACK_FUNCTION,
        command_status_event(b.command_id, b.instance_id, document, "Failed", region),
    )
    b_result = aws.wait(b_arn)
    assert (b_result.status, b_result.error) == ("FAILED", "BootstrapFailed")
    for words in ("evil.example", "curl", "pwned", "PETAL-MAC"):
        assert words not in str(b_result.cause)
    failed = aws.table.get_build("b")
    assert failed is not None and failed.error is not None
    assert "evil.example" not in failed.error.cause
    aws.deliver_event(
        CALLBACK_FUNCTION,
        command_status_event(a.command_id, str(a.instance_id), document, "Failed", region),
    )
    assert aws.wait(a_arn).status == "FAILED"
    assert_nothing_left(aws)
