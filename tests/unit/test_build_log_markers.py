"""petal.build.log_markers: parsing the bootstrap's marker lines, including a real (fake-host) run."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from petal.build.log_markers import STEP_DONE, STEP_PARAMETERS, LogEvent, parse_log, parse_log_line
from petal.deployment_contract import (
    FAILURE_MARKER,
    HEARTBEAT_MARKER,
    PROGRESS_MARKER,
    STEP_MARKER,
)
from tests.data.bootstrap import harness

DATA = Path(__file__).resolve().parents[1] / "data" / "bootstrap"


@pytest.mark.parametrize(
    ("line", "event"),
    [
        (f"{STEP_MARKER} device", LogEvent(kind="step", step="device")),
        (f"{STEP_MARKER} done\n", LogEvent(kind="step", step=STEP_DONE)),
        (
            f"{PROGRESS_MARKER} 3/12 samtools@1.17",
            LogEvent(kind="progress", done=3, total=12, spec="samtools@1.17"),
        ),
        (
            f"{PROGRESS_MARKER} 1/1 openmpi@4.1.6 fabrics=ofi %gcc@13.2.0\r\n",
            LogEvent(
                kind="progress", done=1, total=1, spec="openmpi@4.1.6 fabrics=ofi %gcc@13.2.0"
            ),
        ),
        (f"{HEARTBEAT_MARKER} 1735689600", LogEvent(kind="heartbeat", timestamp=1735689600)),
        (
            f"{FAILURE_MARKER} install: spack install bwa@0.7.17 failed (status 1)",
            LogEvent(
                kind="failed", step="install", message="spack install bwa@0.7.17 failed (status 1)"
            ),
        ),
        (
            f"{FAILURE_MARKER} {STEP_PARAMETERS}: VolumeId 'x' is not an EBS volume id: see docs",
            LogEvent(
                kind="failed",
                step=STEP_PARAMETERS,
                message="VolumeId 'x' is not an EBS volume id: see docs",
            ),
        ),
        (f"  {STEP_MARKER} mount  ", LogEvent(kind="step", step="mount")),
    ],
)
def test_marker_lines(line: str, event: LogEvent) -> None:
    assert parse_log_line(line) == event


@pytest.mark.parametrize(
    "line",
    [
        "",
        "==> Installing samtools",
        "+ spack -e /shared/petal/env install --fail-fast -j 16 samtools@1.17",
        f"echo {FAILURE_MARKER} install: not at the start of the line",
        f"{STEP_MARKER}",
        f"{STEP_MARKER} Device",
        f"{STEP_MARKER} two words",
        f"{STEP_MARKER}device",
        f"{PROGRESS_MARKER} 0/3 samtools",
        f"{PROGRESS_MARKER} 4/3 samtools",
        f"{PROGRESS_MARKER} 1/3",
        f"{PROGRESS_MARKER} one/3 samtools",
        f"{HEARTBEAT_MARKER} soon",
        f"{HEARTBEAT_MARKER}",
        f"{FAILURE_MARKER} install",
        f"{FAILURE_MARKER}: reason",
        "PETAL-SOMETHING else",
    ],
)
def test_other_lines_are_not_events(line: str) -> None:
    assert parse_log_line(line) is None


def test_events_are_immutable() -> None:
    event = LogEvent(kind="step", step="device")
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.step = "format"  # type: ignore[misc]


def test_parse_log_reads_a_multi_line_message() -> None:
    message = (
        f"==> Installing zlib\n{PROGRESS_MARKER} 2/2 bwa@0.7.17\n"
        f"{HEARTBEAT_MARKER} 1735689600\nnoise\n{STEP_MARKER} modules"
    )
    assert [event.kind for event in parse_log(message)] == ["progress", "heartbeat", "step"]
    assert list(parse_log(message.splitlines())) == list(parse_log(message))


def test_a_real_successful_run(tmp_path: Path) -> None:
    host = harness.make_host(tmp_path)
    result = host.run()
    assert result.returncode == 0, result.stdout + result.stderr
    events = list(parse_log(result.stdout))
    # Every PETAL- line of the output is an event: the script and the parser agree.
    assert len(events) == len(harness.marker_lines(result.stdout, heartbeats=True))
    assert [e.step for e in events if e.kind == "step"] == harness.STEPS
    progress = [e for e in events if e.kind == "progress"]
    total = len(harness.ROOT_SPECS)
    assert [(e.done, e.total, e.spec) for e in progress] == [
        (k, total, spec) for k, spec in enumerate(harness.ROOT_SPECS, 1)
    ]
    assert any(e.kind == "heartbeat" for e in events)
    assert events[-1] == LogEvent(kind="step", step=STEP_DONE)
    assert not any(e.kind == "failed" for e in events)


def test_a_real_failed_run(tmp_path: Path) -> None:
    host = harness.make_host(tmp_path)
    # The root specs as rendered: a seed's version is exact (@=).
    host.env["FAKE_SPACK_FAIL"] = "openmpi@=4.1.6 fabrics=ofi"
    result = host.run()
    assert result.returncode == 1
    events = list(parse_log(result.stdout))
    assert events[-1] == LogEvent(
        kind="failed",
        step="install",
        message="spack install openmpi@=4.1.6 fabrics=ofi failed (status 1)",
    )
    last_progress = [e for e in events if e.kind == "progress"][-1]
    failed_at = harness.ROOT_SPECS.index("openmpi@=4.1.6 fabrics=ofi") + 1
    assert (last_progress.done, last_progress.total) == (failed_at, len(harness.ROOT_SPECS))


def test_each_text_may_hold_several_lines() -> None:
    # CloudWatch Logs events of the SSM agent: every line of about a second in one.
    texts = [
        "==> Installing zlib\nPETAL-STEP install\n",
        "PETAL-PROGRESS 1/2 zlib@1.3\n==> zlib: done\nPETAL-HEARTBEAT 1700000000\n",
    ]
    assert [event.kind for event in parse_log(texts)] == ["step", "progress", "heartbeat"]
