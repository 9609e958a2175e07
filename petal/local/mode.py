"""`petal --local`: point every command at an AWS emulator on this machine.

The emulator (petal/local/server.py) is started on first use and kept running between
commands, so a build started by one command is listed by the next. Activation only
changes this process's environment: boto3 honours AWS_ENDPOINT_URL, so every command
runs its normal code against the emulator, and the user's real AWS credentials and
petal config are kept out of it.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from petal.errors import InvalidInput, PetalError
from petal.local.deploy import STACK_NAME
from petal.local.failures import LocalAwsError, parse_failure
from petal.local.server import failure_file, stopped_file

START_TIMEOUT_SECONDS: Final = 120
STOP_TIMEOUT_SECONDS: Final = 30
ENV_LOCAL_DIR: Final = "PETAL_LOCAL_DIR"
# Real seconds the simulated install spends per root spec (tests set 0).
ENV_PACE_SECONDS: Final = "PETAL_LOCAL_PACE_SECONDS"
NOTICE: Final = (
    "petal local mode: AWS is emulated on this machine ({endpoint}); builders are "
    "SIMULATED and install no software."
)


class LocalModeError(PetalError, RuntimeError):
    """The emulator could not be started or reached; the message says what to do."""


@dataclass(frozen=True)
class LocalServer:
    endpoint: str
    region: str
    stack_name: str
    pid: int
    state_dir: Path


def state_dir() -> Path:
    if os.environ.get(ENV_LOCAL_DIR):
        return Path(os.environ[ENV_LOCAL_DIR])
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "petal" / "local"


def _alive(info: dict[str, Any]) -> bool:
    try:
        os.kill(int(info["pid"]), 0)
        address = urlsplit(str(info["endpoint"]))
        with socket.create_connection((address.hostname, address.port), timeout=5):
            return True
    except (OSError, KeyError, ValueError):
        return False


def running_server(directory: Path | None = None) -> LocalServer | None:
    directory = directory or state_dir()
    try:
        info = json.loads((directory / "server.json").read_text())
    except (OSError, ValueError):
        return None
    if not _alive(info):
        return None
    return LocalServer(
        endpoint=str(info["endpoint"]),
        region=str(info["region"]),
        stack_name=str(info["stack_name"]),
        pid=int(info["pid"]),
        state_dir=directory,
    )


def start_server(directory: Path | None = None) -> LocalServer:
    directory = directory or state_dir()
    existing = running_server(directory)
    if existing is not None:
        return existing
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "server.json").unlink(missing_ok=True)
    log = directory / "server.log"
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
        server = running_server(directory)
        if server is not None:
            return server
        if process.poll() is not None:
            tail = "\n".join(log.read_text().splitlines()[-15:])
            raise LocalModeError(f"the local AWS emulator exited while starting:\n{tail}")
        time.sleep(0.2)
    process.terminate()
    raise LocalModeError(f"the local AWS emulator did not start in {START_TIMEOUT_SECONDS} s")


def stop_server(directory: Path | None = None) -> bool:
    server = running_server(directory)
    if server is None:
        return False
    os.kill(server.pid, signal.SIGTERM)
    # The emulator says when it has stopped. Its process may linger as a zombie until
    # whoever adopted it (it outlives the command that started it) reaps it.
    deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
    while time.monotonic() < deadline and not stopped_file(server.state_dir).exists():
        try:
            os.kill(server.pid, 0)
        except OSError:
            break
        time.sleep(0.05)
    return True


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
    try:
        parse_failure(spec)
    except LocalAwsError as invalid:
        raise InvalidInput(f"--simulate-failure: {invalid}") from None
    server = running_server()
    if server is None:
        raise InvalidInput("the local AWS emulator is not running")
    path = failure_file(server.state_dir, build_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(spec)
