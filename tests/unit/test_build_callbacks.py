"""Completing the parked task from events (petal.build.callbacks), with moto's
DynamoDB and a recording Step Functions stand-in."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from petal.build.callbacks import bootstrap_failure_cause, handle_event, on_log_batch
from petal.build.log_events import (
    BadLogDelivery,
    LogBatch,
    decode_subscription_event,
    encode_subscription_event,
)
from petal.build.log_markers import LogRead, read_log, sign_line
from petal.build.records import LOG_KEY_ATTRIBUTE, BuildRecord, iso
from petal.build.table import BuildTable, table_definition
from petal.errors import TaskTokenNotParked

NOW = datetime(2025, 3, 1, tzinfo=UTC)
DOCUMENT = "petal-bootstrap"
# Build b1's log key, which its builder tags its markers with.
KEY = "5c" * 32


def signed(*texts: str, key: str = KEY, build_id: str = "b1") -> str:
    """Marker lines as b1's bootstrap prints them (each ending in a newline)."""
    return "".join(sign_line(key, build_id, text) + "\n" for text in texts)


def lines(*texts: str, build_id: str = "b1") -> list[str]:
    """The build log's lines as the tail reader returns them: b1's markers."""
    return signed(*texts, build_id=build_id).splitlines()


class FakeStepFunctions:
    def __init__(self, stale: bool = False) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.stale = stale

    def _call(self, name: str, **kwargs: Any) -> dict[str, Any]:
        self.calls.append((name, kwargs))
        if self.stale:
            raise ClientError({"Error": {"Code": "TaskTimedOut", "Message": "gone"}}, name)
        return {}

    def send_task_success(self, **kwargs: Any) -> dict[str, Any]:
        return self._call("success", **kwargs)

    def send_task_failure(self, **kwargs: Any) -> dict[str, Any]:
        return self._call("failure", **kwargs)

    def send_task_heartbeat(self, **kwargs: Any) -> dict[str, Any]:
        return self._call("heartbeat", **kwargs)


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[BuildTable, Any]]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        dynamodb.create_table(**table_definition("builds"))
        table = BuildTable(dynamodb, "builds")
        table.create_build(
            BuildRecord(
                build_id="b1",
                status="RUNNING",
                started_at=iso(NOW),
                step="bootstrap",
                command_id="cmd-1",
                instance_id="i-1",
                execution_arn="A",
            )
        )
        table.update_build("b1", {LOG_KEY_ATTRIBUTE: KEY})
        table.park_token(
            "cmd-1",
            task_token="T1",
            build_id="b1",
            instance_id="i-1",
            execution_arn="A",
            now=NOW,
            expires_at=NOW + timedelta(days=1),
        )
        yield table, boto3.client("ec2", region_name="us-east-1")


def ssm_event(
    status: str,
    command_id: str = "cmd-1",
    document: str = DOCUMENT,
    instance_id: str = "i-1",
    **extra: str,
) -> dict[str, Any]:
    return {
        "detail-type": "EC2 Command Invocation Status-change Notification",
        "source": "aws.ssm",
        "detail": {
            "command-id": command_id,
            "instance-id": instance_id,
            "document-name": document,
            "status": status,
            **extra,
        },
    }


def launch_builder(ec2: Any, build_id: str) -> str:
    image = ec2.register_image(Name="builder-image", RootDeviceName="/dev/xvda")["ImageId"]
    return str(
        ec2.run_instances(
            ImageId=image,
            MinCount=1,
            MaxCount=1,
            TagSpecifications=[
                {
                    "ResourceType": "instance",
                    "Tags": [
                        {"Key": "petal:managed", "Value": "true"},
                        {"Key": "petal:role", "Value": "builder"},
                        {"Key": "petal:build-id", "Value": build_id},
                    ],
                }
            ],
        )["Instances"][0]["InstanceId"]
    )


def log_batch(*messages: str, stream: str = "cmd-1/i-1/bootstrap/stdout") -> LogBatch:
    """A subscription delivery of agent-shaped events (several lines each)."""
    batch = decode_subscription_event(
        encode_subscription_event(
            log_group="/petal/builds",
            log_stream=stream,
            messages=[(1_700_000_000_000 + i, m) for i, m in enumerate(messages)],
            owner="123456789012",
        )
    )
    assert batch is not None
    return batch


def handle(
    aws: tuple[BuildTable, Any],
    sfn: FakeStepFunctions,
    event: dict[str, Any],
    tail: list[str] | None = None,
) -> dict[str, Any]:
    table, ec2 = aws
    return handle_event(
        event,
        table=table,
        sfn=sfn,
        ec2=ec2,
        read_tail=lambda command, instance: tail or [],
        document_name=DOCUMENT,
        now=NOW,
    ).to_json()


def test_success_completes_the_task_once(aws: tuple[BuildTable, Any]) -> None:
    sfn = FakeStepFunctions()
    assert handle(aws, sfn, ssm_event("Success"))["action"] == "succeeded"
    assert handle(aws, sfn, ssm_event("Success"))["action"] == "ignored"
    assert handle(aws, sfn, ssm_event("Failed"))["action"] == "ignored"
    assert [name for name, _ in sfn.calls] == ["success"]
    assert sfn.calls[0][1]["taskToken"] == "T1"


def test_a_failure_carries_the_step_and_the_log_tail(aws: tuple[BuildTable, Any]) -> None:
    sfn = FakeStepFunctions()
    tail = [
        "==> Installing zlib",
        "==> Error: it broke",
        *lines(
            "PETAL-TAIL ==> Installing zlib",
            "PETAL-TAIL ==> Error: it broke",
            "PETAL-FAILED install: spack install failed",
        ),
    ]
    assert handle(aws, sfn, ssm_event("Failed"), tail)["action"] == "failed"
    [(_name, call)] = sfn.calls
    assert call["error"] == "BootstrapFailed"
    assert "failed in its 'install' step: spack install failed" in call["cause"]
    assert call["cause"].endswith(
        "Last lines of the build log:\n==> Installing zlib\n==> Error: it broke"
    )
    assert "PETAL-MAC" not in call["cause"]


@pytest.mark.parametrize(
    ("status", "error"),
    [("TimedOut", "BootstrapTimedOut"), ("Cancelled", "BootstrapCancelled")],
)
def test_other_final_statuses_fail_the_task(
    aws: tuple[BuildTable, Any], status: str, error: str
) -> None:
    sfn = FakeStepFunctions()
    handle(aws, sfn, ssm_event(status), [*lines("PETAL-STEP install"), "==> Installing zlib"])
    assert sfn.calls[0][1]["error"] == error


TIMEOUTS = [
    # (event status, its status-details, the build log, the error, words of the cause)
    ("TimedOut", None, [], "BootstrapNotDelivered", "could not deliver"),
    ("TimedOut", "DeliveryTimedOut", [], "BootstrapNotDelivered", "could not deliver"),
    ("DeliveryTimedOut", None, [], "BootstrapNotDelivered", "never received it"),
    ("Delivery Timed Out", None, [], "BootstrapNotDelivered", "could not deliver"),
    ("Undeliverable", None, [], "BootstrapNotDelivered", "could not deliver"),
    ("TimedOut", None, lines("PETAL-STEP install"), "BootstrapTimedOut", "ran out of time"),
    ("TimedOut", "ExecutionTimedOut", [], "BootstrapTimedOut", "ran out of time"),
    ("Execution Timed Out", None, ["x"], "BootstrapTimedOut", "ran out of time"),
    # Lines the bootstrap did not vouch for do not make it look as if it ran.
    ("TimedOut", None, ["PETAL-STEP install", "x"], "BootstrapNotDelivered", "could not deliver"),
    (
        "TimedOut",
        None,
        lines("PETAL-STEP install", build_id="b2"),
        "BootstrapNotDelivered",
        "could not deliver",
    ),
]


@pytest.mark.parametrize(("status", "details", "tail", "error", "words"), TIMEOUTS)
def test_a_command_never_delivered_is_not_reported_as_a_slow_install(
    aws: tuple[BuildTable, Any],
    status: str,
    details: str | None,
    tail: list[str],
    error: str,
    words: str,
) -> None:
    sfn = FakeStepFunctions()
    extra = {"status-details": details} if details else {}
    assert handle(aws, sfn, ssm_event(status, **extra), tail)["action"] == "failed"
    [(_name, call)] = sfn.calls
    assert call["error"] == error
    assert words in call["cause"]
    if error == "BootstrapNotDelivered":
        assert "ran out of time" not in call["cause"]


def test_a_command_that_ends_before_its_token_is_parked_is_delivered_again(
    aws: tuple[BuildTable, Any],
) -> None:
    table, ec2 = aws
    instance = launch_builder(ec2, "b2")
    table.create_build(
        BuildRecord(
            build_id="b2", status="RUNNING", started_at=iso(NOW), step="ready", instance_id=instance
        )
    )
    sfn = FakeStepFunctions()
    early = ssm_event("Success", command_id="cmd-2", instance_id=instance)
    # Lambda runs a failed asynchronous invocation again: the event is not dropped.
    with pytest.raises(TaskTokenNotParked):
        handle(aws, sfn, early)
    assert sfn.calls == []
    table.park_token(
        "cmd-2",
        task_token="T2",
        build_id="b2",
        instance_id=instance,
        execution_arn="A2",
        now=NOW,
        expires_at=NOW + timedelta(days=1),
    )
    assert handle(aws, sfn, early)["action"] == "succeeded"
    assert sfn.calls == [("success", sfn.calls[0][1])]
    assert sfn.calls[0][1]["taskToken"] == "T2"


def test_a_command_no_build_will_park_a_token_for_is_ignored(
    aws: tuple[BuildTable, Any],
) -> None:
    _, ec2 = aws
    sfn = FakeStepFunctions()
    # Not a builder, and a builder whose build already names another command.
    assert handle(aws, sfn, ssm_event("Success", command_id="x"))["action"] == "ignored"
    instance = launch_builder(ec2, "b1")
    other = ssm_event("Success", command_id="old", instance_id=instance)
    assert handle(aws, sfn, other)["action"] == "ignored"
    assert sfn.calls == []


def test_events_petal_does_not_wait_for_are_ignored(aws: tuple[BuildTable, Any]) -> None:
    sfn = FakeStepFunctions()
    assert handle(aws, sfn, ssm_event("InProgress"))["action"] == "ignored"
    assert handle(aws, sfn, ssm_event("Success", command_id="other"))["action"] == "ignored"
    assert (
        handle(aws, sfn, ssm_event("Success", document="AWS-RunShellScript"))["action"] == "ignored"
    )
    assert handle(aws, sfn, {"detail-type": "Something else", "detail": {}})["action"] == "ignored"
    assert sfn.calls == []


def test_a_stale_token_is_logged_not_raised(aws: tuple[BuildTable, Any]) -> None:
    sfn = FakeStepFunctions(stale=True)
    assert handle(aws, sfn, ssm_event("Success"))["action"] == "stale"
    # Not re-sent by a duplicate delivery either.
    assert handle(aws, sfn, ssm_event("Success"))["action"] == "ignored"


def test_a_terminated_builder_fails_its_running_build(aws: tuple[BuildTable, Any]) -> None:
    table, ec2 = aws
    instance = launch_builder(ec2, "b1")
    table.update_build("b1", {"instance_id": instance})
    table.park_token(
        "cmd-1",
        task_token="T1",
        build_id="b1",
        instance_id=instance,
        execution_arn="A",
        now=NOW,
        expires_at=NOW + timedelta(days=1),
    )
    # EC2 is asked whether the builder really went away.
    ec2.terminate_instances(InstanceIds=[instance])
    sfn = FakeStepFunctions()
    event = {
        "detail-type": "EC2 Instance State-change Notification",
        "source": "aws.ec2",
        "detail": {"instance-id": instance, "state": "shutting-down"},
    }
    assert handle(aws, sfn, event)["action"] == "failed"
    assert sfn.calls[0][1]["error"] == "BuilderStopped"
    assert (
        handle(aws, sfn, {**event, "detail": {"instance-id": instance, "state": "terminated"}})[
            "action"
        ]
        == "ignored"
    )
    # A late SSM failure of the same command changes nothing.
    assert handle(aws, sfn, ssm_event("Failed"))["action"] == "ignored"
    assert len(sfn.calls) == 1


def test_an_instance_that_is_not_a_builder_is_ignored(aws: tuple[BuildTable, Any]) -> None:
    _, ec2 = aws
    image = ec2.register_image(Name="other-image", RootDeviceName="/dev/xvda")["ImageId"]
    instance = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1)["Instances"][0][
        "InstanceId"
    ]
    sfn = FakeStepFunctions()
    event = {
        "detail-type": "EC2 Instance State-change Notification",
        "source": "aws.ec2",
        "detail": {"instance-id": instance, "state": "terminated"},
    }
    assert handle(aws, sfn, event)["action"] == "ignored"
    assert (
        handle(aws, sfn, {**event, "detail": {"instance-id": instance, "state": "running"}})[
            "action"
        ]
        == "ignored"
    )


def test_log_markers_beat_the_heart_and_record_progress(aws: tuple[BuildTable, Any]) -> None:
    table, _ = aws
    sfn = FakeStepFunctions()
    event = encode_subscription_event(
        log_group="/petal/builds",
        log_stream="cmd-1/i-1/bootstrap/stdout",
        messages=[
            (1_700_000_000_000, signed("PETAL-STEP install")),
            (1_700_000_001_000, signed("PETAL-PROGRESS 2/3 bzip2@1.0.8")),
            (1_700_000_002_000, signed("PETAL-HEARTBEAT 1700000002")),
        ],
        owner="123456789012",
    )
    batch = decode_subscription_event(event)
    assert batch is not None and batch.command_id == "cmd-1"
    result = on_log_batch(batch, table=table, sfn=sfn, now=NOW)
    assert result.heartbeat_sent and result.events == 3
    assert [name for name, _ in sfn.calls] == ["heartbeat"]
    record = table.get_build("b1")
    assert record is not None
    assert record.bootstrap_step == "install"
    assert record.progress is not None and (record.progress.done, record.progress.total) == (2, 3)
    assert record.last_heartbeat_at == "2023-11-14T22:13:22Z"


def test_markers_inside_an_agent_event_of_many_lines_are_read(
    aws: tuple[BuildTable, Any],
) -> None:
    table, _ = aws
    sfn = FakeStepFunctions()
    # What the SSM agent uploads: every line of about a second in one event.
    batch = log_batch(
        f"==> Installing zlib\n{signed('PETAL-STEP install')}==> zlib: Executing phase: "
        f"'build'\n{signed('PETAL-PROGRESS 1/3 zlib@1.3')}  checking for gcc... gcc\n",
        f"{signed('PETAL-HEARTBEAT 1700000002')}==> bzip2: Successfully installed\n"
        f"{signed('PETAL-PROGRESS 2/3 bzip2@1.0.8')}==> Installing xz\n",
    )
    result = on_log_batch(batch, table=table, sfn=sfn, now=NOW)
    assert result.events == 4
    assert [name for name, _ in sfn.calls] == ["heartbeat"]
    record = table.get_build("b1")
    assert record is not None
    assert record.bootstrap_step == "install"
    assert record.progress is not None
    assert (record.progress.done, record.progress.total, record.progress.spec) == (
        2,
        3,
        "bzip2@1.0.8",
    )


def test_a_marker_cut_at_an_event_boundary_is_not_misread(
    aws: tuple[BuildTable, Any],
) -> None:
    table, _ = aws
    sfn = FakeStepFunctions()
    cut = signed("PETAL-PROGRESS 2/3 bzip2@1.0.8")
    on_log_batch(
        log_batch(f"{signed('PETAL-PROGRESS 1/3 zlib@1.3')}==> zlib: installed\n{cut[:17]}"),
        table=table,
        sfn=sfn,
        now=NOW,
    )
    record = table.get_build("b1")
    assert record is not None and record.progress is not None
    # Not "bzi": the piece after the last newline is not a whole line.
    assert (record.progress.done, record.progress.spec) == (1, "zlib@1.3")
    # The rest of that line opens the next event; it is no marker either.
    rest = cut[17:] + signed("PETAL-PROGRESS 3/3 xz@5.4")
    on_log_batch(log_batch(rest), table=table, sfn=sfn, now=NOW)
    record = table.get_build("b1")
    assert record is not None and record.progress is not None
    assert (record.progress.done, record.progress.spec) == (3, "xz@5.4")


def test_no_heartbeat_once_the_command_has_ended(aws: tuple[BuildTable, Any]) -> None:
    table, _ = aws
    sfn = FakeStepFunctions()
    handle(aws, sfn, ssm_event("Success"))
    batch = decode_subscription_event(
        encode_subscription_event(
            log_group="g",
            log_stream="cmd-1/i-1/bootstrap/stdout",
            messages=[(1, signed("PETAL-HEARTBEAT 1"))],
            owner="1",
        )
    )
    assert batch is not None
    assert not on_log_batch(batch, table=table, sfn=sfn, now=NOW).heartbeat_sent


def test_bad_deliveries() -> None:
    with pytest.raises(BadLogDelivery):
        decode_subscription_event({"awslogs": {"data": "not base64 gzip"}})


def test_causes_without_a_failure_line() -> None:
    assert "ran out of time" in bootstrap_failure_cause("TimedOut", "c", LogRead())
    assert "(none the bootstrap vouched for" in bootstrap_failure_cause("Failed", "c", LogRead())
    tail = read_log(signed(*["PETAL-TAIL " + "x" * 100] * 100), key=KEY, build_id="b1")
    long = bootstrap_failure_cause("Failed", "c", tail)
    assert len(long) <= 3000


def test_an_unreadable_log_still_fails_the_task(aws: tuple[BuildTable, Any]) -> None:
    from petal.aws.errors import AwsRequestFailed

    table, ec2 = aws
    sfn = FakeStepFunctions()

    def unreadable(command: str, instance: str) -> list[str]:
        raise AwsRequestFailed("CloudWatch Logs read failed: AccessDeniedException")

    result = handle_event(
        ssm_event("Failed"),
        table=table,
        sfn=sfn,
        ec2=ec2,
        read_tail=unreadable,
        document_name=DOCUMENT,
        now=NOW,
    )
    assert result.action == "failed"
    assert "could not be read" in sfn.calls[0][1]["cause"]
