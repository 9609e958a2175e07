"""How a running build looks: pipeline steps with ticks, the install as a progress bar.

Rendering is a pure function of the build records and the time, so the output can be
tested with a fixed clock: `plain_lines` for logs and pipes (one line per change),
`rich_view` for a terminal.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Final

from rich.console import Group, RenderableType
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from petal.build.records import FINISHED, BuildRecord, parse_iso
from petal.cli import hints
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
    (
        "bootstrap",
        "Installing software (this takes 45-90 minutes)",
        "Software installation complete",
    ),
    ("snapshot", "Creating the snapshot", "Created snapshot ({snapshot_id})"),
    ("cleanup", "Cleaning up build resources", "Cleaned up build resources"),
)
_STEP_INDEX: Final = {name: index for index, (name, _, _) in enumerate(STEPS)}
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
    return f"[{bar}] {progress.done}/{progress.total} - Installing {progress.spec}"


def status_line(record: BuildRecord, now: datetime) -> str:
    """One line that changes whenever something a person cares about changes."""
    head = f"{record.build_id} ({record.variant}) {record.status.lower()}"
    if record.status == "RUNNING":
        index = _current_index(record)
        label = STEPS[index][0] if index < len(STEPS) else "finishing"
        head += f", step {label}"
        if bar := progress_text(record):
            head += f" {bar}"
    elif record.status in ("SUCCEEDED", "REUSED"):
        head += f": {record.snapshot_id}"
    elif record.error is not None:
        head += f" in {record.error.step} ({record.error.error})"
    return f"{head} [{elapsed(record, now)}]"


def _done_label(template: str, record: BuildRecord) -> str:
    return template.format(
        instance_id=record.instance_id or "?",
        volume_id=record.volume_id or "?",
        snapshot_id=record.snapshot_id or "?",
    )


def step_lines(record: BuildRecord) -> list[str]:
    """The spec's checklist: ✅ for steps done, ⏳ for the one running, ❌ for the one
    that failed (then only the cleanup follows)."""
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
            lines.append(f"❌ {running} {verb} ({record.error.error})")
            if index == cleanup:
                break
        elif failed is not None and failed < index < cleanup:
            continue  # never ran: the failure went straight to the cleanup
        elif index < current:
            lines.append(f"✅ {_done_label(done, record)}")
        elif index == current and not finished:
            lines.append(f"⏳ {running}...")
            if bar := progress_text(record):
                lines.append(f"   {bar}")
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
        for line in step_lines(record):
            table.add_row(line)
        parts.append(table)
        progress = record.progress
        if record.step == "bootstrap" and progress and record.status not in FINISHED:
            parts.append(ProgressBar(total=progress.total, completed=progress.done - 1, width=40))
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


def summary_lines(record: BuildRecord, seed: Seed | None, seed_file: str) -> list[str]:
    """What a finished build leaves the user with, as in the spec's example output."""
    if record.status in ("SUCCEEDED", "REUSED"):
        create = "  " + hints.petal(f"create --seed {seed_file} --name my-cluster")
        if seed is None or (record.os, record.architecture) != (seed.os, seed.architecture):
            create += f" --os {record.os} --arch {record.architecture}"
        packages = ", ".join(seed.software.packages) if seed else "(see petal build list)"
        return [
            "Software Volume Ready!",
            f"  Snapshot ID: {record.snapshot_id}",
            f"  Fingerprint: {record.fingerprint}",
            f"  Variant:     {record.variant}",
            f"  Packages:    {packages}",
            "",
            "Deploy clusters with:",
            create,
        ]
    cause = record.error.cause if record.error else "no reason recorded"
    return [cause, f"  Log of the install: {hints.petal(f'build logs {record.build_id}')}"]
