"""How a running build looks: pipeline steps with ticks, the install as a progress bar.

Rendering is a pure function of the build records and the time, so the output can be
tested with a fixed clock: `plain_lines` for logs and pipes (one line per change),
`rich_view` for a terminal.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from rich.console import Group, RenderableType
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from petal.build.records import FINISHED, SUCCESSFUL, BuildRecord, parse_iso
from petal.cli import hints
from petal.cli.output import terminal_safe
from petal.local import mode as local_mode
from petal.seed.model import Seed

# The state machine's steps as the build record names them: what a person reads while
# the step runs, and once it is done (filled in from the record).
STEPS: Final[tuple[tuple[str, str, str], ...]] = (
    ("prepare", "Checking the seed and looking for an existing snapshot", "Checked the seed"),
    (
        "launch",
        "Launching the build instance and creating the software volume",
        "Launched build instance ({instance_id}) and created volume ({volume_id})",
    ),
    ("ready", "Waiting for the instance, attaching the volume", "Attached the volume"),
    ("bootstrap", "Installing software{duration}", "Software installation complete"),
    ("snapshot", "Creating the snapshot", "Created snapshot ({snapshot_id})"),
    ("cleanup", "Cleaning up build resources", "Cleaned up build resources"),
)
_STEP_INDEX: Final = {name: index for index, (name, _, _) in enumerate(STEPS)}
# A real install's duration; local mode's simulated builder takes seconds and says so.
INSTALL_DURATION: Final = " (this takes 45-90 minutes)"
SIMULATED_INSTALL: Final = " (simulated: nothing is installed)"
BAR_WIDTH: Final = 20


def elapsed(record: BuildRecord, now: datetime) -> str:
    end = parse_iso(record.finished_at) if record.finished_at else now
    seconds = max(0, int((end - parse_iso(record.started_at)).total_seconds()))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _current_index(record: BuildRecord) -> int:
    if record.status == "SUCCEEDED":
        return len(STEPS)
    return _STEP_INDEX.get(record.step or "prepare", 0)


def _failed_index(record: BuildRecord) -> int | None:
    if record.error is None:
        return None
    return _STEP_INDEX.get(record.error.step)


def progress_text(record: BuildRecord) -> str | None:
    """`[████████░░░░] 3/5 samtools@1.17` while installing, else None."""
    progress = record.progress
    if progress is None or record.step != "bootstrap" or progress.total <= 0:
        return None
    filled = BAR_WIDTH * (progress.done - 1) // progress.total
    bar = "█" * filled + "░" * (BAR_WIDTH - filled)
    return f"[{bar}] {_progress_caption(record)}"


def _progress_caption(record: BuildRecord) -> str:
    progress = record.progress
    assert progress is not None
    # The spec is what the builder printed: it reaches the terminal only made safe.
    spec = terminal_safe(progress.spec, one_line=True)
    return f"{progress.done}/{progress.total} - Installing {spec}"


def status_line(record: BuildRecord, now: datetime) -> str:
    """One line that changes whenever something a person cares about changes."""
    head = f"{record.build_id} ({record.variant}) {record.status.lower()}"
    if record.status == "RUNNING":
        index = _current_index(record)
        label = STEPS[index][0] if index < len(STEPS) else "finishing"
        head += f", step {label}"
        if bar := progress_text(record):
            head += f" {bar}"
    elif record.status in SUCCESSFUL:
        head += f": {record.snapshot_id}"
    elif record.error is not None:
        head += f" in {record.error.step} ({record.error.error})"
    return f"{head} [{elapsed(record, now)}]"


def _label(template: str, record: BuildRecord) -> str:
    return template.format(
        instance_id=record.instance_id or "?",
        volume_id=record.volume_id or "?",
        snapshot_id=record.snapshot_id or "?",
        duration=SIMULATED_INSTALL if local_mode.is_active() else INSTALL_DURATION,
    )


def step_lines(record: BuildRecord, *, bar: bool = True) -> list[str]:
    """The spec's checklist: ✅ for steps done, ⏳ for the one running, ❌ for the one
    that failed (then only the cleanup follows). `bar`: the install's progress as a
    text bar under its step (the terminal view draws its own instead)."""
    if record.status == "REUSED":
        return [f"✅ Software volume already exists: {record.snapshot_id}"]
    failed = _failed_index(record)
    cleanup = _STEP_INDEX["cleanup"]
    finished = record.status != "RUNNING"
    current = cleanup + 1 if finished and failed is not None else _current_index(record)
    lines = []
    for index, (_, running, done) in enumerate(STEPS):
        if failed is not None and index == failed and record.error is not None:
            verb = "cancelled" if record.status == "CANCELLED" else "failed"
            lines.append(f"❌ {_label(running, record)} {verb} ({record.error.error})")
            if index == cleanup:
                break
        elif failed is not None and failed < index < cleanup:
            continue  # never ran: the failure went straight to the cleanup
        elif index < current:
            lines.append(f"✅ {_label(done, record)}")
        elif index == current and not finished:
            lines.append(f"⏳ {_label(running, record)}...")
            if bar and (text := progress_text(record)):
                lines.append(f"   {text}")
    return lines


def rich_view(records: Sequence[BuildRecord], now: datetime) -> RenderableType:
    parts: list[RenderableType] = []
    for record in records:
        title = Text.assemble(
            ("🌸 ", ""),
            (record.build_id, "bold"),
            f"  {record.variant}  ",
            (record.status.lower(), _status_style(record.status)),
            f"  {elapsed(record, now)}",
        )
        parts.append(title)
        table = Table.grid(padding=(0, 1))
        for line in step_lines(record, bar=False):
            table.add_row(line)
        parts.append(table)
        # The one progress display in a terminal: rich's bar, not the text bar as well.
        if progress_text(record) is not None and record.status not in FINISHED:
            progress = record.progress
            assert progress is not None
            bar = Table.grid(padding=(0, 1))
            bar.add_row(
                Text("  "),
                ProgressBar(total=progress.total, completed=progress.done - 1, width=40),
                Text(_progress_caption(record)),
            )
            parts.append(bar)
        parts.append(Text(""))
    return Group(*parts)


def _status_style(status: str) -> str:
    return {"SUCCEEDED": "green", "REUSED": "green", "FAILED": "red", "CANCELLED": "yellow"}.get(
        status, "cyan"
    )


def new_lines(printed: list[str], record: BuildRecord, prefix_id: bool) -> list[str]:
    """The checklist lines not printed yet, for output that is not a terminal: each
    finished step once, the install bar whenever it moves. `printed` is updated."""
    fresh = []
    for line in step_lines(record):
        shown = f"[{record.build_id}] {line}" if prefix_id else line
        if shown not in printed:
            printed.append(shown)
            fresh.append(shown)
    return fresh


def summary_lines(
    record: BuildRecord, seed: Seed | None, seed_file: str, *, regions: BuildRegions
) -> list[str]:
    """What a finished build leaves the user with, as in the spec's example output."""
    if record.status in SUCCESSFUL:
        packages = (
            ", ".join(seed.software.packages) if seed else f"(see {hints.petal('build list')})"
        )
        return [
            "Software Volume Ready!",
            f"  Snapshot ID: {record.snapshot_id}",
            f"  Fingerprint: {record.fingerprint}",
            f"  Variant:     {record.variant}",
            f"  Packages:    {packages}",
            "",
            "Deploy clusters with:",
            *(f"  {command}" for command in deploy_commands(record, seed, seed_file, regions)),
        ]
    # The cause quotes the builder's log tail, and was written by the pipeline, which
    # cannot know how this command was invoked (its suggestions need this one's options).
    cause = (
        hints.in_text(terminal_safe(record.error.cause)) if record.error else "no reason recorded"
    )
    if not record.command_id:
        return [cause]  # the install never started: there is no log to read
    return [cause, f"  Log of the install: {hints.petal(f'build logs {record.build_id}')}"]


@dataclass(frozen=True)
class BuildRegions:
    """Where the build's snapshot is (the stack's region) and where `petal create`
    looks when the seed names no cluster.region (its default region)."""

    built_in: str
    create_default: str | None


def deploy_commands(
    record: BuildRecord, seed: Seed | None, seed_file: str, regions: BuildRegions
) -> list[str]:
    """The commands that turn this build's snapshot into a cluster config. `petal create`
    looks in the cluster's region: a seed whose cluster.region is not where petal built
    needs a copy there first (as it would against AWS, where the stack is in one region)."""
    create = f"create --seed {shlex.quote(seed_file)} --name my-cluster"
    if seed is None or (record.os, record.architecture) != (seed.os, seed.architecture):
        create += f" --os {record.os} --arch {record.architecture}"
    target = seed.cluster.region if seed is not None else None
    if target and target != regions.built_in:
        copy = f"build copy {record.snapshot_id} --from {regions.built_in} --to {target}"
        return [hints.petal(copy), hints.petal(create)]
    if not target and regions.built_in != regions.create_default:
        create += f" --region {regions.built_in}"
    return [hints.petal(create)]
