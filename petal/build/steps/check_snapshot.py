"""Build step CheckSnapshot: is the snapshot completed?"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from petal.aws import ec2_snapshots
from petal.aws.errors import AwsRequestFailed
from petal.build.table import BuildTable
from petal.errors import SnapshotFailed, SnapshotNotCompleted


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
    return {
        "snapshot_id": snapshot_id,
        "completed": False,
        "attempt": attempt,
        "progress": view.progress,
    }
