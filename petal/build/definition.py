"""The build state machine's definition (statemachines/build.asl.json) and the values
of its `${Name}` placeholders.

The CDK stack passes `definition_substitutions(...)` as CloudFormation
DefinitionSubstitutions; local mode and the workflow tests call `render_definition`,
which substitutes the same way. Every placeholder stands inside a JSON string, so the
file itself is valid JSON (asl-validator and editors read it as is): the numbers
reach the definition's first state as text and `States.StringToJson` turns them into
numbers there, into `$.settings`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from petal.deployment_contract import STATE_MACHINE_FILE, STEP_FUNCTIONS

PLACEHOLDER: Final = re.compile(r"\$\{([A-Za-z][A-Za-z0-9_]*)\}")


@dataclass(frozen=True)
class StateMachineSettings:
    """The numbers of the definition. Defaults are for AWS; `fast()` is for emulators."""

    # Builder start-up: instance running, SSM agent Online, volume available.
    ready_wait_seconds: int = 20
    ready_max_attempts: int = 45  # 15 minutes
    # The snapshot: a first snapshot of a large volume can take hours. The first check
    # comes snapshot_wait_seconds after the snapshot starts; each later wait doubles,
    # up to snapshot_max_wait_seconds (`petal.build.steps.check_snapshot`), so an hour-long
    # snapshot costs 15 checks instead of 60 and is seen done at most one capped wait
    # late.
    snapshot_wait_seconds: int = 30
    snapshot_max_wait_seconds: int = 300
    snapshot_max_attempts: int = 50  # 30 + 60 + 120 + 240 + 46 x 300 s: about 4 hours
    # The bootstrap prints a heartbeat every third of this: two may be lost.
    bootstrap_heartbeat_seconds: int = 900
    # Above every step function's own timeout (the longest is 2 minutes).
    lambda_task_timeout_seconds: int = 180

    @classmethod
    def fast(cls) -> StateMachineSettings:
        """For moto: waits of a second, and a heartbeat window a test can outlive."""
        return cls(
            ready_wait_seconds=0,
            ready_max_attempts=5,
            snapshot_wait_seconds=0,
            snapshot_max_wait_seconds=0,
            snapshot_max_attempts=5,
            bootstrap_heartbeat_seconds=30,
            lambda_task_timeout_seconds=60,
        )

    def check(self) -> None:
        problems = [
            f"{name} must be a whole number >= {low}, not {value!r}"
            for name, value, low in (
                ("ready_wait_seconds", self.ready_wait_seconds, 0),
                ("ready_max_attempts", self.ready_max_attempts, 1),
                ("snapshot_wait_seconds", self.snapshot_wait_seconds, 0),
                ("snapshot_max_wait_seconds", self.snapshot_max_wait_seconds, 0),
                ("snapshot_max_attempts", self.snapshot_max_attempts, 1),
                ("bootstrap_heartbeat_seconds", self.bootstrap_heartbeat_seconds, 3),
                ("lambda_task_timeout_seconds", self.lambda_task_timeout_seconds, 1),
            )
            if not isinstance(value, int) or isinstance(value, bool) or value < low
        ]
        if not problems and self.snapshot_max_wait_seconds < self.snapshot_wait_seconds:
            problems.append(
                f"snapshot_max_wait_seconds ({self.snapshot_max_wait_seconds}) must be at "
                f"least snapshot_wait_seconds ({self.snapshot_wait_seconds})"
            )
        if problems:
            raise ValueError("invalid state machine settings: " + "; ".join(problems))

    def numbers(self) -> dict[str, int]:
        """Placeholder name -> value, for the numeric placeholders."""
        self.check()
        return {
            "ReadyWaitSeconds": self.ready_wait_seconds,
            "ReadyMaxAttempts": self.ready_max_attempts,
            "SnapshotWaitSeconds": self.snapshot_wait_seconds,
            "SnapshotMaxWaitSeconds": self.snapshot_max_wait_seconds,
            "SnapshotMaxAttempts": self.snapshot_max_attempts,
            "BootstrapHeartbeatSeconds": self.bootstrap_heartbeat_seconds,
            "LambdaTaskTimeoutSeconds": self.lambda_task_timeout_seconds,
        }


NUMERIC_PLACEHOLDERS: Final = tuple(StateMachineSettings().numbers())


def definition_substitutions(
    arns: Mapping[str, str], settings: StateMachineSettings
) -> dict[str, str]:
    """Every placeholder of the definition and its value.

    `arns` maps the keys of STEP_FUNCTIONS (PrepareFunctionArn, ...) to the functions'
    ARNs (CDK tokens are fine: they are strings).
    """
    missing = sorted(set(STEP_FUNCTIONS) - set(arns))
    if missing:
        raise ValueError(f"no ARN given for {', '.join(missing)}")
    substitutions = {key: str(arns[key]) for key in STEP_FUNCTIONS}
    substitutions.update({key: str(value) for key, value in settings.numbers().items()})
    return substitutions


def definition_path(repo_root: Path) -> Path:
    return repo_root / STATE_MACHINE_FILE


def placeholders(text: str) -> set[str]:
    return set(PLACEHOLDER.findall(text))


def render_definition(text: str, substitutions: Mapping[str, str]) -> str:
    """Substitute like CloudFormation does; every placeholder must have a value."""
    missing = sorted(placeholders(text) - set(substitutions))
    if missing:
        raise ValueError(f"{STATE_MACHINE_FILE}: no value for {', '.join(missing)}")
    return PLACEHOLDER.sub(lambda match: substitutions[match.group(1)], text)
