"""Errors of sharing, copying and publishing snapshots; each carries its exit code."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from petal.errors import PetalError

if TYPE_CHECKING:
    pass


class SharingError(PetalError):
    """Something the user has to act on; the message says what."""

    def json_document(self) -> dict[str, Any]:
        return {"ok": False, "error": str(self), "exit_code": self.exit_code}


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
