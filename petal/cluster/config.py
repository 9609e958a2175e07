"""The ParallelCluster 3 cluster configuration for a seed and its software snapshot.

Two steps: `cluster_settings` merges the seed's cluster section (or defaults, when only
a fingerprint is known) with overrides from the command line or the Lambda request and
reports what is missing by seed field and CLI flag; `generate_config` turns settings
and a snapshot into the config mapping, refusing what ParallelCluster would reject or
what would break the software: an unknown OS, a mount point other than the build's
(Spack's RPATHs are absolute) and a volume smaller than the snapshot.

What every config carries, and why:
- SharedStorage: one gp3 Ebs volume from the snapshot at MOUNT_DIR, with Size always
  written (ParallelCluster defaults it to 40 GiB even with a SnapshotId); or, when petal
  created the volume itself (`petal create --initialize`), only its VolumeId:
  ParallelCluster mounts that volume as it is and never deletes it.
- CustomActions.OnNodeConfigured on the head node and every queue: the node-setup
  script that links PETAL_DIR/profile.sh into /etc/profile.d (/etc is per node) and,
  given the fingerprint as Args, checks PETAL_DIR/manifest.json against it, with
  Iam.S3Access to read it when it lives in S3.
- Image.CustomAmi when the software was built on a user-supplied image (the seed's
  build.image, else the snapshot's petal:builder-image tag): the nodes then run what
  the software was built on, and ParallelCluster accepts rocky8/rocky9 only with one."""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

from petal.cluster.resolution import Resolution
from petal.cluster.settings import (
    ClusterSettings,
    ConfigError,
    pcluster_os,
    volume_size,
)
from petal.deployment_contract import MOUNT_DIR
from petal.identifiers import GP3_IOPS_PER_GIB, MAX_VOLUME_GB, SNAPSHOT_ID
from petal.platforms import needs_builder_image

if TYPE_CHECKING:
    import yaml

SHARED_STORAGE_NAME: Final = "software"

# The node-setup script's arguments (stacks/assets/petal-node-setup.sh).
NODE_SETUP_FINGERPRINT_ARG: Final = "--fingerprint"
NODE_SETUP_STRICT_ARG: Final = "--strict"


# Cluster tags. Not the build's tags: the stack's IAM policies give petal's functions
# power over resources tagged petal:managed, and clusters must stay out of that.
TAG_CLUSTER_SNAPSHOT: Final = "petal:software-snapshot"


TAG_CLUSTER_FINGERPRINT: Final = "petal:software-fingerprint"


def generate_config(
    settings: ClusterSettings,
    *,
    snapshot_id: str,
    snapshot_size_gb: int,
    size_gb: int | None = None,
    build_mount_dir: str = MOUNT_DIR,
    fingerprint: str | None = None,
    builder_image: str | None = None,
    volume_id: str | None = None,
) -> dict[str, Any]:
    """The cluster configuration mapping (ParallelCluster 3 schema).

    `size_gb` is the exact volume size to write; by default max(requested, snapshot).
    `builder_image` is the image the snapshot was built on, if not the official AMI.
    `volume_id`: the volume already created from the snapshot, mounted instead of one
    ParallelCluster would create (the checks of size and IOPS still apply: they were
    the volume's).
    """
    os_name = pcluster_os(settings.os)
    custom_ami = settings.custom_ami or builder_image
    if custom_ami is None and needs_builder_image(os_name):
        raise ConfigError(
            "build.image",
            f"is not set, and ParallelCluster runs {os_name} only from a custom AMI "
            "(Image.CustomAmi; AWS publishes no official one): set build.image in the seed "
            "to the pcluster-built image the software was built on (the petal:builder-image "
            "tag of its snapshot)",
        )
    if settings.mount_dir != build_mount_dir:
        raise ConfigError(
            "mount_dir",
            f"{settings.mount_dir} differs from {build_mount_dir}, where the software was "
            "built: Spack's paths are absolute, so the volume must be mounted there",
        )
    if not SNAPSHOT_ID.match(snapshot_id):
        raise ConfigError("snapshot_id", f"{snapshot_id!r} is not a snapshot id")
    if volume_id is not None:
        # Here: the resolver, never given a volume, need not import the EBS adapter.
        from petal.aws.ebs_volumes import VOLUME_ID

        if not VOLUME_ID.match(volume_id):
            raise ConfigError("volume_id", f"{volume_id!r} is not a volume id")
    size = (
        size_gb if size_gb is not None else volume_size(settings.volume.size_gb, snapshot_size_gb)
    )
    if size < snapshot_size_gb:
        raise ConfigError(
            "volume.size_gb",
            f"{size} GiB is smaller than the {snapshot_size_gb} GiB snapshot "
            f"{snapshot_id}; ParallelCluster rejects it: use at least {snapshot_size_gb}",
            "--size",
        )
    if size > MAX_VOLUME_GB:
        raise ConfigError("volume.size_gb", f"{size} GiB is above the gp3 maximum", "--size")
    volume = settings.volume
    if volume.iops > size * GP3_IOPS_PER_GIB:
        raise ConfigError(
            "volume.iops",
            f"{volume.iops} IOPS needs at least {-(-volume.iops // GP3_IOPS_PER_GIB)} GiB; "
            "lower volume.iops or raise the size",
            "--size",
        )
    custom_actions = {"OnNodeConfigured": _node_setup_action(settings, fingerprint)}
    s3_access = _s3_access(settings.node_setup_uri)

    head_node: dict[str, Any] = {
        "InstanceType": settings.head_node_instance_type,
        "Networking": {"SubnetId": settings.subnet_id},
    }
    if settings.key_name:
        head_node["Ssh"] = {"KeyName": settings.key_name}
    head_node["CustomActions"] = custom_actions
    if s3_access:
        head_node["Iam"] = {"S3Access": s3_access}

    queues = []
    for queue in settings.queues:
        entry: dict[str, Any] = {
            "Name": queue.name,
            "ComputeResources": [
                {
                    "Name": _compute_resource_name(queue.instance_type),
                    "InstanceType": queue.instance_type,
                    "MinCount": queue.min_count,
                    "MaxCount": queue.max_count,
                }
            ],
            "Networking": {"SubnetIds": list(queue.subnet_ids or (settings.subnet_id,))},
            "CustomActions": custom_actions,
        }
        if s3_access:
            entry["Iam"] = {"S3Access": s3_access}
        queues.append(entry)

    ebs: dict[str, Any] = (
        {"VolumeId": volume_id} if volume_id else _new_volume(settings, snapshot_id, size)
    )

    config: dict[str, Any] = {
        "Region": settings.region,
        "Image": {"Os": os_name, **({"CustomAmi": custom_ami} if custom_ami else {})},
        "HeadNode": head_node,
        "Scheduling": {"Scheduler": "slurm", "SlurmQueues": queues},
        "SharedStorage": [
            {
                "Name": SHARED_STORAGE_NAME,
                "StorageType": "Ebs",
                "MountDir": settings.mount_dir,
                "EbsSettings": ebs,
            }
        ],
    }
    tags = [{"Key": TAG_CLUSTER_SNAPSHOT, "Value": snapshot_id}]
    if fingerprint:
        tags.append({"Key": TAG_CLUSTER_FINGERPRINT, "Value": fingerprint})
    config["Tags"] = tags
    return config


def render_config(config: Mapping[str, Any], header: Sequence[str] = ()) -> str:
    """YAML text of a config; `header` lines become comments at the top."""
    # Here, not at import: the resolver's handler loads PyYAML only when it renders.
    import yaml

    comments = "".join(f"# {line}\n" for line in header)
    body = yaml.dump(
        dict(config), Dumper=_plain_dumper(), sort_keys=False, default_flow_style=False, width=100
    )
    return comments + body


@functools.cache
def _plain_dumper() -> type[yaml.SafeDumper]:
    import yaml

    class PlainDumper(yaml.SafeDumper):
        """No &anchors/*aliases for shared values: people read and edit this file."""

        def ignore_aliases(self, data: Any) -> bool:
            return True

    return PlainDumper


def config_header(
    *,
    cluster_name: str | None,
    seed_name: str | None,
    fingerprint: str,
    snapshot_id: str,
    source: str,
    owner: str | None,
    volume_id: str | None = None,
) -> list[str]:
    """Comment lines that say where a generated config came from."""
    lines = [
        "Generated by petal: edit the seed and run `petal create` again rather than this file."
    ]
    if cluster_name:
        lines.append(f"Cluster: {cluster_name}")
    lines.append(f"Seed: {seed_name or '(fingerprint only)'} ({fingerprint})")
    lines.append(
        f"Software volume: {snapshot_id} from {source}" + (f", owner {owner}" if owner else "")
    )
    if volume_id:
        lines.append(
            f"Mounted as {volume_id}, created from it by petal: ParallelCluster does not "
            "delete a volume it did not create; after `pcluster delete-cluster`, delete it "
            f"with `aws ec2 delete-volume --volume-id {volume_id}`"
        )
    return lines


@dataclass(frozen=True)
class ResolvedConfig:
    config: dict[str, Any]
    text: str  # the YAML with the provenance header


def config_for_snapshot(
    settings: ClusterSettings,
    resolution: Resolution,
    *,
    cluster_name: str | None,
    seed_name: str | None,
    fingerprint: str,
    volume_id: str | None = None,
) -> ResolvedConfig:
    """The config for the snapshot `resolve` chose, and its YAML saying where it came
    from; with `volume_id`, for the volume created from that snapshot."""
    config = generate_config(
        settings,
        snapshot_id=resolution.snapshot_id,
        snapshot_size_gb=resolution.snapshot_size_gb,
        size_gb=resolution.volume_size_gb,
        fingerprint=fingerprint,
        builder_image=resolution.builder_image,
        volume_id=volume_id,
    )
    header = config_header(
        cluster_name=cluster_name,
        seed_name=seed_name or resolution.seed_name,
        fingerprint=fingerprint,
        snapshot_id=resolution.snapshot_id,
        source=resolution.source_label,
        owner=resolution.owner,
        volume_id=volume_id,
    )
    return ResolvedConfig(config, render_config(config, header))


def _new_volume(settings: ClusterSettings, snapshot_id: str, size: int) -> dict[str, Any]:
    """EbsSettings of the volume ParallelCluster creates from the snapshot."""
    volume = settings.volume
    ebs: dict[str, Any] = {
        "VolumeType": "gp3",
        "SnapshotId": snapshot_id,
        "Size": size,
        "Iops": volume.iops,
        "Throughput": volume.throughput,
        # Cluster volumes are always encrypted, even from an unencrypted (public) snapshot.
        "Encrypted": True,
    }
    if volume.kms_key_id:
        ebs["KmsKeyId"] = volume.kms_key_id
    ebs["DeletionPolicy"] = settings.deletion_policy
    return ebs


def _node_setup_action(settings: ClusterSettings, fingerprint: str | None) -> dict[str, Any]:
    """The OnNodeConfigured action; ParallelCluster runs the script with Args as its
    arguments, one per item, no shell in between."""
    action: dict[str, Any] = {"Script": settings.node_setup_uri}
    if fingerprint:
        action["Args"] = [NODE_SETUP_FINGERPRINT_ARG, fingerprint]
        if settings.strict_node_check:
            action["Args"].append(NODE_SETUP_STRICT_ARG)
    elif settings.strict_node_check:
        raise ConfigError(
            "strict_node_check", "needs the software's fingerprint, which nodes check against"
        )
    return action


def _s3_access(uri: str) -> list[dict[str, Any]]:
    parts = urlsplit(uri)
    if parts.scheme != "s3":
        return []
    # Read access to the one object; ParallelCluster grants s3:GetObject on it.
    return [{"BucketName": parts.netloc, "KeyName": parts.path.lstrip("/")}]


def _compute_resource_name(instance_type: str) -> str:
    name = re.sub(r"[^a-z0-9-]", "-", instance_type.lower())
    if not name[:1].isalpha():
        name = "cr-" + name
    return name[:25].rstrip("-")
