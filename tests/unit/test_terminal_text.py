"""Text from builders, registries and seeds loses its terminal controls before petal
stores or prints it: petal.text.terminal_safe, the marker parser, the log
tail, the CLI's build views and the registry tables. The texts are in
tests/data/terminal_text.json and tests/data/forged_events.json."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from petal.build.log_events import tail_command_output
from petal.build.log_markers import parse_log_line
from petal.build.records import BuildFailure, BuildRecord, Progress
from petal.cli import build_progress, registry_commands
from petal.cli.output import terminal_safe
from petal.text import REPLACEMENT

DATA = Path(__file__).resolve().parents[1] / "data"
CASES: list[dict[str, str]] = json.loads((DATA / "terminal_text.json").read_text("utf-8"))["cases"]
FORGED_LINES: list[str] = json.loads((DATA / "forged_events.json").read_text("utf-8"))[
    "forged_lines"
]
# Whatever a terminal acts on: C0 but tab and newline, DEL, C1, bidi controls, and the
# Unicode line separators.
CONTROL = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]"
)
EVIL = "zlib\x1b[2J@1.3\x1b]8;;https://evil.example\x07x\x1b]8;;\x07\r\x07\x9b1m\u202eexe"


def assert_inert(text: str) -> None:
    assert CONTROL.search(text) is None, repr(text)


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_every_terminal_control_is_neutralised(case: dict[str, str]) -> None:
    assert terminal_safe(case["text"]) == case["safe"]
    one_line = terminal_safe(case["text"], one_line=True)
    assert one_line == case.get("one_line", case["safe"])
    assert_inert(one_line)
    assert "\n" not in one_line and "\t" not in one_line


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_neutralising_twice_changes_nothing(case: dict[str, str]) -> None:
    once = terminal_safe(case["text"])
    assert terminal_safe(once) == once


def test_a_hidden_link_leaves_neither_its_address_nor_its_escapes() -> None:
    shown = terminal_safe("\x1b]8;;https://evil.example/x\x1b\\the docs\x1b]8;;\x1b\\")
    assert shown == "the docs"
    assert "evil" not in shown


@pytest.mark.parametrize("line", FORGED_LINES)
def test_marker_text_is_stored_without_controls(line: str) -> None:
    event = parse_log_line(line)
    assert event is not None
    for text in (event.spec, event.message):
        if text is not None:
            assert_inert(text)


def test_a_marker_spec_keeps_its_words() -> None:
    event = parse_log_line("PETAL-PROGRESS 1/2 zlib\x1b[2J@1.3\x07")
    assert event is not None and event.spec == f"zlib@1.3{REPLACEMENT}"


@pytest.fixture
def logs(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        client = boto3.client("logs", region_name="us-east-1")
        client.create_log_group(logGroupName="/petal/builds")
        yield client


def test_the_log_tail_of_a_failure_cause_is_neutralised(logs: Any) -> None:
    stream = "cmd-1/i-0123456789abcdef0/bootstrap/stdout"
    logs.create_log_stream(logGroupName="/petal/builds", logStreamName=stream)
    message = "==> Error: it broke\x1b[2J\nPETAL-FAILED install: " + EVIL + "\n"
    logs.put_log_events(
        logGroupName="/petal/builds",
        logStreamName=stream,
        # Now: CloudWatch Logs refuses events older than 14 days.
        logEvents=[{"timestamp": int(time.time() * 1000), "message": message}],
    )
    lines = tail_command_output(logs, "/petal/builds", "cmd-1", "i-0123456789abcdef0")
    assert lines[0] == "==> Error: it broke"
    for line in lines:
        assert_inert(line)


def record_with(spec: str, cause: str) -> BuildRecord:
    return BuildRecord(
        build_id="b1",
        status="RUNNING",
        started_at="2025-03-01T00:00:00Z",
        os="alinux2023",
        architecture="x86_64",
        step="bootstrap",
        command_id="cmd-1",
        progress=Progress(1, 2, spec),
        error=BuildFailure("bootstrap", "BootstrapFailed", cause),
    )


def test_the_build_views_print_builder_text_inert() -> None:
    # Records written before the consumer neutralised text, or by anything else.
    record = record_with(EVIL, f"Build b1 failed: {EVIL}\nlast line\x1b[H")
    now = datetime(2025, 3, 1, 0, 5, tzinfo=UTC)
    shown = [
        build_progress.status_line(record, now),
        *build_progress.step_lines(record),
        build_progress.progress_text(record) or "",
    ]
    for line in shown:
        assert_inert(line)
        assert "\n" not in line
    finished = record_with(EVIL, f"Build b1 failed: {EVIL}\nlast line\x1b[H")
    finished.status = "FAILED"
    summary = build_progress.summary_lines(
        finished,
        None,
        "SEED",
        regions=build_progress.BuildRegions("us-east-1", "us-east-1"),
    )
    for line in summary:
        assert_inert(line)
    assert "last line" in summary[0]


ROWS = [("bio\x1b[2J", "sha256:abc...", "[link=https://evil.example]docs[/link] \u202eexe\nx")]


def test_registry_tables_print_registry_text_inert(capsys: pytest.CaptureFixture[str]) -> None:
    registry_commands._table("Snapshots", ("NAME", "FINGERPRINT", "DESCRIPTION"), ROWS)
    out = capsys.readouterr().out
    assert_inert(out)
    # One row, three cells: a newline or tab in a cell would make more.
    assert out.count("\n") == 1 and out.count("\t") == 2


def test_registry_tables_on_a_terminal_take_no_markup(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(registry_commands, "is_terminal", lambda: True)
    monkeypatch.setenv("TERM", "xterm-256color")
    monkeypatch.setenv("COLUMNS", "200")
    registry_commands._table("Snapshots \x1b]0;x\x07", ("NAME", "FP", "DESCRIPTION"), ROWS)
    out = capsys.readouterr().out
    assert "[link=https://evil.example]docs[/link]" in out  # shown as text, not a link
    assert "\x1b]8" not in out and "\x1b[2J" not in out and "\u202e" not in out
