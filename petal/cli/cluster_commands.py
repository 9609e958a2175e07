"""`petal cluster`: what petal made for a cluster; `volume-status` shows how far the
software volume `petal create --initialize` created has initialized."""

from __future__ import annotations

import argparse

from petal.aws import ebs_volumes
from petal.cli import hints, snapshot_flags
from petal.cli.commands import command
from petal.cli.output import add_json_flag, error, print_json
from petal.cluster import costs
from petal.cluster.plan import TAG_VOLUME_CLUSTER
from petal.errors import EXIT_FAILURE, EXIT_OK, InvalidInput


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    cluster = command("cluster").add_parser(
        subparsers,
        description="What petal created for a cluster: the software volume of "
        "`petal create --initialize`.",
    )
    commands = cluster.add_subparsers(dest="cluster_command", metavar="COMMAND", required=True)
    status = commands.add_parser(
        "volume-status",
        help="initialization progress of a software volume petal created",
        description="Initialization progress (DescribeVolumeStatus) of the volume "
        "`petal create --initialize` created: given its id, or the cluster's name (the "
        f"volumes tagged {TAG_VOLUME_CLUSTER}=NAME).",
    )
    status.add_argument("target", metavar="VOLUME|CLUSTER", help="vol-... or a cluster name")
    status.add_argument("--region", metavar="REGION", help="default: the configured region")
    add_json_flag(status)
    status.set_defaults(func=_volume_status)


def _volume_status(args: argparse.Namespace) -> int:
    region = snapshot_flags.default_region(args)
    if region is None:
        raise InvalidInput("no AWS region: pass --region REGION")
    ec2 = snapshot_flags.ec2(region)
    target: str = args.target
    if ebs_volumes.VOLUME_ID.match(target):
        volume_ids = [target]
    elif target.startswith("vol-"):
        raise InvalidInput(f"VOLUME: {target!r} is not a volume id (vol-0123456789abcdef0)")
    else:
        volume_ids = [
            v.volume_id for v in ebs_volumes.volumes_tagged(ec2, TAG_VOLUME_CLUSTER, target)
        ]
        if not volume_ids:
            error(
                f"no volume tagged {TAG_VOLUME_CLUSTER}={target} in {region}: petal creates "
                f"one only with `{hints.petal('create ... --initialize RATE')}`"
            )
            return EXIT_FAILURE
    found = [ebs_volumes.initialization(ec2, volume_id) for volume_id in volume_ids]
    statuses = [s for s in found if s is not None]
    if len(statuses) < len(volume_ids):
        error(f"volume {target} not found in {region}")
        return EXIT_FAILURE
    if getattr(args, "json", False):
        print_json({"volumes": [s.to_json() for s in statuses]})
    else:
        for line in _lines(statuses):
            print(line)
    return EXIT_OK


def _lines(statuses: list[ebs_volumes.Initialization]) -> list[str]:
    lines: list[str] = []
    for status in statuses:
        head = f"{status.volume_id} ({status.zone}, status {status.status or 'unknown'})"
        if status.kind is None:
            lines.append(f"{head}: not created from a snapshot, nothing to initialize")
        elif status.done:
            lines.append(f"{head}: initialized ({status.kind})")
        elif status.progress is None:
            lines.append(f"{head}: initializing ({status.kind}); EC2 reports no progress")
        else:
            left = (
                f", about {costs.duration(status.seconds_left)} left"
                if status.seconds_left is not None
                else ""
            )
            lines.append(f"{head}: {status.progress}% initialized ({status.kind}){left}")
    return lines
