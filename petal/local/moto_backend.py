"""moto itself: in this process under `mock_aws` (tests), or as a server on a loopback
port that another process, such as the AWS CLI or `petal --local`, can reach; and the
boto3 clients that reach it."""

from __future__ import annotations

import json
import logging
import socket
import threading
import urllib.request
from typing import Any, Final, cast

from botocore.config import Config

from petal.aws.session import new_session

MOTO_CONFIG: Final = {
    "stepfunctions": {"execute_state_machine": True},
    "lambda": {"use_docker": False},
}
_SESSION: list[Any] = []
_SESSION_LOCK = threading.Lock()


def sdk_environment(region: str) -> dict[str, str]:
    """What the SDK and moto read from the environment, before moto starts."""
    return {
        "AWS_DEFAULT_REGION": region,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SECURITY_TOKEN": "testing",
        "AWS_SESSION_TOKEN": "testing",
        # Only petal's fake official AMIs: loading moto's hundreds is slow.
        "MOTO_EC2_LOAD_DEFAULT_AMIS": "false",
    }


class MotoBackend:
    def __init__(self, server: bool, region: str) -> None:
        self._serve = server
        self._region = region
        self._mock: Any = None
        self._server: Any = None
        self.endpoint: str | None = None  # the server's URL (None in-process)
        self._clients: dict[str, Any] = {}
        self._clients_lock = threading.Lock()

    def start(self) -> dict[str, str]:
        """Start moto; returns the environment that points the SDK and moto at it."""
        if not self._serve:
            from moto import mock_aws

            self._mock = mock_aws(config=cast(Any, MOTO_CONFIG))
            self._mock.start()
            return {}
        from moto.server import ThreadedMotoServer

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        # werkzeug logs every request of the emulator at INFO.
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
        self._server.start()
        self.endpoint = f"http://127.0.0.1:{port}"
        request = urllib.request.Request(  # noqa: S310 - the local emulator only
            f"{self.endpoint}/moto-api/config",
            data=json.dumps(MOTO_CONFIG).encode(),
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10):  # noqa: S310
            pass
        # moto's state machine interpreter calls Lambda and the others on this port.
        return {"MOTO_PORT": str(port), "AWS_ENDPOINT_URL": self.endpoint}

    def stop(self) -> None:
        if self._mock is not None:
            self._mock.stop()
            self._mock = None
        if self._server is not None:
            self._server.stop()
            self._server = None

    def client(self, service: str) -> Any:
        """A boto3 client of the emulator (cached: botocore loads each service model once
        per session, which is most of the cost of a client)."""
        with self._clients_lock:
            if service not in self._clients:
                kwargs: dict[str, Any] = {"region_name": self._region}
                if self.endpoint:
                    kwargs["endpoint_url"] = self.endpoint
                config = Config(retries={"mode": "standard", "max_attempts": 3})
                self._clients[service] = _shared_session().client(service, config=config, **kwargs)
            return self._clients[service]


def _shared_session() -> Any:
    """One boto3 session per process: its service models load once, not per LocalAws."""
    with _SESSION_LOCK:
        if not _SESSION:
            _SESSION.append(new_session())
        return _SESSION[0]
