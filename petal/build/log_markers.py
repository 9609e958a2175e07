"""Parse the marker lines the bootstrap prints (ssm_documents/bootstrap.sh).

Used by the build-log subscription Lambda, the callback (a failure's cause), `petal build
logs` and local mode's simulated builder:

    PETAL-STEP <name>              a step starts ("done" when the bootstrap finished)
    PETAL-PROGRESS <k>/<n> <spec>  root spec k of n starts installing
    PETAL-HEARTBEAT <unix time>    the instance is alive
    PETAL-FAILED <step>: <reason>  the bootstrap failed in <step> (the last line it prints)
    PETAL-MANIFEST sha256:<hex>    the manifest's copy is uploaded (petal.build.manifest)
    PETAL-TAIL <line>              on failure, before PETAL-FAILED: its last lines

A marker counts only at the start of a line (leading whitespace aside), so a package's
build output that merely mentions one is not taken for it. The free text of a marker
(a spec, a failure's reason) is the builder's: it leaves here with its terminal
controls neutralised (petal.text), so no record or display holds them.

Every builder may write every stream of the build log group (stacks/builder_identity.py),
so a line's stream says nothing about who wrote it. What does: each marker line ends in
" PETAL-MAC=<tag>", the HMAC-SHA256 of "<build id>\n<marker text>" under the build's log
key, a secret petal makes for each build (`new_log_key`), keeps in the build's item of the
builds table (which no builder can read) and hands to that build's bootstrap alone, as a
parameter of its SSM command. `read_log` believes a marker only if its tag verifies with
the build's key: another builder's lines (no tag, a tag under its own key, or its own
build's lines replayed, which name its build id) are refused, with the reason.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final, Literal

from petal.build.manifest import MANIFEST_MARKER
from petal.deployment_contract import (
    FAILURE_MARKER,
    HEARTBEAT_MARKER,
    MAC_FIELD,
    PARAM_LOG_KEY,
    PROGRESS_MARKER,
    STEP_MARKER,
    TAIL_MARKER,
)
from petal.text import terminal_safe

LogKind = Literal["step", "progress", "heartbeat", "failed", "manifest", "tail"]

# The step the bootstrap announces last when it succeeded.
STEP_DONE: Final = "done"
# The step a failure names when the document's parameters were invalid (before any step).
STEP_PARAMETERS: Final = "parameters"

_STEP_NAME = r"[a-z][a-z0-9_-]*"
_STEP = re.compile(rf"{re.escape(STEP_MARKER)} (?P<step>{_STEP_NAME})")
_PROGRESS = re.compile(rf"{re.escape(PROGRESS_MARKER)} (?P<done>\d+)/(?P<total>\d+) (?P<spec>\S.*)")
_HEARTBEAT = re.compile(rf"{re.escape(HEARTBEAT_MARKER)} (?P<time>\d+)")
_FAILED = re.compile(rf"{re.escape(FAILURE_MARKER)} (?P<step>{_STEP_NAME}): ?(?P<message>.*)")
# PETAL-MANIFEST sha256:<hex>: the manifest is uploaded (petal.build.manifest).
_MANIFEST = re.compile(rf"{re.escape(MANIFEST_MARKER)} (?P<sha>sha256:[0-9a-f]{{64}})")
_TAIL = re.compile(rf"{re.escape(TAIL_MARKER)}(?: (?P<line>.*))?")  # an empty line too
# The greedy text takes everything up to the LAST tag: a text that itself ends in
# something like a tag is covered by the tag after it.
_SIGNED = re.compile(rf"(?P<text>.*) {re.escape(MAC_FIELD)}=(?P<tag>[0-9a-f]{{64}})")
LOG_KEY_BYTES: Final = 32
LOG_KEY_PATTERN: Final = re.compile(r"[0-9a-f]{64}")
# How much of a refused line a rejection's reason quotes.
_QUOTED: Final = 80


@dataclass(frozen=True, slots=True)
class LogEvent:
    """One marker line. Fields that do not apply to the kind are None."""

    kind: LogKind
    step: str | None = None  # step: the step starting; failed: the step that failed
    done: int | None = None  # progress: k, the root spec starting (1-based)
    total: int | None = None  # progress: n, the number of root specs
    spec: str | None = None  # progress: the root spec
    message: str | None = None  # failed: the reason; tail: the line
    timestamp: int | None = None  # heartbeat: unix time on the instance
    sha256: str | None = None  # manifest: sha256:<hex> of the uploaded manifest


def new_log_key() -> str:
    """A build's log key: 32 random bytes from the OS's CSPRNG, as 64 hex digits."""
    return secrets.token_hex(LOG_KEY_BYTES)


def log_key_parameter(key: str) -> dict[str, list[str]]:
    """The bootstrap command's parameter that hands the key to the build's builder."""
    return {PARAM_LOG_KEY: [key]}


def line_tag(key: str, build_id: str, text: str) -> str:
    """The tag of a marker's text: HMAC-SHA256 under the key, over the build id and the
    text (bootstrap.sh's hmac_sha256 computes the same), in hex."""
    message = f"{build_id}\n{text}".encode()
    return hmac.new(bytes.fromhex(key), message, hashlib.sha256).hexdigest()


def sign_line(key: str, build_id: str, text: str) -> str:
    """A marker line as the bootstrap prints it: the text, then its tag."""
    return f"{text} {MAC_FIELD}={line_tag(key, build_id, text)}"


def parse_log_line(line: str) -> LogEvent | None:
    """The event a marker's text reports, or None for any other text. The text only:
    whether the build's builder wrote it is `read_log`'s to check."""
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
    if match := _MANIFEST.fullmatch(text):
        return LogEvent(kind="manifest", sha256=match["sha"])
    if match := _TAIL.fullmatch(text):
        return LogEvent(kind="tail", message=terminal_safe(match["line"] or "", one_line=True))
    return None


@dataclass(frozen=True)
class LogRead:
    """The markers of a log that the build's builder wrote, and why every other line
    that claimed to be a marker was refused."""

    events: list[LogEvent] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)

    @property
    def tail(self) -> list[str]:
        """The lines the bootstrap repeated when it failed (PETAL-TAIL), in order."""
        return [e.message or "" for e in self.events if e.kind == "tail"]

    @property
    def failure(self) -> LogEvent | None:
        """The bootstrap's PETAL-FAILED, its last word when it fails."""
        return next((e for e in reversed(self.events) if e.kind == "failed"), None)


def check_line(line: str, *, key: str | None, build_id: str) -> tuple[str, bool]:
    """(the marker's text, True) when the line's tag verifies with the build's key;
    (why it is refused, False) otherwise. For lines that start with "PETAL-"."""
    candidate = line.strip()
    quoted = terminal_safe(candidate[:_QUOTED], one_line=True)
    if key is not None and LOG_KEY_PATTERN.fullmatch(key) is None:
        key = None  # not a key petal made: nothing verifies
    signed = _SIGNED.fullmatch(candidate)
    if signed is None:
        return f"no {MAC_FIELD} tag: {quoted!r}", False
    if key is None:
        return f"build {build_id} has no log key to verify {quoted!r}", False
    if not hmac.compare_digest(line_tag(key, build_id, signed["text"]), signed["tag"]):
        return f"the tag is not build {build_id}'s: {quoted!r}", False
    return signed["text"], True


def read_log(texts: str | Iterable[str], *, key: str | None, build_id: str) -> LogRead:
    """The markers of a text or of many texts whose tag verifies with the build's key.

    Each text may hold several lines: the SSM agent sends all the lines a command
    printed in about a second as ONE CloudWatch Logs event, so an event's message is a
    run of lines, not a line. A line that does not start with "PETAL-" is the build's
    ordinary output, neither a marker nor refused."""
    events: list[LogEvent] = []
    rejected: list[str] = []
    for text in [texts] if isinstance(texts, str) else texts:
        for line in text.splitlines():
            if not line.lstrip().startswith("PETAL-"):
                continue
            checked, verified = check_line(line, key=key, build_id=build_id)
            event = parse_log_line(checked) if verified else None
            if event is not None:
                events.append(event)
            elif verified:
                quoted = terminal_safe(checked[:_QUOTED], one_line=True)
                rejected.append(f"not a marker petal knows: {quoted!r}")
            else:
                rejected.append(checked)
    return LogRead(events, rejected)
