"""AWS clients of the handlers, created on first use and kept for warm invocations.

Nothing is created at import time. The clients are botocore's, made from a botocore
session (`petal.aws.session.new_core_session`) rather than boto3's: a client is the
same object either way, but importing boto3 imports s3transfer (boto3.compat), about
a fifth of a cold start, for upload/download helpers no handler uses. botocore honours
AWS_ENDPOINT_URL, which is how local mode in server mode points the handlers at the
emulator; `reset` drops the cache when local mode switches emulators.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from botocore.config import Config

from petal.aws.session import new_core_session

if TYPE_CHECKING:
    import botocore.session

_CONFIG = Config(retries={"mode": "standard", "max_attempts": 3})
_lock = threading.Lock()
_clients: dict[str, Any] = {}
# One session: botocore loads a service's model once per session, and sessions are
# not thread-safe, hence the lock.
_session: list[botocore.session.Session] = []


def client(service: str) -> Any:
    with _lock:
        if service not in _clients:
            if not _session:
                _session.append(new_core_session())
            _clients[service] = _session[0].create_client(service, config=_CONFIG)
        return _clients[service]


def reset() -> None:
    """Forget the clients (their endpoint and credentials); the session and its loaded
    service models stay."""
    with _lock:
        _clients.clear()
