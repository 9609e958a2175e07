"""Powertools for every petal function: one Logger, Tracer and Metrics, and the
decorator each handler wears.

The correlation id of every log line is the build id (`correlate`), so one build's
steps can be followed across functions in CloudWatch Logs Insights. Metrics go out
as CloudWatch embedded metric format when the handler returns; local mode listens
in through `add_metric_listener`.

Tracing follows Powertools' own rule: on inside Lambda (LAMBDA_TASK_ROOT set), off
with POWERTOOLS_TRACE_DISABLED, outside Lambda, under SAM local or Chalice. On (in
AWS), the X-Ray SDK is imported here, at init: traces need it from the first call, and
moving it into the first invocation would only move its ~40 ms, not save it. Only
botocore (the AWS calls) and httplib (the resolver's registry requests) are patched,
not everything `patch_all` knows. Off (the emulator, the tests), the Tracer gets a
provider that does nothing, so the X-Ray SDK is never imported (a plain Tracer imports
it even when disabled) and the handler is not wrapped in a subsegment.
"""

from __future__ import annotations

import contextlib
import functools
import os
import warnings
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any, Final, TypeVar, cast

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.tracing.base import BaseProvider, BaseSegment

from petal.errors import PetalStepError

SERVICE: Final = os.environ.get("POWERTOOLS_SERVICE_NAME", "petal")
NAMESPACE: Final = os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "Petal")

# What the X-Ray SDK patches when tracing is on.
TRACED_MODULES: Final = ("botocore", "httplib")


class UntracedProvider(BaseProvider):
    """The Tracer's provider while tracing is off: no X-Ray SDK, nothing recorded."""

    @contextlib.contextmanager
    def in_subsegment(self, name: str | None = None, **kwargs: Any) -> Iterator[BaseSegment]:
        raise NotImplementedError("tracing is off")
        yield  # pragma: no cover - a generator that never yields

    @contextlib.asynccontextmanager
    async def in_subsegment_async(
        self, name: str | None = None, **kwargs: Any
    ) -> AsyncIterator[BaseSegment]:
        raise NotImplementedError("tracing is off")
        yield  # pragma: no cover

    def put_annotation(self, key: str, value: Any) -> None:
        return None

    def put_metadata(self, key: str, value: Any, namespace: str = "default") -> None:
        return None

    def patch(self, modules: Sequence[str]) -> None:
        return None

    def patch_all(self) -> None:
        return None


def tracing_enabled() -> bool:
    """Powertools' rule for whether the Tracer records (see the module's docstring)."""
    return not Tracer._is_tracer_disabled()


def make_tracer(enabled: bool) -> Tracer:
    if not enabled:
        return Tracer(service=SERVICE, disabled=True, auto_patch=False, provider=UntracedProvider())
    traced = Tracer(service=SERVICE, auto_patch=False)
    traced.patch(modules=TRACED_MODULES)
    return traced


logger = Logger(service=SERVICE)
tracer = make_tracer(tracing_enabled())
metrics = Metrics(service=SERVICE, namespace=NAMESPACE)

# Most invocations emit no metric; Powertools warns about each one.
warnings.filterwarnings("ignore", message="No application metrics to publish")

MetricListener = Callable[[str, float, str], None]
_listeners: list[MetricListener] = []

Handler = TypeVar("Handler", bound=Callable[..., Any])


def add_metric(name: str, value: float, unit: MetricUnit = MetricUnit.Count) -> None:
    metrics.add_metric(name=name, unit=unit, value=value)
    for listener in list(_listeners):
        listener(name, value, unit.value)


def add_metric_listener(listener: MetricListener) -> Callable[[], None]:
    """Also send every metric to `listener` (local mode); returns the undo."""
    _listeners.append(listener)
    return lambda: _listeners.remove(listener)


def correlate(build_id: str | None) -> None:
    if build_id:
        logger.set_correlation_id(build_id)
        logger.append_keys(build_id=build_id)
        tracer.put_annotation(key="build_id", value=build_id)


def lambda_handler(function: Handler) -> Handler:
    """Logger context, tracing and metrics flushing for a handler.

    A PetalStepError is logged as a warning with its message (it names the problem and
    the fix) and re-raised: its class name is the error type the state machine sees.
    Anything else is logged with its traceback, for whoever debugs petal.
    """

    @functools.wraps(function)
    def run(event: Any, context: Any) -> Any:
        try:
            return function(event, context)
        except PetalStepError as error:
            logger.warning(str(error), extra={"error_type": type(error).__name__})
            raise
        except Exception:
            logger.exception("unexpected error")
            raise

    traced = run if tracer.disabled else tracer.capture_lambda_handler(run, capture_response=False)
    wrapped = metrics.log_metrics(traced)
    return cast(Handler, logger.inject_lambda_context(wrapped, clear_state=True))
