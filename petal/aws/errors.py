"""Failed AWS calls as build-step errors: the one place an AWS error is translated.

A throttle or a brief outage becomes RetryableAwsError, which the state machine's Retry
matches by name (statemachines/build.asl.json); anything else is AwsRequestFailed.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

from botocore.exceptions import BotoCoreError, ClientError

from petal.errors import PetalStepError

# Error codes that mean "try again later", whatever the service.
RETRYABLE_CODES: Final = frozenset(
    {
        "RequestLimitExceeded",
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "RequestThrottled",
        "RequestThrottledException",
        "SlowDown",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "Unavailable",
        "InternalError",
        "InternalFailure",
        "InternalServerError",
        "RequestTimeout",
        "RequestTimeoutException",
        "TransactionConflictException",
    }
)


class RetryableAwsError(PetalStepError):
    """AWS asked to slow down or was briefly unavailable: the state machine retries."""


class AwsRequestFailed(PetalStepError):
    """An AWS call failed for a reason a retry will not fix."""


def error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def translate(action: str, error: ClientError) -> PetalStepError:
    """The step error for a failed AWS call, naming `action`."""
    code = error_code(error)
    message = error.response.get("Error", {}).get("Message", "")
    text = f"{action} failed: {code}: {message}".rstrip(": ")
    if code in RETRYABLE_CODES:
        return RetryableAwsError(text)
    return AwsRequestFailed(text)


def is_conditional_check_failure(error: ClientError) -> bool:
    return error_code(error) == "ConditionalCheckFailedException"


@contextmanager
def aws_call(action: str) -> Iterator[None]:
    """Re-raise a failed AWS call as RetryableAwsError or AwsRequestFailed, naming `action`."""
    try:
        yield
    except ClientError as error:
        raise translate(action, error) from error
    except BotoCoreError as error:
        # Connection resets and read timeouts: transient by nature.
        raise RetryableAwsError(f"{action} failed: {error}") from error
