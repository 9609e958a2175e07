"""A snapshot registry served over real HTTP on 127.0.0.1, for tests.

It serves an in-memory mapping of paths to bytes under /registry (so the base URL has a
path, like raw.githubusercontent.com/<owner>/<repo>/<branch>), answers If-None-Match
with 304 when the ETag matches, and records every request so tests can count them.

`trickle` makes it answer a path one byte at a time, like a server that keeps a client
waiting without ever tripping its per-read timeout: `Trickle(interval)` sends the
headers at once and then the body a byte per `interval`, promising more body than it
has; `Trickle(interval, headers=True)` trickles from the status line on. Either keeps
going until the client hangs up or `seconds` pass (so a client without a deadline gets
a truncated answer instead of hanging the test run).
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

GOOD = Path(__file__).parent / "good"
BAD = Path(__file__).parent / "bad"
PREFIX = "/registry"


def good_files() -> dict[str, bytes]:
    """The fixture registry: {"snapshots/index.json": b"...", ...}."""
    return {
        str(path.relative_to(GOOD)): path.read_bytes()
        for path in sorted(GOOD.rglob("*"))
        if path.is_file()
    }


@dataclass(frozen=True)
class Trickle:
    interval: float = 0.05
    headers: bool = False
    seconds: float = 5.0


@dataclass
class Hit:
    method: str
    path: str
    status: int
    conditional: bool


class RegistryServer:
    def __init__(self, files: dict[str, bytes] | None = None) -> None:
        self.files = dict(good_files() if files is None else files)
        self.hits: list[Hit] = []
        self.etags = True
        self.status: dict[str, int] = {}  # path -> forced status, e.g. 500
        self.redirects: dict[str, str] = {}  # path -> Location of a 302
        self.content_type = "text/plain; charset=utf-8"  # what GitHub raw serves
        self.trickle: dict[str, Trickle] = {}  # path -> answer it a byte at a time
        self._closing = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server._serve(self)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        # A short poll interval: shutdown() waits for it, once per test.
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        host, port = self._httpd.server_address[:2]
        self.origin = f"http://{host!s}:{port}"
        self.url = self.origin + PREFIX

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        path = handler.path.split("?", 1)[0]
        conditional = "If-None-Match" in handler.headers
        relative = path[len(PREFIX) + 1 :] if path.startswith(PREFIX + "/") else ""
        if relative in self.redirects:
            self.hits.append(Hit("GET", path, 302, conditional))
            handler.send_response(302)
            handler.send_header("Location", self.redirects[relative])
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return
        body = self.files.get(relative)
        if relative in self.trickle:
            self.hits.append(Hit("GET", path, 200, conditional))
            self._trickle(handler, self.trickle[relative], body or b"{}")
            return
        status = self.status.get(relative, 200 if body is not None else 404)
        if status == 200 and body is not None:
            etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
            if self.etags and handler.headers.get("If-None-Match") == etag:
                status = 304
            self.hits.append(Hit("GET", path, status, conditional))
            handler.send_response(status)
            if self.etags:
                handler.send_header("ETag", etag)
            if status == 200:
                handler.send_header("Content-Type", self.content_type)
                handler.send_header("Content-Length", str(len(body)))
                handler.end_headers()
                handler.wfile.write(body)
            else:
                handler.end_headers()
            return
        self.hits.append(Hit("GET", path, status, conditional))
        message = b"404: Not Found" if status == 404 else b"error"
        handler.send_response(status)
        handler.send_header("Content-Length", str(len(message)))
        handler.end_headers()
        handler.wfile.write(message)

    def _trickle(self, handler: BaseHTTPRequestHandler, trickle: Trickle, body: bytes) -> None:
        # Whitespace after a JSON document keeps it valid: a client that waits it out
        # reads a good document, so only a deadline tells the two apart.
        promised = len(body) + 1_000_000
        head = (
            f"HTTP/1.1 200 OK\r\nContent-Type: {self.content_type}\r\n"
            f"Content-Length: {promised}\r\nConnection: close\r\n\r\n"
        ).encode()
        answer = head + body + b" " * (promised - len(body))
        handler.close_connection = True
        sent = 0
        if not trickle.headers:
            handler.wfile.write(head)
            sent = len(head)
        stop = time.monotonic() + trickle.seconds
        try:
            while sent < len(answer) and time.monotonic() < stop:
                handler.wfile.write(answer[sent : sent + 1])
                sent += 1
                if self._closing.wait(trickle.interval):
                    return
        except OSError:
            return  # the client hung up, as it should

    def requests(self) -> int:
        return len(self.hits)

    def reset_hits(self) -> None:
        self.hits.clear()

    def close(self) -> None:
        self._closing.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)
