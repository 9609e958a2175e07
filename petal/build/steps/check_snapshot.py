"""Build step CheckSnapshot: is the snapshot completed? If not, how long to wait.

The state machine waits `wait_seconds` (the first setting) before the first check and
then whatever the previous check returned: the wait doubles after every check, up to
`max_wait_seconds`. A snapshot of a few minutes is still checked often, one of an hour
or more costs a check per `max_wait_seconds` instead of one a minute, and none is seen
done more than one capped wait late. `max_attempts` bounds the number of checks.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from petal.aws import ec2_snapshots
from petal.aws.errors import AwsRequestFailed
from petal.build.table import BuildTable
from petal.errors import SnapshotFailed, SnapshotNotCompleted

BACKOFF_RATE: Final = 2


def next_wait_seconds(attempt: int, first: int, cap: int) -> int:
    """The wait after the `attempt`-th check (1 = the first): `first` doubled per
    check, at most `cap`."""
    wait = max(first, 0)
    for _ in range(attempt):
        if wait == 0 or wait >= cap:
            break
        wait *= BACKOFF_RATE
    return min(wait, max(cap, 0))


def wait_schedule(first: int, cap: int, checks: int) -> list[int]:
    """The wait before each of `checks` checks: the state machine's first wait, then
    the ones the checks return."""
    return [max(first, 0)] + [next_wait_seconds(n, first, cap) for n in range(1, checks)]


def check_snapshot(
    event: Mapping[str, Any],
    *,
    ec2: Any,
    table: BuildTable,
    trusted_accounts: tuple[str, ...],
) -> dict[str, Any]:
    build, state = event["build"], event["snapshot"]
    snapshot_id = str(state["snapshot_id"])
    attempt = int(state.get("attempt", 0)) + 1
    view = ec2_snapshots.describe_snapshot(ec2, snapshot_id)
    if view is None:
        raise SnapshotFailed(
            f"snapshot {snapshot_id} no longer exists (deleted while it was being "
            "created?): start the build again"
        )
    if view.state == "error":
        message = f": {view.state_message}" if view.state_message else ""
        raise SnapshotFailed(
            f"EBS reports snapshot {snapshot_id} in state error{message}. This is on the "
            "EBS side; start the build again"
        )
    if view.state == "completed":
        shared: list[str] = []
        note = None
        if trusted_accounts:
            try:
                ec2_snapshots.share_snapshot(ec2, snapshot_id, trusted_accounts)
                shared = list(trusted_accounts)
            except AwsRequestFailed as error:
                # The snapshot is good; sharing is a separate, repeatable act.
                note = (
                    f"not shared with {', '.join(trusted_accounts)}: {error}. Snapshots "
                    "encrypted with the AWS managed key cannot be shared: set "
                    "volume.kms_key_id to a customer managed key"
                )
        table.update_build(
            str(build["build_id"]),
            {"step": "snapshot"},
            execution_arn=build["execution_arn"],
            append_note=note,
        )
        return {
            "snapshot_id": snapshot_id,
            "completed": True,
            "attempt": attempt,
            "shared_with": shared,
        }
    max_attempts = int(event["max_attempts"])
    if attempt >= max_attempts:
        raise SnapshotNotCompleted(
            f"snapshot {snapshot_id} is still {view.state} ({view.progress or '0%'}) after "
            f"{attempt} checks. It may still complete: `petal build list` will show it "
            "reused on the next build once it has. Raise the snapshot wait settings for "
            "volumes this large"
        )
    first = int(event.get("wait_seconds", 0))
    return {
        "snapshot_id": snapshot_id,
        "completed": False,
        "attempt": attempt,
        "progress": view.progress,
        "wait_seconds": next_wait_seconds(
            attempt, first, max(first, int(event.get("max_wait_seconds", first)))
        ),
    }
