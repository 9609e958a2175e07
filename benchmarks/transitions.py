"""State transitions of a complete build: a 1-minute install against a 90-minute one.

Standard workflows are billed per state transition, and a build must not pay for
waiting: the install is one task that ends by callback (SSM status event -> callback
-> SendTaskSuccess), kept alive by heartbeats that are not transitions. So both runs
must enter exactly the same states. The install's duration is simulated (the builder
agent's log timestamps and heartbeat count), not waited for.

    .venv/bin/python benchmarks/transitions.py

Exit status 0 when the two counts are equal, 1 otherwise.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from petal.build.definition import StateMachineSettings  # noqa: E402
from petal.build.steps.check_snapshot import wait_schedule  # noqa: E402
from petal.deployment_contract import LOG_HEARTBEAT_FUNCTION  # noqa: E402
from petal.local.emulator import LocalAws, SimulatedInstall  # noqa: E402
from petal.seed.loading import load_seed  # noqa: E402

SEED = REPO_ROOT / "seeds" / "testing" / "workload-basic.yaml"


def run(install_minutes: float) -> tuple[list[str], int, int]:
    """(states entered, history events, heartbeat deliveries) of one complete build."""
    install = SimulatedInstall(minutes=install_minutes, heartbeat_minutes=5)
    with LocalAws(REPO_ROOT, install=install, log_level="ERROR") as aws:
        result = aws.build({"seed": load_seed(SEED).to_document(), "build_id": "bench"})
        if result.status != "SUCCEEDED":
            raise SystemExit(f"the build did not succeed: {result.error}: {result.cause}")
        states = aws.states_entered(result.execution_arn)
        events = len(aws.history(result.execution_arn))
        beats = sum(1 for module, _, _ in aws.event_results if module == LOG_HEARTBEAT_FUNCTION)
    return states, events, beats


# Transitions of one snapshot check: WaitForSnapshot / WaitLongerForSnapshot,
# CheckSnapshot, SnapshotCompleted.
TRANSITIONS_PER_CHECK = 3
BEFORE_WAIT_SECONDS = 60  # the fixed wait before the backoff


def snapshot_checks(waits: list[int], seconds: int) -> tuple[int, int]:
    """(checks, seconds noticed late) for a snapshot that takes `seconds`."""
    elapsed = 0
    for count, wait in enumerate(waits, 1):
        elapsed += wait
        if elapsed >= seconds:
            return count, elapsed - seconds
    raise SystemExit(f"a {seconds} s snapshot outlasts the {len(waits)} checks allowed")


def snapshot_loop() -> None:
    settings = StateMachineSettings()
    after = wait_schedule(
        settings.snapshot_wait_seconds,
        settings.snapshot_max_wait_seconds,
        settings.snapshot_max_attempts,
    )
    before = [BEFORE_WAIT_SECONDS] * (12 * 60)
    print(
        f"snapshot wait loop ({TRANSITIONS_PER_CHECK} transitions a check; after: first wait "
        f"{settings.snapshot_wait_seconds} s, doubling to {settings.snapshot_max_wait_seconds} s):"
    )
    for minutes in (5, 60):
        cells = []
        for label, waits in (("before", before), ("after", after)):
            checks, late = snapshot_checks(waits, minutes * 60)
            cells.append(
                f"{label} {checks * TRANSITIONS_PER_CHECK:3d} transitions ({checks} checks, "
                f"done seen {late} s late)"
            )
        print(f"  {minutes:2d}-minute snapshot: " + "; ".join(cells))


def main() -> int:
    snapshot_loop()
    runs = {minutes: run(minutes) for minutes in (1, 90)}
    for minutes, (states, events, beats) in runs.items():
        print(f"install of {minutes} simulated minute(s):")
        print(f"  states entered (transitions): {len(states)}")
        print(f"  history events:               {events}")
        print(f"  heartbeat deliveries:         {beats}")
        counts = Counter(states)
        print("  " + ", ".join(f"{name}×{n}" if n > 1 else name for name, n in counts.items()))
    (short, _, _), (long, _, _) = runs[1], runs[90]
    if short == long:
        print(f"equal: {len(short)} transitions either way; the install is waited for by callback")
        return 0
    print("NOT EQUAL: the install costs transitions (polling?)")
    return 1


if __name__ == "__main__":
    sys.exit(main())
