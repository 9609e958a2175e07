"""Powertools for every petal function: one Logger, Tracer and Metrics, and the
decorator each handler wears.

The correlation id of every log line is the build id (`correlate`), so one build's
steps can be followed across functions in CloudWatch Logs Insights. Metrics go out
as CloudWatch embedded metric format when the handler returns; local mode listens
in through `add_metric_listener`.
"""

from __future__ import annotations

import functools
import os
import warnings
from collections.abc import Callable
from typing import Any, Final, TypeVar, cast

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit

from petal.errors import PetalStepError

SERVICE: Final = os.environ.get("POWERTOOLS_SERVICE_NAME", "petal")
NAMESPACE: Final = os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "Petal")

logger = Logger(service=SERVICE)
tracer = Tracer(service=SERVICE)
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

    wrapped = metrics.log_metrics(tracer.capture_lambda_handler(run, capture_response=False))
    return cast(Handler, logger.inject_lambda_context(wrapped, clear_state=True))
