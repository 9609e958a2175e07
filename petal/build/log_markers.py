"""Parse the marker lines the bootstrap prints (ssm_documents/bootstrap.sh).

Used by the build-log subscription Lambda, the CLI's progress display and local mode:

    PETAL-STEP <name>              a step starts ("done" when the bootstrap finished)
    PETAL-PROGRESS <k>/<n> <spec>  root spec k of n starts installing
    PETAL-HEARTBEAT <unix time>    the instance is alive
    PETAL-FAILED <step>: <reason>  the bootstrap failed in <step> (the last line it prints)

A marker counts only at the start of a line (leading whitespace aside), so a package's
build output that merely mentions one is not taken for it. The free text of a marker
(a spec, a failure's reason) is the builder's: it leaves here with its terminal
controls neutralised (petal.text), so no record or display holds them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Final, Literal

from petal.deployment_contract import (
    FAILURE_MARKER,
    HEARTBEAT_MARKER,
    PROGRESS_MARKER,
    STEP_MARKER,
)
from petal.text import terminal_safe

LogKind = Literal["step", "progress", "heartbeat", "failed"]

# The step the bootstrap announces last when it succeeded.
STEP_DONE: Final = "done"
# The step a failure names when the document's parameters were invalid (before any step).
STEP_PARAMETERS: Final = "parameters"

_STEP_NAME = r"[a-z][a-z0-9_-]*"
_STEP = re.compile(rf"{re.escape(STEP_MARKER)} (?P<step>{_STEP_NAME})")
_PROGRESS = re.compile(rf"{re.escape(PROGRESS_MARKER)} (?P<done>\d+)/(?P<total>\d+) (?P<spec>\S.*)")
_HEARTBEAT = re.compile(rf"{re.escape(HEARTBEAT_MARKER)} (?P<time>\d+)")
_FAILED = re.compile(rf"{re.escape(FAILURE_MARKER)} (?P<step>{_STEP_NAME}): ?(?P<message>.*)")


@dataclass(frozen=True, slots=True)
class LogEvent:
    """One marker line. Fields that do not apply to the kind are None."""

    kind: LogKind
    step: str | None = None  # step: the step starting; failed: the step that failed
    done: int | None = None  # progress: k, the root spec starting (1-based)
    total: int | None = None  # progress: n, the number of root specs
    spec: str | None = None  # progress: the root spec
    message: str | None = None  # failed: the reason
    timestamp: int | None = None  # heartbeat: unix time on the instance


def parse_log_line(line: str) -> LogEvent | None:
    """The event a bootstrap output line reports, or None for any other line."""
    text = line.strip()
    if not text.startswith("PETAL-"):
        return None
    if match := _STEP.fullmatch(text):
        return LogEvent(kind="step", step=match["step"])
    if match := _PROGRESS.fullmatch(text):
        done, total = int(match["done"]), int(match["total"])
        if not 1 <= done <= total:
            return None
        spec = terminal_safe(match["spec"], one_line=True)
        return LogEvent(kind="progress", done=done, total=total, spec=spec)
    if match := _HEARTBEAT.fullmatch(text):
        return LogEvent(kind="heartbeat", timestamp=int(match["time"]))
    if match := _FAILED.fullmatch(text):
        message = terminal_safe(match["message"], one_line=True)
        return LogEvent(kind="failed", step=match["step"], message=message)
    return None


def parse_log(texts: str | Iterable[str]) -> Iterator[LogEvent]:
    """The events of a text or of many texts, each of which may hold several lines: the
    SSM agent sends all the lines a command printed in about a second as ONE CloudWatch
    Logs event, so an event's message is a run of lines, not a line."""
    for text in [texts] if isinstance(texts, str) else texts:
        for line in text.splitlines():
            event = parse_log_line(line)
            if event is not None:
                yield event
