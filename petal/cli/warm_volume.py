"""`petal create --initialize RATE`: the software volume created by petal from the
snapshot at a provisioned initialization rate, in the head node subnet's Availability
Zone, and mounted with EbsSettings.VolumeId (docs/VOLUMES.md).

create_command.py runs the steps; this module holds the flags, the estimate, the
confirmation, and the volume's creation and undoing."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from petal.aws import ebs_volumes
from petal.cli import hints, snapshot_flags
from petal.cli.confirm import confirmed
from petal.cluster import costs
from petal.cluster.plan import ClusterPlan, volume_tags
from petal.errors import InvalidInput, PetalError


def _rate(text: str) -> int:
    low, high = ebs_volumes.MIN_INITIALIZATION_RATE, ebs_volumes.MAX_INITIALIZATION_RATE
    try:
        rate = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of MiB/s") from None
    if not low <= rate <= high:
        raise argparse.ArgumentTypeError(
            f"{rate} MiB/s is outside {low}-{high}, the rates EBS can provision"
        )
    return rate


def add_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--initialize",
        type=_rate,
        metavar="MIB_S",
        help="create the software volume from the snapshot yourself, initialized at this "
        f"rate ({ebs_volumes.MIN_INITIALIZATION_RATE}-{ebs_volumes.MAX_INITIALIZATION_RATE} "
        "MiB/s, paid per GiB), so that the first reads on the cluster are not slow; the "
        "config then mounts it with EbsSettings.VolumeId, and deleting the cluster does "
        "not delete it",
    )
    parser.add_argument(
        "--starts",
        type=snapshot_flags.positive_int("--starts"),
        metavar="N",
        help="with --initialize: cluster starts a month you expect from this snapshot, to "
        "say whether the initialization rate or Fast Snapshot Restore is cheaper "
        f"(default {costs.DEFAULT_STARTS_PER_MONTH})",
    )
    parser.add_argument(
        "--yes", action="store_true", help="with --initialize: create the volume without asking"
    )


def check_flags(args: argparse.Namespace) -> None:
    """What --initialize cannot go with; raises InvalidInput before any AWS call."""
    if args.initialize is None:
        if args.starts is not None:
            raise InvalidInput("--starts: only with --initialize RATE")
        return
    if args.dry_run:
        raise InvalidInput(
            "--initialize creates a volume (and costs money) while --dry-run creates "
            "nothing: drop one of them"
        )
    if args.deletion_policy is not None:
        raise InvalidInput(
            "--deletion-policy does not apply with --initialize: ParallelCluster never "
            "deletes a volume it did not create; the volume is yours to delete (petal "
            "says how)"
        )


@dataclass(frozen=True)
class WarmVolume:
    plan: ClusterPlan
    zone: str
    rate: int
    starts: int

    @property
    def region(self) -> str:
        return self.plan.prepared.settings.region

    @property
    def size_gb(self) -> int:
        return self.plan.resolution.volume_size_gb

    @property
    def snapshot_id(self) -> str:
        return self.plan.resolution.snapshot_id

    @property
    def estimate(self) -> costs.Initialization:
        return costs.Initialization(self.plan.resolution.snapshot_size_gb, self.rate)

    def lines(self) -> list[str]:
        choice = costs.WarmChoice(self.plan.resolution.snapshot_size_gb, self.rate, self.starts)
        return [f"⏱️  {line}" for line in self.estimate.lines()] + [
            f"   {line}" for line in choice.lines()
        ]

    def confirmed(self, args: argparse.Namespace) -> bool:
        return confirmed(
            f"Create a {self.size_gb} GiB volume from {self.snapshot_id} in {self.zone}, "
            f"initialized at {self.rate} MiB/s?",
            yes=args.yes,
        )

    def create(self, ec2: Any) -> str:
        volume = self.plan.prepared.settings.volume
        return ebs_volumes.create_initialized_volume(
            ec2,
            snapshot_id=self.snapshot_id,
            zone=self.zone,
            size_gb=self.size_gb,
            iops=volume.iops,
            throughput=volume.throughput,
            rate=self.rate,
            kms_key_id=volume.kms_key_id,
            tags=volume_tags(self.plan),
        )

    def delete_command(self, volume_id: str) -> str:
        return f"aws ec2 delete-volume --volume-id {volume_id} --region {self.region}"

    def deletion_lines(self, volume_id: str, cluster_name: str) -> list[str]:
        return [
            f"ℹ️  The config mounts {volume_id} (EbsSettings.VolumeId): ParallelCluster does "
            "not delete a volume it did not create, so deleting the cluster leaves it (and "
            "its cost). After `pcluster delete-cluster --cluster-name "
            f"{cluster_name}`, delete it with:",
            f"     {self.delete_command(volume_id)}",
            f"   Initialization progress: {hints.petal(f'cluster volume-status {volume_id}')}",
        ]

    def to_json(self, volume_id: str) -> dict[str, Any]:
        return {
            "volume_id": volume_id,
            "availability_zone": self.zone,
            "size_gb": self.size_gb,
            "initialization_rate": self.rate,
            "estimated_seconds": round(self.estimate.seconds),
            "estimated_cost_usd": round(self.estimate.cost, 2),
            "deleted_with_cluster": False,
            "delete_command": self.delete_command(volume_id),
        }

    def undo(self, ec2: Any, volume_id: str, config_file: Path | None) -> None:
        """Delete the volume (and the config that mounts it) after a later step failed."""
        if config_file is not None:
            config_file.unlink(missing_ok=True)
        try:
            ebs_volumes.delete_new_volume(ec2, volume_id)
        except PetalError as failure:
            sys.stderr.write(
                f"petal: error: the volume {volume_id} could not be deleted ({failure}); "
                f"delete it with: {self.delete_command(volume_id)}\n"
            )
            return
        sys.stderr.write(f"Deleted the volume {volume_id}: the cluster was not created.\n")


def propose(args: argparse.Namespace, ec2: Any, plan: ClusterPlan) -> WarmVolume:
    """The volume --initialize would create, in the head node subnet's zone."""
    settings = plan.prepared.settings
    try:
        zone = ebs_volumes.subnet_zone(ec2, settings.subnet_id)
    except ebs_volumes.SubnetNotFound:
        raise InvalidInput(
            f"--subnet: {settings.subnet_id} does not exist in {settings.region} (or this "
            "account cannot see it); --initialize creates the volume in the head node "
            "subnet's Availability Zone"
        ) from None
    starts = args.starts or costs.DEFAULT_STARTS_PER_MONTH
    return WarmVolume(plan, zone, args.initialize, starts)
