"""How `petal --local` tells its emulator from a dead one or a stranger, and how it
stops one, without starting moto: a small HTTP server plays the emulator."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from petal.local import mode

# Serves TOKEN where the emulator serves its start token; ignores `petal local stop`'s
# signal when told to, as a hung emulator would.
FAKE_EMULATOR = """
import http.server, signal, sys
token, ignore_stop = sys.argv[1], sys.argv[2] == "ignore"
if ignore_stop:
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        found = self.path == "/petal-local-emulator/token"
        body = token.encode() if found else b"not found"
        self.send_response(200 if found else 404)
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
"""


def _record(directory: Path, *, pid: int, endpoint: str, token: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    info = {
        "pid": pid,
        "endpoint": endpoint,
        "region": "us-east-1",
        "stack_name": "petal-local",
        "started_at": time.time() - 60,
        "token": token,
    }
    mode.server_file(directory).write_text(json.dumps(info))


@pytest.fixture
def fake_emulator(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """A fake emulator serving token "t0k3n" that ignores the stop signal."""
    process = subprocess.Popen(
        [sys.executable, "-c", FAKE_EMULATOR, "t0k3n", "ignore"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    port = int(process.stdout.readline())
    try:
        yield process, f"http://127.0.0.1:{port}"
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()


def test_the_emulator_is_the_process_that_answers_with_its_token(
    tmp_path: Path, fake_emulator: tuple[subprocess.Popen[str], str]
) -> None:
    process, endpoint = fake_emulator
    _record(tmp_path, pid=process.pid, endpoint=endpoint, token="t0k3n")
    server = mode.running_server(tmp_path)
    assert server is not None
    assert (server.pid, server.endpoint, server.state_dir) == (process.pid, endpoint, tmp_path)
    assert mode.previous_end(tmp_path) is None


def test_a_reused_pid_and_port_are_not_taken_for_the_emulator(
    tmp_path: Path, fake_emulator: tuple[subprocess.Popen[str], str]
) -> None:
    # After a reboot: the recorded pid is alive (another process) and the port answers,
    # but not with the token drawn when the emulator started.
    process, endpoint = fake_emulator
    _record(tmp_path, pid=os.getpid(), endpoint=endpoint, token="the-old-token")
    assert mode.running_server(tmp_path) is None
    ended = mode.previous_end(tmp_path)
    assert ended is not None
    assert "ended without `petal local stop`" in ended
    assert "are gone" in ended
    assert process.poll() is None  # nothing was done to the stranger


def test_a_dead_emulator_is_reported_once(tmp_path: Path) -> None:
    # A pid that no longer exists: a child that has exited and been reaped.
    child = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    _record(tmp_path, pid=int(child.stdout), endpoint="http://127.0.0.1:9", token="x")
    assert mode.running_server(tmp_path) is None
    ended = mode.previous_end(tmp_path)
    assert ended is not None and f"pid {int(child.stdout)}" in ended
    mode.forget_previous(tmp_path)
    assert mode.previous_end(tmp_path) is None


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        (mode.REASON_STOP, None),
        (mode.REASON_IDLE, "stopped after an idle hour"),
        ("SIGTERM", "was ended by SIGTERM"),
        (mode.REASON_ERROR, "server.log"),
    ],
)
def test_how_the_last_emulator_stopped_is_reported_unless_asked_for(
    tmp_path: Path, reason: str, expected: str | None
) -> None:
    mode.record_stop(tmp_path, "token", reason)
    ended = mode.previous_end(tmp_path)
    if expected is None:
        assert ended is None
    else:
        assert ended is not None and expected in ended and "are gone" in ended


def test_stop_kills_an_emulator_that_does_not_exit_when_asked(
    tmp_path: Path, fake_emulator: tuple[subprocess.Popen[str], str]
) -> None:
    process, endpoint = fake_emulator
    _record(tmp_path, pid=process.pid, endpoint=endpoint, token="t0k3n")
    stopped = mode.stop_server(tmp_path)
    assert stopped is not None and stopped.pid == process.pid
    assert process.wait(timeout=10) == -signal.SIGKILL
    assert not mode.server_file(tmp_path).exists()
    # It was asked for: the next command has nothing to report.
    assert mode.previous_end(tmp_path) is None
    assert mode.stop_server(tmp_path) is None


def test_stop_leaves_the_emulator_of_another_state_directory_alone(
    tmp_path: Path, fake_emulator: tuple[subprocess.Popen[str], str]
) -> None:
    process, endpoint = fake_emulator
    _record(tmp_path / "theirs", pid=process.pid, endpoint=endpoint, token="t0k3n")
    (tmp_path / "mine").mkdir()
    assert mode.stop_server(tmp_path / "mine") is None
    assert process.poll() is None
    assert mode.running_server(tmp_path / "theirs") is not None


def test_state_dir_is_petal_local_dir_else_under_xdg_state_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(mode.ENV_LOCAL_DIR, str(tmp_path / "here"))
    assert mode.state_dir() == tmp_path / "here"
    monkeypatch.delenv(mode.ENV_LOCAL_DIR)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    assert mode.state_dir() == tmp_path / "state" / "petal" / "local"
