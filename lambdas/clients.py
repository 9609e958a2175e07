"""boto3 clients of the handlers, created on first use and kept for warm invocations.

Nothing is created at import time. boto3 honours AWS_ENDPOINT_URL, which is how local
mode in server mode points the handlers at the emulator; `reset` drops the cache when
local mode switches emulators.
"""

from __future__ import annotations

import threading
from typing import Any

import boto3
from botocore.config import Config

from petal.aws.session import new_session

_CONFIG = Config(retries={"mode": "standard", "max_attempts": 3})
_lock = threading.Lock()
_clients: dict[str, Any] = {}
# One session: botocore loads a service's model once per session, and sessions are
# not thread-safe, hence the lock.
_session: list[boto3.session.Session] = []


def client(service: str) -> Any:
    with _lock:
        if service not in _clients:
            if not _session:
                _session.append(new_session())
            _clients[service] = _session[0].client(service, config=_CONFIG)  # type: ignore[call-overload]
        return _clients[service]


def reset() -> None:
    """Forget the clients (their endpoint and credentials); the session and its loaded
    service models stay."""
    with _lock:
        _clients.clear()
