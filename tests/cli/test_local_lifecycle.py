"""The emulator's life as a user sees it: `petal local status`, `petal local stop` of
one state directory only, and an emulator that died (kill -9) reported by the next
command instead of silently replaced by an empty one.

Real emulators, each in a state directory of its own (PETAL_LOCAL_DIR in tmp_path),
stopped at the end even when a test fails.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from petal.local import mode
from tests.cli.local_session import REPO, gone, local_environment, petal_command

COMMAND_TIMEOUT = 120
DIED = "ended without `petal local stop`"


class Emulators:
    """Runs `petal` with PETAL_LOCAL_DIR set to one of several state directories."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.used: set[str] = set()

    def directory(self, name: str) -> Path:
        return self.root / name

    def run(self, name: str, *argv: str) -> subprocess.CompletedProcess[str]:
        self.used.add(name)
        env = local_environment(self.directory(name))
        return subprocess.run(
            [*petal_command(), *argv],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
            check=False,
        )

    def pid(self, name: str) -> int:
        info: dict[str, Any] = json.loads(mode.server_file(self.directory(name)).read_text())
        return int(info["pid"])


@pytest.fixture
def emulators(tmp_path: Path) -> Iterator[Emulators]:
    session = Emulators(tmp_path)
    try:
        yield session
    finally:
        for name in session.used:
            server = mode.recorded_server(session.directory(name))
            session.run(name, "local", "stop")
            if server is not None and not gone(server.pid, timeout=5):
                with contextlib.suppress(OSError):
                    os.kill(server.pid, signal.SIGKILL)


def test_a_killed_emulator_is_reported_by_the_next_command(emulators: Emulators) -> None:
    first = emulators.run("a", "--local", "build", "list")
    assert first.returncode == 0, first.stderr
    assert "started the local AWS emulator" in first.stderr
    assert "petal local stop" in first.stderr  # how to end it, said when it starts
    assert DIED not in first.stderr
    killed = emulators.pid("a")
    os.kill(killed, signal.SIGKILL)
    assert gone(killed)

    after = emulators.run("a", "--local", "build", "list")

    assert after.returncode == 0, after.stderr
    assert DIED in after.stderr
    assert f"pid {killed}" in after.stderr
    assert "builds and snapshots lived in its memory and are gone" in after.stderr
    assert "started the local AWS emulator" in after.stderr
    assert emulators.pid("a") != killed
    # Said once: the emulator that replaced it is fine.
    again = emulators.run("a", "--local", "build", "list")
    assert again.returncode == 0, again.stderr
    assert DIED not in again.stderr
    assert "started the local AWS emulator" not in again.stderr


def test_stop_ends_the_emulator_of_its_own_state_directory_only(emulators: Emulators) -> None:
    for name in ("a", "b"):
        started = emulators.run(name, "--local", "build", "list")
        assert started.returncode == 0, started.stderr
    a_pid, b_pid = emulators.pid("a"), emulators.pid("b")

    stopped = emulators.run("a", "local", "stop")

    assert stopped.returncode == 0, stopped.stderr
    assert f"Stopped the local AWS emulator (pid {a_pid})" in stopped.stdout
    assert gone(a_pid)
    a_status = emulators.run("a", "local", "status")
    assert "is not running" in a_status.stdout
    assert "Before:" not in a_status.stdout  # a stop that was asked for is no news
    b_status = json.loads(emulators.run("b", "local", "status", "--json").stdout)
    assert b_status["running"] is True
    assert b_status["pid"] == b_pid
    still = emulators.run("b", "--local", "build", "list")
    assert still.returncode == 0, still.stderr
    assert "started the local AWS emulator" not in still.stderr
    assert emulators.pid("b") == b_pid
    # Nothing left to stop in a: it says so and succeeds.
    again = emulators.run("a", "local", "stop")
    assert again.returncode == 0
    assert "not running; nothing to stop" in again.stdout


def test_status_shows_pid_address_start_and_state_directory(emulators: Emulators) -> None:
    idle = emulators.run("a", "local", "status")
    assert idle.returncode == 0, idle.stderr
    assert "is not running" in idle.stdout
    assert str(emulators.directory("a")) in idle.stdout
    assert "The next `petal --local COMMAND` starts it." in idle.stdout
    assert json.loads(emulators.run("a", "local", "status", "--json").stdout) == {
        "running": False,
        "state_dir": str(emulators.directory("a")),
    }
    assert not emulators.directory("a").exists()  # status starts nothing

    assert emulators.run("a", "--local", "build", "list").returncode == 0
    status = emulators.run("a", "local", "status")

    assert status.returncode == 0, status.stderr
    server = mode.recorded_server(emulators.directory("a"))
    assert server is not None
    assert f"is running at {server.endpoint} (pid {server.pid})" in status.stdout
    assert "started:" in status.stdout
    assert f"state directory: {emulators.directory('a')} ($PETAL_LOCAL_DIR)" in status.stdout
    assert "`petal local stop`" in status.stdout
    document = json.loads(emulators.run("a", "local", "status", "--json").stdout)
    assert document["running"] is True
    assert (document["pid"], document["endpoint"]) == (server.pid, server.endpoint)
    assert document["started_at"]
