"""Failure injection: make one step of an emulated build fail as it can fail on AWS.

A `LocalFailure` names the step and how it fails; the harness keeps which build fails
how (`LocalAws.failure_for`, which the CLI's server overrides), and `FailureInjector`
makes the named step's handler, or the AWS call it makes, fail. The bootstrap's modes
are the simulated builder's to act out (petal/local/simulated_builder.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Final

from petal.aws.errors import RetryableAwsError
from petal.errors import InvalidInput
from petal.local.deploy import ACCOUNT_ID
from petal.local.moto_fixes import BACKEND_LOCK

# Where a named step's failure is injected: the handler module of that step.
STEP_MODULES: Final[dict[str, tuple[str, ...]]] = {
    "prepare": ("prepare",),
    "launch": ("launch",),
    "ready": ("check_ready",),
    "bootstrap": ("bootstrap",),
    "snapshot": ("snapshot", "check_snapshot"),
    "cleanup": ("cleanup",),
}
FAILURE_MODES: Final[dict[str, tuple[str, ...]]] = {
    "prepare": ("exception",),
    "launch": ("exception", "capacity", "capacity-first-subnet", "throttle-once"),
    "ready": ("exception", "agent-offline"),
    "bootstrap": ("exception", "failed", "timed-out", "cancelled", "terminated", "hang"),
    "snapshot": ("exception", "error"),
    # exception: the cleanup handler fails at once, every time (even recording the
    # failure): the record waits for the janitor. partial: it fails after terminating
    # the builder, leaving the volume and the lock (the state machine records FAILED).
    "cleanup": ("exception", "partial"),
}
# What the simulated agent reports for a failed/timed-out/cancelled command.
SSM_FAILURE_STATUS: Final = {"failed": "Failed", "timed-out": "TimedOut", "cancelled": "Cancelled"}


class InjectedFailure(Exception):
    """Raised in place of a handler by local mode's failure injection."""


class LocalAwsError(RuntimeError):
    """Local mode could not do what was asked; the message says why."""


@dataclass(frozen=True)
class LocalFailure:
    """Make one step of a build fail. Modes per step are in FAILURE_MODES:

    exception            the step's handler raises (every step)
    capacity             launch: every subnet reports InsufficientInstanceCapacity
    capacity-first-subnet  launch: only the first subnet does (the next one is used)
    throttle-once        launch: the first attempt raises RetryableAwsError (retried)
    agent-offline        ready: the SSM agent never comes Online
    failed / timed-out / cancelled  bootstrap: the command ends with that SSM status
    terminated           bootstrap: the builder is terminated mid-install
    hang                 bootstrap: the install stops printing (heartbeat timeout)
    error                snapshot: EBS reports the snapshot in state error
    partial              cleanup: TerminateInstances terminates the builder, then fails
                         (the volume and the lock stay behind)
    """

    step: str
    mode: str = "exception"
    # And then the cleanup that follows the failure fails too, in this cleanup mode.
    cleanup: str | None = None

    def __post_init__(self) -> None:
        if self.cleanup is not None and (
            self.step == "cleanup" or self.cleanup not in FAILURE_MODES["cleanup"]
        ):
            raise LocalAwsError(
                f"the cleanup after a failed {self.step} step cannot fail with "
                f"{self.cleanup!r}; use one of {', '.join(FAILURE_MODES['cleanup'])}"
            )
        if self.step not in FAILURE_MODES:
            raise LocalAwsError(
                f"unknown step {self.step!r} to fail; use one of {', '.join(FAILURE_MODES)}"
            )
        if self.mode not in FAILURE_MODES[self.step]:
            raise LocalAwsError(
                f"step {self.step} cannot fail with {self.mode!r}; use one of "
                f"{', '.join(FAILURE_MODES[self.step])}"
            )


def parse_failure(text: str) -> LocalFailure:
    """`step` or `step:mode`, e.g. "snapshot" or "bootstrap:timed-out" (CLI --fail-at)."""
    step, _, mode = text.strip().partition(":")
    return LocalFailure(step, mode or "exception")


def check_failure_request(text: str) -> LocalFailure:
    """`petal build --simulate-failure TEXT`, parsed; InvalidInput naming the flag."""
    try:
        return parse_failure(text)
    except LocalAwsError as invalid:
        raise InvalidInput(f"--simulate-failure: {invalid}") from None


class FailureInjector:
    """Makes handlers, and the EC2 calls they make, fail as `failure_for` says."""

    def __init__(
        self, failure_for: Callable[[str | None], LocalFailure | None], region: str
    ) -> None:
        self._failure_for = failure_for
        self._region = region
        self._fired_once: set[tuple[str, str]] = set()
        # RunInstances carries no build id: the launch handler running says whose it is.
        self._launching: str | None = None
        # Nor does TerminateInstances: the cleanup handler running says whose it is.
        self._cleaning: str | None = None

    @contextmanager
    def invocation(self, module: str, build_id: str | None, event: Any) -> Iterator[None]:
        """Around one handler invocation: fail it now, or arm what fails inside it."""
        self._before(module, build_id, event)
        self._launching = build_id if module == "launch" else None
        self._cleaning = build_id if module == "cleanup" else None
        try:
            yield
        finally:
            self._launching = None
            self._cleaning = None

    def after_terminate(self, instance_ids: list[str]) -> None:
        """TerminateInstances has terminated `instance_ids`: fail the call anyway if the
        cleaning build asked for a partial cleanup, so the cleanup fails after part of
        its work, as one whose role lacks ec2:DeleteVolume would."""
        failure = self._failure_for(self._cleaning)
        if failure is None or _cleanup_mode(failure) != "partial" or not instance_ids:
            return
        from moto.ec2.exceptions import EC2ClientError

        raise EC2ClientError(
            "UnauthorizedOperation",
            "You are not authorized to perform this operation (injected by petal local "
            "mode after the instance was terminated).",
        )

    def check_capacity(self, subnet_id: str | None, subnet_ids: tuple[str, ...]) -> None:
        """RunInstances in `subnet_id`: raise EC2's capacity error if the launching build
        asked for one (`subnet_ids` are the deployment's, first one first)."""
        failure = self._failure_for(self._launching)
        if failure is None or failure.step != "launch":
            return
        if failure.mode == "capacity" or (
            failure.mode == "capacity-first-subnet" and subnet_id == subnet_ids[0]
        ):
            from moto.ec2.exceptions import EC2ClientError

            raise EC2ClientError(
                "InsufficientInstanceCapacity",
                "We currently do not have sufficient capacity in the Availability Zone you "
                "requested (injected by petal local mode).",
            )

    def _before(self, module: str, build_id: str | None, event: Any) -> None:
        failure = self._failure_for(build_id)
        if failure is not None and module == "cleanup" and failure.cleanup == "exception":
            raise InjectedFailure(
                f"failure injected into the cleanup after the failed {failure.step} step "
                "by local mode"
            )
        if failure is None or module not in STEP_MODULES[failure.step]:
            return
        if failure.mode == "exception":
            raise InjectedFailure(
                f"failure injected into the {failure.step} step by local mode ({module})"
            )
        if failure.mode == "throttle-once" and (build_id or "", module) not in self._fired_once:
            self._fired_once.add((build_id or "", module))
            raise RetryableAwsError(
                "EC2 RunInstances failed: RequestLimitExceeded: Request limit exceeded. "
                "(injected once by local mode)"
            )
        if failure.mode == "error" and module == "check_snapshot":
            snapshot_id = (event.get("snapshot") or {}).get("snapshot_id")
            self._set_snapshot_state(str(snapshot_id), "error")

    def _set_snapshot_state(self, snapshot_id: str, state: str) -> None:
        from moto.ec2.models import ec2_backends

        with BACKEND_LOCK:
            snapshot = ec2_backends[ACCOUNT_ID][self._region].snapshots.get(snapshot_id)
            if snapshot is not None:
                snapshot.status = state


def _cleanup_mode(failure: LocalFailure) -> str | None:
    """How the build's cleanup is to fail, if it is."""
    return failure.mode if failure.step == "cleanup" else failure.cleanup
