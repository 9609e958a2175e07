"""What a workflow test looks at after a build: petal's resources left in the emulator."""

from __future__ import annotations

from typing import Any

from petal.deployment_contract import ROLE_VOLUME, TAG_MANAGED, TAG_ROLE
from petal.local.emulator import LocalAws


def petal_instances(aws: LocalAws | Any) -> list[dict[str, Any]]:
    """Builder instances not terminated (shutting-down counts as gone)."""
    reservations = aws.client("ec2").describe_instances(
        Filters=[
            {"Name": f"tag:{TAG_MANAGED}", "Values": ["true"]},
            {
                "Name": "instance-state-name",
                "Values": ["pending", "running", "stopping", "stopped"],
            },
        ]
    )["Reservations"]
    return [i for r in reservations for i in r["Instances"]]


def petal_volumes(aws: LocalAws) -> list[dict[str, Any]]:
    return aws.client("ec2").describe_volumes(
        Filters=[{"Name": f"tag:{TAG_MANAGED}", "Values": ["true"]}]
    )["Volumes"]


def software_volumes(aws: LocalAws) -> list[dict[str, Any]]:
    """Software volumes only (a running builder's root volume carries petal's tags too)."""
    return aws.client("ec2").describe_volumes(
        Filters=[{"Name": f"tag:{TAG_ROLE}", "Values": [ROLE_VOLUME]}]
    )["Volumes"]


def petal_snapshots(aws: LocalAws) -> list[dict[str, Any]]:
    return aws.client("ec2").describe_snapshots(
        OwnerIds=["self"], Filters=[{"Name": f"tag:{TAG_MANAGED}", "Values": ["true"]}]
    )["Snapshots"]


def locks(aws: LocalAws) -> list[Any]:
    return list(aws.table.locks())


def executions(aws: LocalAws) -> list[dict[str, Any]]:
    listed: list[dict[str, Any]] = aws.client("stepfunctions").list_executions(
        stateMachineArn=aws.deployment.state_machine_arn
    )["executions"]
    return listed


def assert_nothing_left(aws: LocalAws) -> None:
    assert petal_instances(aws) == []
    assert petal_volumes(aws) == []
    assert locks(aws) == []


def assert_nothing_created(aws: LocalAws) -> None:
    """A build refused before it started: not even a snapshot."""
    assert petal_instances(aws) == []
    assert petal_volumes(aws) == []
    assert petal_snapshots(aws) == []
    assert locks(aws) == []
