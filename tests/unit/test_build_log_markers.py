"""petal.build.log_markers: parsing and verifying the bootstrap's marker lines, including
a real (fake-host) run."""

from __future__ import annotations

import dataclasses
import hmac
from pathlib import Path

import pytest

from petal.build.log_markers import (
    LOG_KEY_PATTERN,
    STEP_DONE,
    STEP_PARAMETERS,
    LogEvent,
    LogRead,
    new_log_key,
    parse_log_line,
    read_log,
    sign_line,
)
from petal.deployment_contract import (
    FAILURE_MARKER,
    HEARTBEAT_MARKER,
    MAC_FIELD,
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


KEY = "0f" * 32
BUILD = "build-b"


def signed(*texts: str, key: str = KEY, build_id: str = BUILD) -> str:
    return "".join(sign_line(key, build_id, text) + "\n" for text in texts)


def test_read_log_reads_a_multi_line_message() -> None:
    message = (
        f"==> Installing zlib\n{signed(f'{PROGRESS_MARKER} 2/2 bwa@0.7.17')}"
        f"{signed(f'{HEARTBEAT_MARKER} 1735689600')}noise\n{signed(f'{STEP_MARKER} modules')}"
    )
    log = read_log(message, key=KEY, build_id=BUILD)
    assert [event.kind for event in log.events] == ["progress", "heartbeat", "step"]
    assert log.rejected == []
    assert read_log(message.splitlines(), key=KEY, build_id=BUILD) == log


def test_each_text_may_hold_several_lines() -> None:
    # CloudWatch Logs events of the SSM agent: every line of about a second in one.
    texts = [
        f"==> Installing zlib\n{signed('PETAL-STEP install')}",
        signed("PETAL-PROGRESS 1/2 zlib@1.3") + "==> zlib: done\n" + signed("PETAL-HEARTBEAT 17"),
    ]
    log = read_log(texts, key=KEY, build_id=BUILD)
    assert [event.kind for event in log.events] == ["step", "progress", "heartbeat"]


def test_the_tag_covers_the_build_id_and_the_text() -> None:
    line = sign_line(KEY, BUILD, "PETAL-STEP install")
    text, tag = line.split(f" {MAC_FIELD}=")
    expected = hmac.new(bytes.fromhex(KEY), f"{BUILD}\nPETAL-STEP install".encode(), "sha256")
    assert (text, tag) == ("PETAL-STEP install", expected.hexdigest())


def test_new_log_keys_are_random_256_bit_keys() -> None:
    keys = {new_log_key() for _ in range(50)}
    assert len(keys) == 50
    assert all(LOG_KEY_PATTERN.fullmatch(key) for key in keys)


OTHER_KEY = "a0" * 32
STEP = "PETAL-STEP install"
GOOD = sign_line(KEY, BUILD, STEP)


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (STEP, "no PETAL-MAC tag"),
        (f"{STEP} PETAL-MAC=", "no PETAL-MAC tag"),
        (f"{STEP} PETAL-MAC={'0' * 63}", "no PETAL-MAC tag"),
        (GOOD.upper(), "no PETAL-MAC tag"),
        # Signed by another builder with its own key, for this build's id...
        (sign_line(OTHER_KEY, BUILD, STEP), "is not build build-b's"),
        # ...or its own build's line, replayed into this build's stream.
        (sign_line(OTHER_KEY, "build-a", STEP), "is not build build-b's"),
        # This build's key but another build id (a key reused would not help either).
        (sign_line(KEY, "build-a", STEP), "is not build build-b's"),
        # The build's own tag on other words.
        (GOOD.replace("install", "done"), "is not build build-b's"),
        (GOOD.replace("PETAL-STEP", "PETAL-FAILED install:"), "is not build build-b's"),
        # The tag of a text that itself ends in a tag: the last tag decides.
        (f"{GOOD} PETAL-MAC={'1' * 64}", "is not build build-b's"),
        (GOOD + "x", "no PETAL-MAC tag"),
        (sign_line(KEY, BUILD, "PETAL-SOMETHING else"), "not a marker petal knows"),
    ],
)
def test_lines_without_the_builds_tag_are_refused(line: str, reason: str) -> None:
    log = read_log(line + "\n", key=KEY, build_id=BUILD)
    assert log.events == []
    [refused] = log.rejected
    assert reason in refused


@pytest.mark.parametrize("key", [None, "", "0F" * 32, "0f" * 31, "zz" * 32])
def test_nothing_verifies_without_a_good_key(key: str | None) -> None:
    log = read_log(GOOD, key=key, build_id=BUILD)
    assert log.events == []
    assert len(log.rejected) == 1


def test_a_tag_on_text_that_ends_in_a_tag_covers_it_all() -> None:
    inner = f"PETAL-FAILED install: broke PETAL-MAC={'1' * 64}"
    log = read_log(signed(inner), key=KEY, build_id=BUILD)
    assert log.failure == LogEvent(
        kind="failed", step="install", message=f"broke PETAL-MAC={'1' * 64}"
    )


def test_refused_lines_are_quoted_inert_and_short() -> None:
    line = "PETAL-FAILED install: \x1b]8;;https://evil.example\x1b\\click" + "x" * 500
    [refused] = read_log(line, key=KEY, build_id=BUILD).rejected
    assert "\x1b" not in refused and len(refused) < 200


def test_ordinary_output_is_neither_a_marker_nor_refused() -> None:
    log = read_log("==> Installing\n+ spack install\nPETAL\n", key=KEY, build_id=BUILD)
    assert log == LogRead([], [])


def test_tail_and_failure() -> None:
    log = read_log(
        signed("PETAL-TAIL ==> Error: it broke", "PETAL-TAIL", "PETAL-TAIL   indented")
        + signed("PETAL-FAILED install: spack install x failed (status 1)"),
        key=KEY,
        build_id=BUILD,
    )
    assert log.tail == ["==> Error: it broke", "", "  indented"]
    assert log.failure == LogEvent(
        kind="failed", step="install", message="spack install x failed (status 1)"
    )


def test_a_real_successful_run(tmp_path: Path) -> None:
    host = harness.make_host(tmp_path)
    result = host.run()
    assert result.returncode == 0, result.stdout + result.stderr
    log = read_log(result.stdout, key=harness.LOG_KEY, build_id=harness.BUILD_ID)
    events = log.events
    # Every PETAL- line of the output is an event: the script and the parser agree.
    assert log.rejected == []
    assert len(events) == len(harness.marker_lines(result.stdout, heartbeats=True))
    assert [e.step for e in events if e.kind == "step"] == harness.STEPS
    progress = [e for e in events if e.kind == "progress"]
    total = len(harness.ROOT_SPECS)
    assert [(e.done, e.total, e.spec) for e in progress] == [
        (k, total, spec) for k, spec in enumerate(harness.ROOT_SPECS, 1)
    ]
    assert any(e.kind == "heartbeat" for e in events)
    assert events[-1] == LogEvent(kind="step", step=STEP_DONE)
    assert not any(e.kind in ("failed", "tail") for e in events)


def test_a_real_failed_run(tmp_path: Path) -> None:
    host = harness.make_host(tmp_path)
    # The root specs as rendered: a seed's version is exact (@=).
    host.env["FAKE_SPACK_FAIL"] = "openmpi@=4.1.6 fabrics=ofi"
    result = host.run()
    assert result.returncode == 1
    log = read_log(result.stdout, key=harness.LOG_KEY, build_id=harness.BUILD_ID)
    events = log.events
    assert events[-1] == LogEvent(
        kind="failed",
        step="install",
        message="spack install openmpi@=4.1.6 fabrics=ofi failed (status 1)",
    )
    assert log.tail and log.rejected == []
    last_progress = [e for e in events if e.kind == "progress"][-1]
    failed_at = harness.ROOT_SPECS.index("openmpi@=4.1.6 fabrics=ofi") + 1
    assert (last_progress.done, last_progress.total) == (failed_at, len(harness.ROOT_SPECS))
