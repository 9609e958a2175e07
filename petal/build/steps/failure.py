"""How a failed build is explained: the error's public name, the cause, what to do."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

from petal.build.records import BuildRecord

# The Catch of each state writes $.failure.<key>; the key is the step's name.
ADVICE: Final[dict[str, str]] = {
    "InvalidBuildRequest": "fix what is named above and start the build again",
    "BuildAlreadyRunning": "wait for the running build; its snapshot will be reused",
    "OfficialAmiNotFound": "set build.parallelcluster_version to a released version",
    "NoBuilderCapacity": (
        "add subnets in other Availability Zones (petal:subnetIds), choose another "
        "build.instance_type, or try again later"
    ),
    "BuilderLost": "start the build again",
    "BuilderNotReady": "fix the builder's network or instance profile as described",
    "BootstrapFailed": (
        "read the build log (`petal build logs <id>`), fix the seed (a package spec, a "
        "mirror) and start the build again"
    ),
    "BootstrapTimedOut": "raise build.timeout_minutes in the seed, or build fewer packages",
    # Not a slow install: the command never reached the builder, so more time is no cure.
    "BootstrapNotDelivered": (
        "the builder's SSM agent was unreachable when the install was sent: check that the "
        "builder subnets reach Systems Manager (a NAT gateway, or petal:createVpcEndpoints) "
        "and that nothing stopped the instance or its agent, then start the build again"
    ),
    "BootstrapCancelled": "someone cancelled the command; start the build again",
    "BuilderStopped": (
        "the builder stopped during the install (terminated by hand, a scheduled event "
        "or a shutdown): start the build again"
    ),
    "States.HeartbeatTimeout": (
        "the builder stopped reporting progress: the install hung or the instance lost "
        "its connection to AWS. Read the build log, then start the build again"
    ),
    "States.Timeout": "raise build.timeout_minutes in the seed, or build fewer packages",
    "SnapshotFailed": "start the build again",
    "SnapshotNotCompleted": "check the snapshot in the EC2 console; it may still complete",
    "ConfigurationError": "redeploy the petal stack",
    "RetryableAwsError": "AWS throttled petal for too long: start the build again later",
    "AwsRequestFailed": "fix the AWS problem named above and start the build again",
}


DEFAULT_ADVICE: Final = (
    "see the failed state in the execution's history for details, then start the build again"
)


def public_error_name(error: str) -> str:
    """The error name the execution fails with: a Fail state may not use the reserved
    "States." prefix, so States.HeartbeatTimeout ends the execution as HeartbeatTimeout."""
    return error.removeprefix("States.") or "BuildFailed"


def failure_message(cause: str) -> str:
    """The human part of a Catch's Cause: a Lambda error's errorMessage, or the text."""
    try:
        parsed = json.loads(cause)
    except (TypeError, ValueError):
        return cause.strip()
    if isinstance(parsed, Mapping) and "errorMessage" in parsed:
        return str(parsed["errorMessage"]).strip()
    return cause.strip()


def describe_failure(
    failure: Mapping[str, Any], build_id: str, record: BuildRecord | None
) -> tuple[str, str, str]:
    """(step, error name, cause a person can act on) for a $.failure object."""
    step, detail = next(iter(failure.items()))
    error = str((detail or {}).get("Error") or "States.TaskFailed")
    message = failure_message(str((detail or {}).get("Cause") or "")) or "(no details)"
    # The cause is read as sentences: one without an end of its own gets one.
    if not message.endswith((".", "!", "?")):
        message += "."
    advice = ADVICE.get(error, DEFAULT_ADVICE)
    where = ""
    if step == "bootstrap" and record is not None and record.command_id and record.log_group:
        where = (
            f" Build log: CloudWatch Logs group {record.log_group}, streams {record.command_id}/*."
        )
    cause = (
        f"Build {build_id} failed in step {step} ({error}): {message}{where} What to do: {advice}."
    )
    return str(step), error, cause
