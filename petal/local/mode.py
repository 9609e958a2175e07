"""`petal --local`: point every command at an AWS emulator on this machine.

The emulator (petal/local/server.py) is started on first use and kept running between
commands, so a build started by one command is listed by the next. Activation only
changes this process's environment: boto3 honours AWS_ENDPOINT_URL, so every command
runs its normal code against the emulator, and the user's real AWS credentials and
petal config are kept out of it.

The state directory ($PETAL_LOCAL_DIR, default ~/.local/state/petal/local) is how the
CLI and its emulator find each other; one emulator per directory:

    server.json   written by the emulator once it answers, removed when it stops: its
                  pid, address, start time and a token drawn at each start
    stopped       written by the emulator as it stops: why (stop, idle, a signal, error)
    server.log    the emulator's output (server.previous.log: the one before)

A server.json whose emulator no longer answers with its token means the emulator died
without stopping (kill -9, a crash, a reboot); its builds lived in its memory, and the
next command says they are gone instead of silently starting an empty one.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from petal.errors import InvalidInput, PetalError
from petal.local.deploy import STACK_NAME
from petal.local.failures import check_failure_request

START_TIMEOUT_SECONDS: Final = 120
# The emulator exits within a fraction of a second of being asked; one that does not
# is killed rather than left holding its port.
STOP_TIMEOUT_SECONDS: Final = 3.0
# Long enough for an emulator busy with a build's requests, which it serves one at a
# time, to answer.
HEALTH_TIMEOUT_SECONDS: Final = 5.0
POLL_SECONDS: Final = 0.02
ENV_LOCAL_DIR: Final = "PETAL_LOCAL_DIR"
# Real seconds the simulated install spends per root spec (tests set 0).
ENV_PACE_SECONDS: Final = "PETAL_LOCAL_PACE_SECONDS"
# The emulator serves its start token as an S3 object: moto answers an unsigned GET as
# S3, so the CLI can ask "are you the emulator I started?" without loading boto3 models.
HEALTH_BUCKET: Final = "petal-local-emulator"
HEALTH_KEY: Final = "token"
# `petal local stop` asks with this signal, so the emulator can tell that request from
# a SIGTERM sent by someone else (the system shutting down), which the next command
# reports.
STOP_SIGNAL: Final = signal.SIGUSR1
REASON_STOP: Final = "stop"
REASON_IDLE: Final = "idle"
REASON_ERROR: Final = "error"
NOTICE: Final = (
    "petal local mode: AWS is emulated on this machine ({endpoint}); builders are "
    "SIMULATED and install no software."
)
STARTED: Final = (
    "petal local mode: started the local AWS emulator (pid {pid}). It keeps running "
    "between commands and holds their builds in memory; `petal local status` shows it, "
    "`petal local stop` ends it (so does an idle hour)."
)
GONE: Final = "Its builds and snapshots lived in its memory and are gone"


class LocalModeError(PetalError, RuntimeError):
    """The emulator could not be started or reached; the message says what to do."""


@dataclass(frozen=True)
class LocalServer:
    endpoint: str
    region: str
    stack_name: str
    pid: int
    state_dir: Path
    started_at: float  # seconds since the epoch
    token: str  # drawn at each start: a reused pid or port is not this emulator


def state_dir() -> Path:
    if os.environ.get(ENV_LOCAL_DIR):
        return Path(os.environ[ENV_LOCAL_DIR])
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "petal" / "local"


def server_file(directory: Path) -> Path:
    """Written by the emulator once it answers, removed when it stops."""
    return directory / "server.json"


def stopped_file(directory: Path) -> Path:
    """Written when the emulator has stopped: its port and threads are released."""
    return directory / "stopped"


def log_file(directory: Path) -> Path:
    return directory / "server.log"


def failure_file(directory: Path, build_id: str) -> Path:
    """Where the CLI asks for a build to fail (`petal --local build --simulate-failure`)."""
    return directory / "failures" / f"{build_id}.txt"


def health_url(endpoint: str) -> str:
    return f"{endpoint}/{HEALTH_BUCKET}/{HEALTH_KEY}"


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def recorded_server(directory: Path) -> LocalServer | None:
    """The emulator server.json names, running or not."""
    info = _read_json(server_file(directory))
    if info is None:
        return None
    try:
        return LocalServer(
            endpoint=str(info["endpoint"]),
            region=str(info["region"]),
            stack_name=str(info["stack_name"]),
            pid=int(info["pid"]),
            state_dir=directory,
            started_at=float(info.get("started_at", 0.0)),
            token=str(info.get("token", "")),
        )
    except (KeyError, TypeError, ValueError):
        return None


def _pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: the health request tells whose port it is
    return True


# A proxy from the user's environment must not carry requests to 127.0.0.1.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def answers(server: LocalServer) -> bool:
    """Whether `server` is the emulator that wrote server.json: its pid exists and its
    port answers with the token drawn at its start (after a reboot the pid and the
    port may belong to anything)."""
    if not _pid_exists(server.pid):
        return False
    if not server.token:
        # Written by an emulator from before start tokens: trust its pid and port, as
        # the CLI then did, rather than start a second emulator beside it.
        return _listening(server.endpoint)
    try:
        with _DIRECT.open(health_url(server.endpoint), timeout=HEALTH_TIMEOUT_SECONDS) as reply:
            answer: bytes = reply.read()
        return answer.decode(errors="replace") == server.token
    except TimeoutError:
        # Alive and listening but slow: never start a second emulator over the first.
        return True
    except urllib.error.URLError as failure:
        return isinstance(failure.reason, TimeoutError)
    except (OSError, ValueError):
        return False


def _listening(endpoint: str) -> bool:
    address = urlsplit(endpoint)
    try:
        with socket.create_connection((address.hostname, address.port), timeout=5):
            return True
    except (OSError, ValueError):
        return False


def running_server(directory: Path | None = None) -> LocalServer | None:
    server = recorded_server(directory or state_dir())
    return server if server is not None and answers(server) else None


def previous_end(directory: Path, log: Path | None = None) -> str | None:
    """What to tell the user about how the last emulator of `directory` ended, when
    that lost their builds without their asking: None after `petal local stop`. `log`
    is where its output is now (default: server.log)."""
    recorded = recorded_server(directory)
    if recorded is not None and not answers(recorded):
        return (
            f"the local AWS emulator (pid {recorded.pid}, started {_when(recorded.started_at)})"
            " ended without `petal local stop`: it was killed, crashed, or the machine "
            f"restarted. {GONE}; build again with `petal --local build --seed FILE`."
        )
    stopped = _read_json(stopped_file(directory))
    if stopped is None or recorded is not None:
        return None
    reason = str(stopped.get("reason", REASON_STOP))
    when = _when(float(stopped.get("at", 0.0)))
    if reason == REASON_STOP:
        return None
    if reason == REASON_IDLE:
        cause = f"stopped after an idle hour ({when})"
    elif reason == REASON_ERROR:
        cause = f"failed ({when}; its log: {log or log_file(directory)})"
    else:
        cause = f"was ended by {reason} ({when}), not by `petal local stop`"
    return (
        f"the local AWS emulator {cause}. {GONE}; build again with "
        "`petal --local build --seed FILE`."
    )


def forget_previous(directory: Path) -> None:
    """Clear what the last emulator left, so its end is reported once."""
    server_file(directory).unlink(missing_ok=True)
    stopped_file(directory).unlink(missing_ok=True)


def _previous_log(directory: Path) -> Path:
    return directory / "server.previous.log"


def _when(epoch_seconds: float) -> str:
    if epoch_seconds <= 0:
        return "at an unknown time"
    return datetime.fromtimestamp(epoch_seconds).strftime("%Y-%m-%d %H:%M:%S")


@contextlib.contextmanager
def _start_lock(directory: Path) -> Iterator[None]:
    """Two commands started at once share one emulator instead of starting two."""
    with (directory / "start.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def start_server(directory: Path | None = None) -> LocalServer:
    directory = directory or state_dir()
    existing = running_server(directory)
    if existing is not None:
        return existing
    directory.mkdir(parents=True, exist_ok=True)
    with _start_lock(directory):
        existing = running_server(directory)  # another command may have started it
        if existing is not None:
            return existing
        with contextlib.suppress(OSError):
            log_file(directory).replace(_previous_log(directory))
        ended = previous_end(directory, log=_previous_log(directory))
        if ended is not None:
            sys.stderr.write(f"petal local mode: {ended}\n")
        forget_previous(directory)
        server = _launch(directory)
    sys.stderr.write(STARTED.format(pid=server.pid) + "\n")
    return server


def _launch(directory: Path) -> LocalServer:
    log = log_file(directory)
    # The emulator must not inherit an endpoint or credentials from this process.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PETAL_"))}
    command = [sys.executable, "-m", "petal.local.server", "--state-dir", str(directory)]
    if os.environ.get(ENV_PACE_SECONDS):
        command += ["--pace-seconds", os.environ[ENV_PACE_SECONDS]]
    with log.open("w") as output:
        process = subprocess.Popen(
            command,
            stdout=output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,  # outlives this command; `petal local stop` ends it
        )
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        # server.json appears once the emulator answers: one health request confirms it.
        server = recorded_server(directory)
        if server is not None and server.pid == process.pid and answers(server):
            return server
        if process.poll() is not None:
            tail = "\n".join(log.read_text().splitlines()[-15:])
            raise LocalModeError(
                f"the local AWS emulator exited while starting (its log: {log}):\n{tail}"
            )
        time.sleep(POLL_SECONDS)
    process.kill()
    raise LocalModeError(
        f"the local AWS emulator did not start in {START_TIMEOUT_SECONDS} s and was "
        f"stopped; see its log, {log}, and try again"
    )


def stop_server(directory: Path | None = None) -> LocalServer | None:
    """Stop the emulator of `directory` (default: this command's state directory) and
    no other; returns the one stopped, None if none was running."""
    server = running_server(directory or state_dir())
    if server is None:
        return None
    with contextlib.suppress(ProcessLookupError):
        os.kill(server.pid, STOP_SIGNAL)
    deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
    # The emulator writes `stopped` as it exits. Its process may linger as a zombie
    # until whoever adopted it (it outlives the command that started it) reaps it.
    while not _stopped_by(server) and _pid_exists(server.pid):
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(server.pid, signal.SIGKILL)
            break
        time.sleep(POLL_SECONDS)
    if not _stopped_by(server):
        # Killed, or from before `stopped` records: record the stop it was asked for.
        record_stop(server.state_dir, server.token, REASON_STOP, pid=server.pid)
    return server


def _stopped_by(server: LocalServer) -> bool:
    stopped = _read_json(stopped_file(server.state_dir))
    return stopped is not None and stopped.get("token") == server.token


def _write_stopped(directory: Path, token: str, reason: str) -> None:
    record = {"token": token, "reason": reason, "at": time.time()}
    temporary = stopped_file(directory).with_suffix(".tmp")
    temporary.write_text(json.dumps(record))
    temporary.replace(stopped_file(directory))


def record_stop(directory: Path, token: str, reason: str, *, pid: int | None = None) -> None:
    """The emulator's last words: why it stopped, for the next command to report."""
    recorded = recorded_server(directory)
    if recorded is None or (recorded.token == token and pid in (None, recorded.pid)):
        server_file(directory).unlink(missing_ok=True)
    _write_stopped(directory, token, reason)


def activate() -> LocalServer:
    """Start (or find) the emulator and point this process's AWS calls at it."""
    server = start_server()
    (server.state_dir / "touch").touch()  # keeps the emulator from idling out
    isolated = server.state_dir / "isolated"
    isolated.mkdir(exist_ok=True)
    for name in [k for k in os.environ if k.startswith("AWS_")]:
        del os.environ[name]
    os.environ.update(
        {
            "AWS_ENDPOINT_URL": server.endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": server.region,
            "AWS_REGION": server.region,
            # Never the user's real profiles or credentials.
            "AWS_CONFIG_FILE": str(isolated / "aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(isolated / "aws-credentials"),
            "PETAL_STACK_NAME": STACK_NAME,
            "PETAL_REGION": server.region,
            # Local mode resolves snapshots in the emulator only, not in registries.
            "PETAL_CONFIG": str(isolated / "petal-config.yaml"),
        }
    )
    sys.stderr.write(NOTICE.format(endpoint=server.endpoint) + "\n")
    return server


def is_active() -> bool:
    return os.environ.get("PETAL_STACK_NAME") == STACK_NAME and "AWS_ENDPOINT_URL" in os.environ


def request_failure(build_id: str, spec: str) -> None:
    """Make the emulated build `build_id` fail at a step, e.g. "bootstrap"."""
    check_failure_request(spec)
    server = running_server()
    if server is None:
        raise InvalidInput(
            "the local AWS emulator is not running; `petal --local build ...` starts it"
        )
    path = failure_file(server.state_dir, build_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(spec)
