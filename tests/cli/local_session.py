"""`petal` as a user runs it in local mode: the console script in subprocesses, with an
emulator of its own state directory (PETAL_LOCAL_DIR), stopped at the end even when
the test fails, and killed if `petal local stop` leaves it running."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

REPO = Path(__file__).resolve().parents[2]
COMMAND_TIMEOUT = 120


def petal_command() -> list[str]:
    script = Path(sys.executable).parent / "petal"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "petal"]


def local_environment(state_dir: Path) -> dict[str, str]:
    """What `make demo` exports; the user's AWS settings stay out of it. The simulated
    install is not paced for a person watching (benchmarks/local_demo.py times that)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PETAL_"))}
    env.update(
        {
            "AWS_DEFAULT_REGION": "us-east-1",
            "PETAL_LOCAL_DIR": str(state_dir),
            "PETAL_LOCAL_PACE_SECONDS": "0",
        }
    )
    return env


def gone(pid: int, timeout: float = 10) -> bool:
    """Whether `pid` has ended (a zombie waiting to be reaped counts as ended)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = subprocess.run(
            ["ps", "-o", "stat=", "-p", str(pid)], capture_output=True, text=True, check=False
        ).stdout.strip()
        if not state or state.startswith("Z"):
            return True
        time.sleep(0.05)
    return False


@dataclass
class Demo:
    """One state directory's emulator, and `petal` run against it."""

    state_dir: Path
    env: dict[str, str]

    def run(self, *argv: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*petal_command(), *argv],
            cwd=cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
            check=False,
        )

    def server(self) -> dict[str, Any]:
        info: dict[str, Any] = json.loads((self.state_dir / "server.json").read_text())
        return info

    def client(self, service: str) -> Any:
        info = self.server()
        return boto3.session.Session().client(
            service,
            region_name=info["region"],
            endpoint_url=info["endpoint"],
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )  # type: ignore[call-overload]

    def stop(self) -> None:
        """`petal local stop`; fails the test if it left the emulator running."""
        pid = None
        with contextlib.suppress(OSError, ValueError, KeyError):
            pid = int(self.server()["pid"])
        stopped = self.run("local", "stop")
        if pid is not None and not gone(pid):
            os.kill(pid, signal.SIGKILL)  # do not leave it behind
            pytest.fail(f"`petal local stop` left the emulator (pid {pid}) running")
        assert stopped.returncode == 0, stopped.stderr


@contextlib.contextmanager
def local_session(state_dir: Path) -> Iterator[Demo]:
    session = Demo(state_dir, local_environment(state_dir))
    try:
        yield session
    finally:
        session.stop()
