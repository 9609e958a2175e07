"""A build's log key stays secret: it is made by the bootstrap step, kept on the build's
item of the table, handed to the builder as a command parameter, and shown by no
`petal build` output, no execution input, output or event, and no build log line; and
the simulated builder tags its markers with it, so local builds work end to end."""

from __future__ import annotations

import json
from typing import Any

import pytest

from petal.build.log_markers import LOG_KEY_PATTERN, read_log
from petal.local.emulator import LocalAws, LocalFailure
from tests.cli.test_build_cli import SEED, aws, fixed_build_ids, petal

__all__ = ["aws"]  # the emulated deployment `petal build` finds (test_build_cli's fixture)

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")


def key_of(aws: LocalAws, build_id: str) -> str:
    record, key = aws.table.get_build_and_log_key(build_id)
    assert record is not None and key is not None and LOG_KEY_PATTERN.fullmatch(key)
    return key


def execution_texts(aws: LocalAws, build_id: str) -> list[str]:
    """What Step Functions shows of the build's execution: input, output, every event."""
    sfn = aws.client("stepfunctions")
    record = aws.table.get_build(build_id)
    assert record is not None and record.execution_arn
    execution = sfn.describe_execution(executionArn=record.execution_arn)
    history = sfn.get_execution_history(executionArn=record.execution_arn)["events"]
    return [json.dumps(execution, default=str), json.dumps(history, default=str)]


def build_log(aws: LocalAws, build_id: str) -> str:
    record = aws.table.get_build(build_id)
    assert record is not None and record.log_group and record.command_id
    logs = aws.client("logs")
    events = logs.filter_log_events(
        logGroupName=record.log_group, logStreamNamePrefix=record.command_id
    )["events"]
    return "".join(str(event["message"]) for event in events)


def outputs(aws: LocalAws, capsys: pytest.CaptureFixture[str], build_id: str) -> list[str]:
    shown = []
    for argv in (
        ("status", build_id),
        ("status", build_id, "--json"),
        ("list",),
        ("list", "--json"),
        ("logs", build_id),
    ):
        petal(*argv)
        captured = capsys.readouterr()
        shown.append(captured.out + captured.err)
    return shown


def test_a_build_tags_its_markers_and_shows_its_key_nowhere(
    aws: LocalAws, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    fixed_build_ids(monkeypatch, "wb-key")
    assert petal("--seed", SEED) == 0
    key = key_of(aws, "wb-key")
    shown = [capsys.readouterr().out, *outputs(aws, capsys, "wb-key")]
    assert '"build_id": "wb-key"' in shown[2]  # status --json: the record, without the key
    log = build_log(aws, "wb-key")
    # The simulated builder tagged every marker with the key it was given.
    read = read_log(log, key=key, build_id="wb-key")
    assert read.rejected == [] and [e.step for e in read.events if e.kind == "step"][-1] == "done"
    for text in [*shown, *execution_texts(aws, "wb-key"), log]:
        assert key not in text


def test_a_failed_build_has_its_cause_from_its_tagged_lines_and_hides_its_key(
    aws: LocalAws, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    fixed_build_ids(monkeypatch, "wb-key-fails")
    aws.failures["wb-key-fails"] = LocalFailure("bootstrap", "failed")
    assert petal("--seed", SEED) == 1
    key = key_of(aws, "wb-key-fails")
    record = aws.table.get_build("wb-key-fails")
    assert record is not None and record.error is not None
    # From the builder's PETAL-FAILED and PETAL-TAIL lines, without their tags.
    assert "failed in its 'install' step: spack install failed for" in record.error.cause
    assert "==> Error: simulated failure while installing" in record.error.cause
    assert "PETAL-MAC" not in record.error.cause
    shown: list[Any] = [capsys.readouterr().out, *outputs(aws, capsys, "wb-key-fails")]
    for text in [*shown, *execution_texts(aws, "wb-key-fails"), build_log(aws, "wb-key-fails")]:
        assert key not in text
