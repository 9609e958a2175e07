"""What `petal build` shows while a build runs and when it ends, with a fixed clock.

The records are written by hand (what the pipeline leaves in the builds table at each
step), so every line a person reads is pinned here as golden text: the checklist
(`step_lines`), the one-line status, the plain lines printed to a pipe, the summary,
the terminal view, and `watch` following a scripted sequence of records.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from botocore.exceptions import ClientError
from rich.console import Console

from petal.build.log_markers import sign_line
from petal.build.records import BuildFailure, BuildRecord, Progress
from petal.cli import build_watch
from petal.cli.build_progress import (
    BuildRegions,
    new_lines,
    rich_view,
    status_line,
    step_lines,
    summary_lines,
)
from petal.local import mode as local_mode
from petal.seed.loading import load_seed

REPO = Path(__file__).resolve().parents[2]
SEED_FILE = "seeds/testing/workload-basic.yaml"
SEED = load_seed(REPO / SEED_FILE)
# The stack's region, which is also where `petal create` looks by default.
HOME = BuildRegions(built_in="us-east-1", create_default="us-east-1")
NOW = datetime(2025, 1, 31, 12, 30, 5, tzinfo=UTC)
BUILD_ID = "workload-basic-20250131120000-a1b2c3"
FP = "sha256:" + "ab" * 32
INSTANCE = "i-0123456789abcdef0"
VOLUME = "vol-0123456789abcdef0"
SNAPSHOT = "snap-0123456789abcdef0"
MACHINE = "arn:aws:states:us-east-1:123456789012:stateMachine:petal-build"


def record(**changes: Any) -> BuildRecord:
    base = BuildRecord(
        build_id=BUILD_ID,
        status="RUNNING",
        started_at="2025-01-31T12:00:00Z",
        seed_name="workload-basic",
        fingerprint=FP,
        os="alinux2023",
        architecture="x86_64",
        spack_version="v0.23.0",
        step="prepare",
    )
    return replace(base, **changes)


LAUNCHED = {"instance_id": INSTANCE, "volume_id": VOLUME}
# A build that got as far as sending the bootstrap command, which writes the log.
INSTALLING = {**LAUNCHED, "command_id": "0b5e1a2c-3d4e-4f5a-8b6c-7d8e9f0a1b2c"}


def failed(step: str, error: str, cause: str, **changes: Any) -> BuildRecord:
    return record(
        status="FAILED",
        step=step,
        finished_at="2025-01-31T12:20:00Z",
        error=BuildFailure(step, error, cause),
        **changes,
    )


RUNNING = {
    "prepare": record(),
    "launch": record(step="launch"),
    "ready": record(step="ready", **LAUNCHED),
    "bootstrap": record(step="bootstrap", progress=Progress(2, 3, "bzip2@1.0.8"), **LAUNCHED),
    "snapshot": record(step="snapshot", **LAUNCHED),
    "cleanup": record(step="cleanup", snapshot_id=SNAPSHOT, **LAUNCHED),
}
SUCCEEDED = record(
    status="SUCCEEDED",
    step="done",
    progress=Progress(3, 3, "xz@5.4.6"),
    snapshot_id=SNAPSHOT,
    finished_at="2025-01-31T13:02:03Z",
    **LAUNCHED,
)
FAILED_LAUNCH = failed(
    "launch",
    "NoBuilderCapacity",
    f"Build {BUILD_ID} failed in step launch (NoBuilderCapacity): no subnet had capacity "
    "for c6a.xlarge. What to do: add subnets in other zones, or try again later.",
)
FAILED_BOOTSTRAP = failed(
    "bootstrap",
    "BootstrapFailed",
    f"Build {BUILD_ID} failed in step bootstrap (BootstrapFailed): spack install failed "
    "for bzip2@1.0.8. What to do: read the build log.",
    progress=Progress(2, 3, "bzip2@1.0.8"),
    **INSTALLING,
)
FAILED_SNAPSHOT = failed(
    "snapshot",
    "SnapshotFailed",
    f"Build {BUILD_ID} failed in step snapshot (SnapshotFailed): EBS reported the "
    "snapshot in state error. What to do: start the build again.",
    **INSTALLING,
)
CANCELLED = record(
    status="CANCELLED",
    step="bootstrap",
    progress=Progress(1, 3, "zlib@1.3.1"),
    finished_at="2025-01-31T12:10:00Z",
    error=BuildFailure(
        "bootstrap", "BuildCancelled", "cancelled with `petal build cancel` during step bootstrap"
    ),
    **INSTALLING,
)
REUSED = record(
    status="REUSED",
    step="done",
    snapshot_id="snap-0fedcba9876543210",
    finished_at="2025-01-31T12:00:02Z",
)


def lines(text: str) -> list[str]:
    return text.split("\n")


# --- the checklist and the status line ----------------------------------------------------

CHECKLISTS = {
    "prepare": """\
⏳ Checking the seed and looking for an existing snapshot...""",
    "launch": """\
✅ Checked the seed
⏳ Launching the build instance and creating the software volume...""",
    "ready": """\
✅ Checked the seed
✅ Launched build instance (i-0123456789abcdef0) and created volume (vol-0123456789abcdef0)
⏳ Waiting for the instance, attaching the volume...""",
    "bootstrap": """\
✅ Checked the seed
✅ Launched build instance (i-0123456789abcdef0) and created volume (vol-0123456789abcdef0)
✅ Attached the volume
⏳ Installing software (this takes 45-90 minutes)...
   [██████░░░░░░░░░░░░░░] 2/3 - Installing bzip2@1.0.8""",
    "snapshot": """\
✅ Checked the seed
✅ Launched build instance (i-0123456789abcdef0) and created volume (vol-0123456789abcdef0)
✅ Attached the volume
✅ Software installation complete
⏳ Creating the snapshot...""",
    "cleanup": """\
✅ Checked the seed
✅ Launched build instance (i-0123456789abcdef0) and created volume (vol-0123456789abcdef0)
✅ Attached the volume
✅ Software installation complete
✅ Created snapshot (snap-0123456789abcdef0)
⏳ Cleaning up build resources...""",
}


@pytest.mark.parametrize("step", list(RUNNING))
def test_the_checklist_of_a_running_build_at_each_step(step: str) -> None:
    assert step_lines(RUNNING[step]) == lines(CHECKLISTS[step])


@pytest.mark.parametrize(
    ("step", "expected"),
    [
        ("prepare", f"{BUILD_ID} (alinux2023/x86_64) running, step prepare [30:05]"),
        ("launch", f"{BUILD_ID} (alinux2023/x86_64) running, step launch [30:05]"),
        ("ready", f"{BUILD_ID} (alinux2023/x86_64) running, step ready [30:05]"),
        (
            "bootstrap",
            f"{BUILD_ID} (alinux2023/x86_64) running, step bootstrap "
            "[██████░░░░░░░░░░░░░░] 2/3 - Installing bzip2@1.0.8 [30:05]",
        ),
        ("snapshot", f"{BUILD_ID} (alinux2023/x86_64) running, step snapshot [30:05]"),
        ("cleanup", f"{BUILD_ID} (alinux2023/x86_64) running, step cleanup [30:05]"),
    ],
)
def test_the_status_line_of_a_running_build(step: str, expected: str) -> None:
    assert status_line(RUNNING[step], NOW) == expected


def test_the_install_bar_counts_the_specs_already_installed() -> None:
    def bar(done: int) -> str:
        progress = Progress(done, 3, f"spec{done}")
        return step_lines(record(step="bootstrap", progress=progress, **LAUNCHED))[-1]

    assert [bar(1), bar(2), bar(3)] == [
        "   [░░░░░░░░░░░░░░░░░░░░] 1/3 - Installing spec1",
        "   [██████░░░░░░░░░░░░░░] 2/3 - Installing spec2",
        "   [█████████████░░░░░░░] 3/3 - Installing spec3",
    ]


def test_elapsed_time_has_hours_only_when_needed() -> None:
    assert status_line(record(), datetime(2025, 1, 31, 12, 0, 7, tzinfo=UTC)).endswith("[0:07]")
    assert status_line(record(), datetime(2025, 1, 31, 14, 3, 9, tzinfo=UTC)).endswith("[2:03:09]")
    # A clock behind the record's start (another machine's clock) is not negative time.
    assert status_line(record(), datetime(2025, 1, 31, 11, 0, tzinfo=UTC)).endswith("[0:00]")


FINISHED_CASES = {
    "succeeded": (
        SUCCEEDED,
        f"{BUILD_ID} (alinux2023/x86_64) succeeded: snap-0123456789abcdef0 [1:02:03]",
        """\
✅ Checked the seed
✅ Launched build instance (i-0123456789abcdef0) and created volume (vol-0123456789abcdef0)
✅ Attached the volume
✅ Software installation complete
✅ Created snapshot (snap-0123456789abcdef0)
✅ Cleaned up build resources""",
    ),
    "failed-launch": (
        FAILED_LAUNCH,
        f"{BUILD_ID} (alinux2023/x86_64) failed in launch (NoBuilderCapacity) [20:00]",
        """\
✅ Checked the seed
❌ Launching the build instance and creating the software volume failed (NoBuilderCapacity)
✅ Cleaned up build resources""",
    ),
    "failed-bootstrap": (
        FAILED_BOOTSTRAP,
        f"{BUILD_ID} (alinux2023/x86_64) failed in bootstrap (BootstrapFailed) [20:00]",
        """\
✅ Checked the seed
✅ Launched build instance (i-0123456789abcdef0) and created volume (vol-0123456789abcdef0)
✅ Attached the volume
❌ Installing software (this takes 45-90 minutes) failed (BootstrapFailed)
✅ Cleaned up build resources""",
    ),
    "failed-snapshot": (
        FAILED_SNAPSHOT,
        f"{BUILD_ID} (alinux2023/x86_64) failed in snapshot (SnapshotFailed) [20:00]",
        """\
✅ Checked the seed
✅ Launched build instance (i-0123456789abcdef0) and created volume (vol-0123456789abcdef0)
✅ Attached the volume
✅ Software installation complete
❌ Creating the snapshot failed (SnapshotFailed)
✅ Cleaned up build resources""",
    ),
    "cancelled": (
        CANCELLED,
        f"{BUILD_ID} (alinux2023/x86_64) cancelled in bootstrap (BuildCancelled) [10:00]",
        """\
✅ Checked the seed
✅ Launched build instance (i-0123456789abcdef0) and created volume (vol-0123456789abcdef0)
✅ Attached the volume
❌ Installing software (this takes 45-90 minutes) cancelled (BuildCancelled)
✅ Cleaned up build resources""",
    ),
    "reused": (
        REUSED,
        f"{BUILD_ID} (alinux2023/x86_64) reused: snap-0fedcba9876543210 [0:02]",
        "✅ Software volume already exists: snap-0fedcba9876543210",
    ),
}


@pytest.mark.parametrize("case", list(FINISHED_CASES))
def test_a_finished_build_shows_its_outcome_and_the_time_it_took(case: str) -> None:
    built, status, checklist = FINISHED_CASES[case]
    assert status_line(built, NOW) == status
    assert step_lines(built) == lines(checklist)


def test_a_seed_the_intake_rejected_has_no_variant_and_no_steps() -> None:
    rejected = BuildRecord(
        build_id="broken-32797a4d416eafbd",
        status="FAILED",
        started_at="2025-01-31T12:30:00Z",
        finished_at="2025-01-31T12:30:00Z",
        step="intake",
        error=BuildFailure("intake", "InvalidSeed", "the uploaded seed is invalid: ..."),
    )
    assert status_line(rejected, NOW) == (
        "broken-32797a4d416eafbd (?/?) failed in intake (InvalidSeed) [0:00]"
    )
    assert step_lines(rejected) == []


def test_a_failure_shows_while_the_cleanup_still_runs() -> None:
    # cleanup writes the error first, then the outcome: a watcher sees both stages.
    cleaning = replace(FAILED_BOOTSTRAP, status="RUNNING", step="cleanup", finished_at=None)
    assert step_lines(cleaning) == lines(
        """\
✅ Checked the seed
✅ Launched build instance (i-0123456789abcdef0) and created volume (vol-0123456789abcdef0)
✅ Attached the volume
❌ Installing software (this takes 45-90 minutes) failed (BootstrapFailed)
⏳ Cleaning up build resources..."""
    )
    assert status_line(cleaning, NOW) == (
        f"{BUILD_ID} (alinux2023/x86_64) running, step cleanup [30:05]"
    )


# --- the summary -------------------------------------------------------------------------

READY = """\
Software Volume Ready!
  Snapshot ID: {snapshot}
  Fingerprint: sha256:abababababababababababababababababababababababababababababababab
  Variant:     {variant}
  Packages:    {packages}

Deploy clusters with:
  petal create --seed seeds/testing/workload-basic.yaml --name my-cluster{flags}"""


def test_the_summary_of_a_new_software_volume() -> None:
    assert summary_lines(SUCCEEDED, SEED, SEED_FILE, regions=HOME) == lines(
        READY.format(
            snapshot=SNAPSHOT,
            variant="alinux2023/x86_64",
            packages="zlib@1.3.1, bzip2@1.0.8, xz@5.4.6",
            flags="",
        )
    )


def test_the_summary_of_a_reused_volume_is_the_same_offer() -> None:
    assert summary_lines(REUSED, SEED, SEED_FILE, regions=HOME) == lines(
        READY.format(
            snapshot="snap-0fedcba9876543210",
            variant="alinux2023/x86_64",
            packages="zlib@1.3.1, bzip2@1.0.8, xz@5.4.6",
            flags="",
        )
    )


def test_the_summary_of_another_variant_names_it_in_the_create_command() -> None:
    other = replace(SUCCEEDED, os="rocky9", architecture="arm64")
    assert summary_lines(other, SEED, SEED_FILE, regions=HOME) == lines(
        READY.format(
            snapshot=SNAPSHOT,
            variant="rocky9/arm64",
            packages="zlib@1.3.1, bzip2@1.0.8, xz@5.4.6",
            flags=" --os rocky9 --arch arm64",
        )
    )


def test_the_summary_without_the_seed_points_at_build_list() -> None:
    # `petal build status --watch` has no seed file at hand.
    assert summary_lines(SUCCEEDED, None, "SEED", regions=HOME) == lines(
        READY.format(
            snapshot=SNAPSHOT,
            variant="alinux2023/x86_64",
            packages="(see petal build list)",
            flags=" --os alinux2023 --arch x86_64",
        ).replace("seeds/testing/workload-basic.yaml", "SEED")
    )


@pytest.mark.parametrize("built", [FAILED_BOOTSTRAP, FAILED_SNAPSHOT, CANCELLED])
def test_the_summary_of_a_failure_is_its_cause_and_the_log_command(built: BuildRecord) -> None:
    assert built.error is not None
    assert built.command_id is not None
    assert summary_lines(built, SEED, SEED_FILE, regions=HOME) == [
        built.error.cause,
        f"  Log of the install: petal build logs {BUILD_ID}",
    ]


def test_a_failure_before_the_install_offers_no_log_it_does_not_have() -> None:
    for built in (FAILED_LAUNCH, replace(FAILED_BOOTSTRAP, command_id=None)):
        assert built.error is not None
        assert summary_lines(built, SEED, SEED_FILE, regions=HOME) == [built.error.cause]


def test_a_seed_for_another_region_is_copied_there_before_create() -> None:
    # The stack (and so the snapshot) is in us-east-1; the seed's clusters run in
    # us-west-2, where `petal create` looks.
    seed = replace(SEED, cluster=replace(SEED.cluster, region="us-west-2"))
    assert summary_lines(SUCCEEDED, seed, SEED_FILE, regions=HOME)[-3:] == [
        "Deploy clusters with:",
        f"  petal build copy {SNAPSHOT} --from us-east-1 --to us-west-2",
        f"  petal create --seed {SEED_FILE} --name my-cluster",
    ]


def test_a_build_in_another_region_than_create_looks_in_names_it() -> None:
    away = BuildRegions(built_in="eu-west-1", create_default="us-east-1")
    seed = replace(SEED, cluster=replace(SEED.cluster, region=None))
    assert summary_lines(SUCCEEDED, seed, SEED_FILE, regions=away)[-1] == (
        f"  petal create --seed {SEED_FILE} --name my-cluster --region eu-west-1"
    )


def test_a_local_mode_install_does_not_promise_an_hour(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(local_mode, "is_active", lambda: True)
    running = step_lines(RUNNING["bootstrap"])
    assert "⏳ Installing software (simulated: nothing is installed)..." in running
    assert not any("45-90" in line for line in running)


# --- the plain lines printed to a pipe ----------------------------------------------------


def test_new_lines_prints_each_line_once_and_the_bar_when_it_moves() -> None:
    printed: list[str] = []
    sequence = [
        RUNNING["prepare"],
        RUNNING["prepare"],
        RUNNING["launch"],
        RUNNING["ready"],
        record(step="bootstrap", progress=Progress(1, 3, "zlib@1.3.1"), **LAUNCHED),
        record(step="bootstrap", progress=Progress(1, 3, "zlib@1.3.1"), **LAUNCHED),
        RUNNING["bootstrap"],
        SUCCEEDED,
    ]
    shown = [new_lines(printed, r, prefix_id=False) for r in sequence]
    assert shown == [
        ["⏳ Checking the seed and looking for an existing snapshot..."],
        [],
        [
            "✅ Checked the seed",
            "⏳ Launching the build instance and creating the software volume...",
        ],
        [
            "✅ Launched build instance (i-0123456789abcdef0) and created volume "
            "(vol-0123456789abcdef0)",
            "⏳ Waiting for the instance, attaching the volume...",
        ],
        [
            "✅ Attached the volume",
            "⏳ Installing software (this takes 45-90 minutes)...",
            "   [░░░░░░░░░░░░░░░░░░░░] 1/3 - Installing zlib@1.3.1",
        ],
        [],
        ["   [██████░░░░░░░░░░░░░░] 2/3 - Installing bzip2@1.0.8"],
        [
            "✅ Software installation complete",
            "✅ Created snapshot (snap-0123456789abcdef0)",
            "✅ Cleaned up build resources",
        ],
    ]


def test_new_lines_names_the_build_when_several_are_watched() -> None:
    printed: list[str] = []
    assert new_lines(printed, FAILED_LAUNCH, prefix_id=True) == [
        f"[{BUILD_ID}] ✅ Checked the seed",
        f"[{BUILD_ID}] ❌ Launching the build instance and creating the software volume failed "
        "(NoBuilderCapacity)",
        f"[{BUILD_ID}] ✅ Cleaned up build resources",
    ]
    assert new_lines(printed, FAILED_LAUNCH, prefix_id=True) == []


# --- the terminal view (rich) ---------------------------------------------------------------


def render(records: Sequence[BuildRecord]) -> str:
    console = Console(record=True, width=100, force_terminal=False, color_system=None)
    console.print(rich_view(records, NOW))
    return console.export_text()


def golden(text: str) -> str:
    """Rich pads each checklist row to the widest one; `|` marks where a padded line
    ends, so the golden text has no trailing spaces for an editor to strip."""
    return text.replace("|\n", "\n")


RICH = {
    "prepare": """\
🌸 workload-basic-20250131120000-a1b2c3  alinux2023/x86_64  running  30:05
⏳ Checking the seed and looking for an existing snapshot...

""",
    "launch": """\
🌸 workload-basic-20250131120000-a1b2c3  alinux2023/x86_64  running  30:05
✅ Checked the seed                                                |
⏳ Launching the build instance and creating the software volume...

""",
    "bootstrap": """\
🌸 workload-basic-20250131120000-a1b2c3  alinux2023/x86_64  running  30:05
✅ Checked the seed                                                                        |
✅ Launched build instance (i-0123456789abcdef0) and created volume (vol-0123456789abcdef0)
✅ Attached the volume                                                                     |
⏳ Installing software (this takes 45-90 minutes)...                                       |
   ━━━━━━━━━━━━━                            2/3 - Installing bzip2@1.0.8

""",
    "snapshot": """\
🌸 workload-basic-20250131120000-a1b2c3  alinux2023/x86_64  running  30:05
✅ Checked the seed                                                                        |
✅ Launched build instance (i-0123456789abcdef0) and created volume (vol-0123456789abcdef0)
✅ Attached the volume                                                                     |
✅ Software installation complete                                                          |
⏳ Creating the snapshot...                                                                |

""",
    "succeeded": """\
🌸 workload-basic-20250131120000-a1b2c3  alinux2023/x86_64  succeeded  1:02:03
✅ Checked the seed                                                                        |
✅ Launched build instance (i-0123456789abcdef0) and created volume (vol-0123456789abcdef0)
✅ Attached the volume                                                                     |
✅ Software installation complete                                                          |
✅ Created snapshot (snap-0123456789abcdef0)                                               |
✅ Cleaned up build resources                                                              |

""",
    "failed-launch": """\
🌸 workload-basic-20250131120000-a1b2c3  alinux2023/x86_64  failed  20:00
✅ Checked the seed                                                                        |
❌ Launching the build instance and creating the software volume failed (NoBuilderCapacity)
✅ Cleaned up build resources                                                              |

""",
    "failed-bootstrap": """\
🌸 workload-basic-20250131120000-a1b2c3  alinux2023/x86_64  failed  20:00
✅ Checked the seed                                                                        |
✅ Launched build instance (i-0123456789abcdef0) and created volume (vol-0123456789abcdef0)
✅ Attached the volume                                                                     |
❌ Installing software (this takes 45-90 minutes) failed (BootstrapFailed)                 |
✅ Cleaned up build resources                                                              |

""",
    "failed-snapshot": """\
🌸 workload-basic-20250131120000-a1b2c3  alinux2023/x86_64  failed  20:00
✅ Checked the seed                                                                        |
✅ Launched build instance (i-0123456789abcdef0) and created volume (vol-0123456789abcdef0)
✅ Attached the volume                                                                     |
✅ Software installation complete                                                          |
❌ Creating the snapshot failed (SnapshotFailed)                                           |
✅ Cleaned up build resources                                                              |

""",
    "cancelled": """\
🌸 workload-basic-20250131120000-a1b2c3  alinux2023/x86_64  cancelled  10:00
✅ Checked the seed                                                                        |
✅ Launched build instance (i-0123456789abcdef0) and created volume (vol-0123456789abcdef0)
✅ Attached the volume                                                                     |
❌ Installing software (this takes 45-90 minutes) cancelled (BuildCancelled)               |
✅ Cleaned up build resources                                                              |

""",
    "reused": """\
🌸 workload-basic-20250131120000-a1b2c3  alinux2023/x86_64  reused  0:02
✅ Software volume already exists: snap-0fedcba9876543210

""",
}
RICH_RECORDS = {
    "prepare": RUNNING["prepare"],
    "launch": RUNNING["launch"],
    "bootstrap": RUNNING["bootstrap"],
    "snapshot": RUNNING["snapshot"],
    "succeeded": SUCCEEDED,
    "failed-launch": FAILED_LAUNCH,
    "failed-bootstrap": FAILED_BOOTSTRAP,
    "failed-snapshot": FAILED_SNAPSHOT,
    "cancelled": CANCELLED,
    "reused": REUSED,
}


@pytest.mark.parametrize("case", list(RICH))
def test_the_terminal_view(case: str) -> None:
    assert render([RICH_RECORDS[case]]) == golden(RICH[case])


def test_the_terminal_view_shows_every_watched_build_in_order() -> None:
    assert render([REUSED, RUNNING["prepare"]]) == golden(RICH["reused"] + RICH["prepare"])


# --- watch: following builds in plain mode ----------------------------------------------


class ScriptedTable:
    """The builds table as the watcher sees it: each build's record at poll k is
    script[build_id][k] (the last one once the script runs out)."""

    def __init__(self, script: dict[str, list[BuildRecord | None]]) -> None:
        self.script = script
        self.poll = 0

    def get_build(self, build_id: str) -> BuildRecord | None:
        states = self.script[build_id]
        return states[min(self.poll, len(states) - 1)]


class FakeStepFunctions:
    """describe_execution for builds that have no record (not started yet, or ended
    before Prepare wrote one)."""

    def __init__(self, executions: dict[str, dict[str, Any]] | None = None) -> None:
        self.executions = executions or {}
        self.described: list[str] = []

    def describe_execution(self, executionArn: str) -> dict[str, Any]:
        self.described.append(executionArn)
        name = executionArn.rsplit(":", 1)[-1]
        if name not in self.executions:
            raise ClientError(
                {"Error": {"Code": "ExecutionDoesNotExist", "Message": "no such execution"}},
                "DescribeExecution",
            )
        return self.executions[name]


class Clock:
    """The watcher's sleep: advances the scripted table, or is interrupted."""

    def __init__(self, table: ScriptedTable, interrupt_at: int | None = None) -> None:
        self.table = table
        self.interrupt_at = interrupt_at
        self.sleeps: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        if len(self.sleeps) > 100:
            raise AssertionError("the watch never ends")
        if self.interrupt_at is not None and len(self.sleeps) == self.interrupt_at:
            raise KeyboardInterrupt
        self.table.poll += 1


def watch(
    script: dict[str, list[BuildRecord | None]],
    *,
    stepfunctions: FakeStepFunctions | None = None,
    interrupt_at: int | None = None,
    as_json: bool = False,
) -> tuple[int, Clock, FakeStepFunctions]:
    table = ScriptedTable(script)
    sfn = stepfunctions or FakeStepFunctions()
    pipeline = SimpleNamespace(
        table=table,
        deployment=SimpleNamespace(state_machine_arn=MACHINE, region="us-east-1"),
        client=lambda service: {"stepfunctions": sfn}[service],
    )
    clock = Clock(table, interrupt_at)
    code = build_watch.watch(
        pipeline,  # type: ignore[arg-type]
        list(script),
        SEED,
        SEED_FILE,
        as_json=as_json,
        sleep=clock,
    )
    return code, clock, sfn


SUCCESSFUL_RUN: list[BuildRecord | None] = [
    None,  # the execution has started, Prepare has not written the record yet
    RUNNING["prepare"],
    RUNNING["launch"],
    RUNNING["ready"],
    record(step="bootstrap", progress=Progress(1, 3, "zlib@1.3.1"), **LAUNCHED),
    record(step="bootstrap", progress=Progress(1, 3, "zlib@1.3.1"), **LAUNCHED),
    RUNNING["bootstrap"],
    record(step="bootstrap", progress=Progress(3, 3, "xz@5.4.6"), **LAUNCHED),
    RUNNING["snapshot"],
    RUNNING["snapshot"],
    RUNNING["cleanup"],
    SUCCEEDED,
]


def test_watch_prints_each_step_once_the_bar_when_it_moves_then_the_summary(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, clock, sfn = watch(
        {BUILD_ID: SUCCESSFUL_RUN},
        stepfunctions=FakeStepFunctions({BUILD_ID: {"status": "RUNNING"}}),
    )
    assert code == 0
    assert capsys.readouterr().out == (
        """\
⏳ Checking the seed and looking for an existing snapshot...
✅ Checked the seed
⏳ Launching the build instance and creating the software volume...
✅ Launched build instance (i-0123456789abcdef0) and created volume (vol-0123456789abcdef0)
⏳ Waiting for the instance, attaching the volume...
✅ Attached the volume
⏳ Installing software (this takes 45-90 minutes)...
   [░░░░░░░░░░░░░░░░░░░░] 1/3 - Installing zlib@1.3.1
   [██████░░░░░░░░░░░░░░] 2/3 - Installing bzip2@1.0.8
   [█████████████░░░░░░░] 3/3 - Installing xz@5.4.6
✅ Software installation complete
⏳ Creating the snapshot...
✅ Created snapshot (snap-0123456789abcdef0)
⏳ Cleaning up build resources...
✅ Cleaned up build resources

Software Volume Ready!
  Snapshot ID: snap-0123456789abcdef0
  Fingerprint: sha256:abababababababababababababababababababababababababababababababab
  Variant:     alinux2023/x86_64
  Packages:    zlib@1.3.1, bzip2@1.0.8, xz@5.4.6

Deploy clusters with:
  petal create --seed seeds/testing/workload-basic.yaml --name my-cluster
"""
    )
    # One poll per record state, no sleep after the last one.
    assert len(clock.sleeps) == len(SUCCESSFUL_RUN) - 1
    assert clock.sleeps == [build_watch.POLL_SECONDS] * (len(SUCCESSFUL_RUN) - 1)
    # Only this build's execution was asked about (while it had no record, and while
    # its record said RUNNING: the watcher follows the execution too).
    assert set(sfn.described) == {f"{MACHINE.replace(':stateMachine:', ':execution:')}:{BUILD_ID}"}


def test_watch_exits_1_and_prints_the_cause_when_the_build_fails(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, _, _ = watch(
        {BUILD_ID: [RUNNING["ready"], RUNNING["bootstrap"], FAILED_BOOTSTRAP]},
    )
    assert code == 1
    assert capsys.readouterr().out == (
        f"""\
✅ Checked the seed
✅ Launched build instance (i-0123456789abcdef0) and created volume (vol-0123456789abcdef0)
⏳ Waiting for the instance, attaching the volume...
✅ Attached the volume
⏳ Installing software (this takes 45-90 minutes)...
   [██████░░░░░░░░░░░░░░] 2/3 - Installing bzip2@1.0.8
❌ Installing software (this takes 45-90 minutes) failed (BootstrapFailed)
✅ Cleaned up build resources

Build {BUILD_ID} failed in step bootstrap (BootstrapFailed): spack install failed for bzip2@1.0.8. What to do: read the build log.
  Log of the install: petal build logs {BUILD_ID}
"""
    )


def test_watch_of_several_builds_names_each_and_fails_if_one_fails(
    capsys: pytest.CaptureFixture[str],
) -> None:
    other = "workload-basic-20250131120000-d4e5f6-rocky9-arm64"
    arm = replace(REUSED, build_id=other, os="rocky9", architecture="arm64")
    code, _, _ = watch({BUILD_ID: [RUNNING["launch"], FAILED_LAUNCH], other: [arm]})
    assert code == 1
    assert capsys.readouterr().out == (
        f"""\
[{BUILD_ID}] ✅ Checked the seed
[{BUILD_ID}] ⏳ Launching the build instance and creating the software volume...
[{other}] ✅ Software volume already exists: snap-0fedcba9876543210
[{BUILD_ID}] ❌ Launching the build instance and creating the software volume failed (NoBuilderCapacity)
[{BUILD_ID}] ✅ Cleaned up build resources

Build {BUILD_ID} failed in step launch (NoBuilderCapacity): no subnet had capacity for c6a.xlarge. What to do: add subnets in other zones, or try again later.

Software Volume Ready!
  Snapshot ID: snap-0fedcba9876543210
  Fingerprint: sha256:abababababababababababababababababababababababababababababababab
  Variant:     rocky9/arm64
  Packages:    zlib@1.3.1, bzip2@1.0.8, xz@5.4.6

Deploy clusters with:
  petal create --seed seeds/testing/workload-basic.yaml --name my-cluster --os rocky9 --arch arm64
"""
    )


def test_watch_ends_when_the_execution_ended_before_any_record_was_written(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Prepare rejects a request before it writes the record: the watcher must not wait
    # for a record that never comes (it used to poll forever).
    cause = f"Build {BUILD_ID} failed in step prepare (InvalidBuildRequest): the seed is invalid."
    execution = {
        "status": "FAILED",
        "startDate": datetime(2025, 1, 31, 12, 0, tzinfo=UTC),
        "stopDate": datetime(2025, 1, 31, 12, 0, 3, tzinfo=UTC),
        "input": json.dumps({"seed": {}, "os": "rocky9", "architecture": "arm64"}),
        "error": "InvalidBuildRequest",
        "cause": cause,
    }
    code, clock, _ = watch(
        {BUILD_ID: [None]}, stepfunctions=FakeStepFunctions({BUILD_ID: execution})
    )
    assert code == 1
    assert clock.sleeps == []
    assert capsys.readouterr().out == (
        f"""\
❌ Checking the seed and looking for an existing snapshot failed (InvalidBuildRequest)
✅ Cleaned up build resources

{cause}
"""
    )


def test_watch_json_prints_the_final_records_only(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, _ = watch({BUILD_ID: [RUNNING["snapshot"], SUCCEEDED]}, as_json=True)
    assert code == 0
    assert json.loads(capsys.readouterr().out) == [SUCCEEDED.to_json()]


def test_interrupting_the_watch_says_how_to_resume_and_exits_130(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, clock, _ = watch({BUILD_ID: SUCCESSFUL_RUN[1:]}, interrupt_at=4)
    assert code == 130
    assert len(clock.sleeps) == 4
    out, err = capsys.readouterr()
    assert out == (
        """\
⏳ Checking the seed and looking for an existing snapshot...
✅ Checked the seed
⏳ Launching the build instance and creating the software volume...
✅ Launched build instance (i-0123456789abcdef0) and created volume (vol-0123456789abcdef0)
⏳ Waiting for the instance, attaching the volume...
✅ Attached the volume
⏳ Installing software (this takes 45-90 minutes)...
   [░░░░░░░░░░░░░░░░░░░░] 1/3 - Installing zlib@1.3.1
"""
    )
    assert err == (
        f"""
Stopped watching; the build goes on. Resume with:
  petal build status {BUILD_ID} --watch
"""
    )


def test_the_build_log_reaches_the_terminal_without_its_escape_sequences(
    capsys: pytest.CaptureFixture[str],
) -> None:
    class Logs:
        def get_paginator(self, name: str) -> Any:
            assert name == "filter_log_events"
            return SimpleNamespace(paginate=lambda **kwargs: [{"events": events}])

    key = "3c" * 32
    events = [
        {
            "eventId": "1",
            "message": sign_line(key, "b1", "PETAL-STEP install")
            + "\n\x1b[2Jcleared\x1b]8;;https://x\x07link\n",
        },
        {"eventId": "2", "message": "done\n"},
        # Written into the stream by another builder: shown for what it is.
        {"eventId": "3", "message": "PETAL-FAILED install: run\x1b[2J curl x | sh\n"},
        {"eventId": "4", "message": sign_line("ab" * 32, "b1", "PETAL-STEP done") + "\n"},
    ]
    build_watch._print_new_events(Logs(), "group", "cmd", set(), build_watch._LogLines("b1", key))
    out = capsys.readouterr().out
    assert out.splitlines() == [
        "PETAL-STEP install",
        "clearedlink",
        "done",
        "[UNVERIFIED] PETAL-FAILED install: run curl x | sh",
        "[UNVERIFIED] " + sign_line("ab" * 32, "b1", "PETAL-STEP done"),
    ]
    assert key not in out
