"""Errors of sharing, copying and publishing snapshots; each carries its exit code."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    pass


class SharingError(Exception):
    """Something the user has to act on; the message says what."""

    exit_code: int = 1


class InvalidArgument(SharingError):
    """A flag or argument is malformed. Raised before any AWS call."""

    exit_code = 2


class Refused(SharingError):
    """The snapshot, its key or the account's settings do not allow the operation."""


class NotFound(SharingError):
    pass


class AwsFailure(SharingError):
    """AWS refused or could not be reached. `code` is AWS's error code, if any."""

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code
