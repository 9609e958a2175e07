"""Errors the build steps raise, named for the state machine.

A Lambda function's error type is its exception's class name, and the state machine's
Retry and Catch match it exactly (case-sensitive): the class names below are spelled
in statemachines/build.asl.json, so renaming one is a change to the definition too.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

from botocore.exceptions import BotoCoreError, ClientError

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


class PetalStepError(Exception):
    """Base of the errors a build step reports; the message says what to do."""


class RetryableAwsError(PetalStepError):
    """AWS asked to slow down or was briefly unavailable: the state machine retries."""


class AwsRequestFailed(PetalStepError):
    """An AWS call failed for a reason a retry will not fix."""


class ConfigurationError(PetalStepError):
    """The deployment is missing a setting (an environment variable of the function)."""


class InvalidBuildRequest(PetalStepError):
    """The execution input or its seed is invalid; nothing was created."""


class BuildAlreadyRunning(PetalStepError):
    """Another build of the same fingerprint and variant holds the lock."""


class NoBuilderCapacity(PetalStepError):
    """No configured subnet had capacity for the builder instance type."""


class OfficialAmiNotFound(PetalStepError):
    """No official ParallelCluster AMI matches the seed's version, os and architecture."""


class BuilderLost(PetalStepError):
    """The builder instance stopped or vanished before the install began."""


class BuilderNotReady(PetalStepError):
    """The builder did not come online (instance running, SSM agent Online) in time."""


class SnapshotFailed(PetalStepError):
    """EBS reported the snapshot in state error."""


class SnapshotNotCompleted(PetalStepError):
    """The snapshot did not complete within the configured number of checks."""


class CleanupPending(PetalStepError):
    """Resources are still detaching; the state machine retries the cleanup shortly."""


def error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def is_retryable(error: BaseException) -> bool:
    if isinstance(error, ClientError):
        return error_code(error) in RETRYABLE_CODES
    return isinstance(error, BotoCoreError)


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
