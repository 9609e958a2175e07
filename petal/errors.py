"""The errors petal reports: each derives from PetalError, which carries the exit code
the CLI ends with (1: failed or not found, 2: invalid input).

The build steps' errors derive from PetalStepError. A Lambda function's error type is
its exception's class name, and the state machine's Retry and Catch match it exactly
(case-sensitive): the class names are spelled in statemachines/build.asl.json, so
renaming one is a change to the definition too.
"""

from __future__ import annotations

from typing import Any, Final

EXIT_OK: Final = 0
EXIT_FAILURE: Final = 1  # not found, or an operation failed
EXIT_INVALID: Final = 2  # bad input: a seed, a flag, a config file
EXIT_INTERRUPTED: Final = 130


class PetalError(Exception):
    """Base of every error petal reports; its message says what to do."""

    exit_code: int = EXIT_FAILURE
    # The message is a report of its own (e.g. a seed's `file:line: error: ...` lines),
    # printed as it is rather than as one `petal: error:` line.
    is_report: bool = False
    # Given --json, the JSON document says it all: no message on stderr too.
    json_replaces_message: bool = False

    def json_document(self) -> dict[str, Any] | None:
        """What a command given --json prints on stdout for this error (the message
        goes to stderr either way); None: nothing."""
        return None


class InvalidInput(PetalError):
    """A flag, argument or setting is malformed; nothing was done."""

    exit_code = EXIT_INVALID


class PetalStepError(PetalError):
    """Base of the errors a build step reports; the message says what to do."""


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


class TaskTokenNotParked(PetalStepError):
    """A bootstrap command ended before its task token was parked: the callback fails,
    so Lambda delivers the status event again once the token is there."""
