"""The repository's Lambda handlers (lambdas/), run in this process as Lambda runs them.

The only module of petal that imports `lambdas`: that package sits beside petal/ in
the repository and is not part of the installed petal, so it is imported only when
local mode runs (petal/local/server.py puts the repository on sys.path).
"""

from __future__ import annotations

import importlib
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from petal.local.deploy import ACCOUNT_ID, HANDLER_MODULES, STACK_NAME

Invoke = Callable[[str, Any], dict[str, Any]]


@dataclass
class _FakeLambdaContext:
    function_name: str
    invoked_function_arn: str
    memory_limit_in_mb: int = 256
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    log_group_name: str = "/aws/lambda/petal-local"
    log_stream_name: str = "local"
    function_version: str = "$LATEST"

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


def environment(log_level: str) -> dict[str, str]:
    """The settings Lambda's configuration gives the handlers' Powertools."""
    return {
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_SERVICE_NAME": "petal",
        "POWERTOOLS_METRICS_NAMESPACE": "Petal",
        "POWERTOOLS_LOG_LEVEL": log_level,
        # Metrics reach the harness through a listener (`observe`); the EMF lines
        # Powertools would print are CloudWatch's input, noise here.
        "POWERTOOLS_METRICS_DISABLED": "true",
    }


def run_handler(module: str, event: Any, region: str) -> dict[str, Any]:
    """Call lambdas/<module>.py's handler with a context like Lambda's; raises what it
    raises."""
    handler = importlib.import_module(f"lambdas.{module}").handler
    context = _FakeLambdaContext(
        function_name=f"{STACK_NAME}-{module}",
        invoked_function_arn=(
            f"arn:aws:lambda:{region}:{ACCOUNT_ID}:function:{STACK_NAME}-{module}"
        ),
    )
    result: dict[str, Any] = handler(event, context)
    return result


def invoke_payload(invoke: Invoke, function_name: str, body: Any, response_headers: Any) -> bytes:
    """Lambda's Invoke response for `function_name` (a name or an ARN), the handler run
    by `invoke(module, event)`: its result, or Lambda's error payload and header."""
    name = function_name.rsplit(":", 1)[-1] if ":function:" in function_name else function_name
    name = name.split(":function:")[-1]
    module = name.removeprefix(f"{STACK_NAME}-")
    if module not in HANDLER_MODULES:
        response_headers["x-amz-function-error"] = "Unhandled"
        return _error_payload("ResourceNotFoundException", f"no handler for {function_name}")
    event = json.loads(body) if body else {}
    try:
        return json.dumps(invoke(module, event), default=str).encode()
    except Exception as error:
        response_headers["x-amz-function-error"] = "Unhandled"
        return _error_payload(type(error).__name__, str(error))


def reset_clients() -> None:
    """Forget the handlers' cached boto3 clients: they point at the previous emulator."""
    from lambdas import clients

    clients.reset()


def observe(record_metric: Callable[[str, float, str], None], log_level: str) -> Callable[[], None]:
    """Hand every metric the handlers emit to `record_metric` and log at `log_level`;
    returns the undo."""
    from lambdas import observability

    remove_listener = observability.add_metric_listener(record_metric)
    previous_level = observability.logger.log_level
    observability.logger.setLevel(log_level)

    def undo() -> None:
        observability.logger.setLevel(previous_level)
        remove_listener()

    return undo


def _error_payload(error_type: str, message: str) -> bytes:
    return json.dumps({"errorType": error_type, "errorMessage": message, "stackTrace": []}).encode()
