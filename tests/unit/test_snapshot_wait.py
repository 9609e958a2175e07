"""The snapshot wait loop: CheckSnapshot doubles the wait up to a cap, and the state
machine waits what it returns, so a long snapshot costs few checks."""

from __future__ import annotations

from typing import Any, cast

import botocore.session
import pytest
from botocore.stub import Stubber

from petal.build.definition import StateMachineSettings, definition_substitutions
from petal.build.steps.check_snapshot import check_snapshot, next_wait_seconds, wait_schedule
from petal.build.table import BuildTable
from petal.deployment_contract import STEP_FUNCTIONS
from petal.errors import SnapshotNotCompleted


def test_the_wait_doubles_up_to_the_cap() -> None:
    assert [next_wait_seconds(n, 30, 300) for n in range(1, 7)] == [60, 120, 240, 300, 300, 300]
    assert next_wait_seconds(10_000, 30, 300) == 300
    assert wait_schedule(30, 300, 5) == [30, 60, 120, 240, 300]
    # The emulator's settings: no waiting at all.
    assert wait_schedule(0, 0, 5) == [0, 0, 0, 0, 0]
    assert next_wait_seconds(3, 60, 60) == 60


def test_an_hour_long_snapshot_costs_a_quarter_of_the_checks() -> None:
    settings = StateMachineSettings()
    waits = wait_schedule(
        settings.snapshot_wait_seconds,
        settings.snapshot_max_wait_seconds,
        settings.snapshot_max_attempts,
    )

    def checks_until(seconds: int) -> tuple[int, int]:
        elapsed = 0
        for count, wait in enumerate(waits, 1):
            elapsed += wait
            if elapsed >= seconds:
                return count, elapsed - seconds
        raise AssertionError("not done within max_attempts")

    checks, late = checks_until(3600)
    assert checks == 15 and late <= settings.snapshot_max_wait_seconds
    assert checks_until(300)[0] == 4
    # The bound stays what the stack's was (240 checks a minute apart): about 4 hours.
    assert 3.5 * 3600 <= sum(waits) <= 4.5 * 3600


def test_the_cap_is_a_placeholder_and_must_not_be_below_the_first_wait() -> None:
    arns = {key: f"arn:{key}" for key in STEP_FUNCTIONS}
    assert definition_substitutions(arns, StateMachineSettings())["SnapshotMaxWaitSeconds"] == "300"
    with pytest.raises(ValueError, match="snapshot_max_wait_seconds"):
        StateMachineSettings(snapshot_wait_seconds=60, snapshot_max_wait_seconds=30).check()


def _ec2_reporting(state: str, times: int) -> tuple[Any, Stubber]:
    ec2 = botocore.session.get_session().create_client(
        "ec2", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    stubber = Stubber(ec2)
    for _ in range(times):
        stubber.add_response(
            "describe_snapshots",
            {"Snapshots": [{"SnapshotId": "snap-1", "State": state, "Progress": "40%"}]},
            {"SnapshotIds": ["snap-1"]},
        )
    stubber.activate()
    return ec2, stubber


def test_a_pending_check_returns_the_next_wait() -> None:
    ec2, stubber = _ec2_reporting("pending", 2)
    table = cast(BuildTable, None)  # not touched while the snapshot is pending
    event: dict[str, Any] = {
        "build": {"build_id": "b1", "execution_arn": "arn:exec:b1"},
        "snapshot": {"snapshot_id": "snap-1"},
        "max_attempts": 10,
        "wait_seconds": 30,
        "max_wait_seconds": 300,
    }
    first = check_snapshot(event, ec2=ec2, table=table, trusted_accounts=())
    assert first == {
        "snapshot_id": "snap-1",
        "completed": False,
        "attempt": 1,
        "progress": "40%",
        "wait_seconds": 60,
    }
    second = check_snapshot({**event, "snapshot": first}, ec2=ec2, table=table, trusted_accounts=())
    assert (second["attempt"], second["wait_seconds"]) == (2, 120)
    stubber.assert_no_pending_responses()


def test_the_number_of_checks_stays_bounded() -> None:
    ec2, _ = _ec2_reporting("pending", 1)
    event = {
        "build": {"build_id": "b1", "execution_arn": "arn:exec:b1"},
        "snapshot": {"snapshot_id": "snap-1", "attempt": 4, "wait_seconds": 300},
        "max_attempts": 5,
        "wait_seconds": 30,
        "max_wait_seconds": 300,
    }
    with pytest.raises(SnapshotNotCompleted, match="after 5 checks"):
        check_snapshot(event, ec2=ec2, table=cast(BuildTable, None), trusted_accounts=())
