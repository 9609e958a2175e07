"""The ParallelCluster 3 cluster configuration for a seed and its software snapshot.

Two steps: `cluster_settings` merges the seed's cluster section (or defaults, when only
a fingerprint is known) with overrides from the command line or the Lambda request and
reports what is missing by seed field and CLI flag; `generate_config` turns settings
and a snapshot into the config mapping, refusing what ParallelCluster would reject or
what would break the software: an unknown OS, a mount point other than the build's
(Spack's RPATHs are absolute) and a volume smaller than the snapshot.

What every config carries, and why:
- SharedStorage: one gp3 Ebs volume from the snapshot at MOUNT_DIR, with Size always
  written (ParallelCluster defaults it to 40 GiB even with a SnapshotId).
- CustomActions.OnNodeConfigured on the head node and every queue: the node-setup
  script that links PETAL_DIR/profile.sh into /etc/profile.d (/etc is per node), with
  Iam.S3Access to read it when it lives in S3.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Final, Literal
from urllib.parse import urlsplit

import yaml

from petal.deployment_contract import MOUNT_DIR
from petal.platforms import (
    ARCHITECTURES,
    DEFAULT_INSTANCE_TYPES,
    Architecture,
    UnknownOperatingSystem,
    instance_architecture,
    operating_system,
)
from petal.resolution import Resolution
from petal.seed import Cluster, HeadNode, Queue, Seed, Volume

DeletionPolicy = Literal["Delete", "Retain", "Snapshot"]
DELETION_POLICIES: Final[tuple[DeletionPolicy, ...]] = ("Delete", "Retain", "Snapshot")
SHARED_STORAGE_NAME: Final = "software"
# Cluster tags. Not the build's tags: the stack's IAM policies give petal's functions
# power over resources tagged petal:managed, and clusters must stay out of that.
TAG_CLUSTER_SNAPSHOT: Final = "petal:software-snapshot"
TAG_CLUSTER_FINGERPRINT: Final = "petal:software-fingerprint"

_SUBNET: Final = re.compile(r"^subnet-([0-9a-f]{8}|[0-9a-f]{17})$")
_SNAPSHOT: Final = re.compile(r"^snap-([0-9a-f]{8}|[0-9a-f]{17})$")
_KEY_NAME: Final = re.compile(r"^[A-Za-z0-9 ._:/=+@-]{1,255}$")
_INSTANCE_TYPE: Final = re.compile(r"^[a-z][a-z0-9-]*\.[a-z0-9]+$")
_REGION: Final = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-[0-9]$")
# ParallelCluster's own rules (pcluster.validators.cluster_validators, constants).
_SLURM_NAME: Final = re.compile(r"^[a-z][a-z0-9-]{0,24}$")
_CLUSTER_NAME: Final = re.compile(r"^[a-zA-Z][a-zA-Z0-9-]{0,59}$")
_BUCKET: Final = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
GP3_IOPS_PER_GIB: Final = 500
MAX_VOLUME_GB: Final = 16384


class ConfigError(ValueError):
    """A setting the config cannot be generated with. `field` is the seed field (or
    request field) and `flag` the command-line option that provides it."""

    def __init__(self, field: str, message: str, flag: str | None = None) -> None:
        self.field = field
        self.flag = flag
        super().__init__(f"{field}: {message}")


@dataclass(frozen=True)
class ClusterOverrides:
    """What the command line or the Lambda request changes; None keeps the seed's."""

    region: str | None = None
    os: str | None = None
    architecture: str | None = None
    size_gb: int | None = None
    subnet_id: str | None = None
    compute_subnet_ids: tuple[str, ...] | None = None
    key_name: str | None = None
    head_node_instance_type: str | None = None
    queues: tuple[Queue, ...] | None = None
    node_setup_uri: str | None = None
    deletion_policy: str | None = None


@dataclass(frozen=True)
class ClusterSettings:
    region: str
    os: str  # ParallelCluster name
    architecture: Architecture
    head_node_instance_type: str
    subnet_id: str
    key_name: str | None
    queues: tuple[Queue, ...]
    volume: Volume  # size_gb is the size asked for; the snapshot may raise it
    node_setup_uri: str
    deletion_policy: DeletionPolicy = "Delete"
    mount_dir: str = MOUNT_DIR
    warnings: tuple[str, ...] = field(default=(), compare=False)


def default_cluster(architecture: Architecture) -> tuple[Cluster, Volume]:
    """The seed schema's defaults, for a request that names only a fingerprint."""
    cluster = Cluster(
        region=None,
        key_name=None,
        head_node=HeadNode(DEFAULT_INSTANCE_TYPES["head_node"][architecture], None),
        queues=(Queue("compute", DEFAULT_INSTANCE_TYPES["compute"][architecture], 0, 10, ()),),
    )
    return cluster, Volume(500, "gp3", 3000, 125, True, None)


def cluster_settings(
    seed: Seed | None,
    overrides: ClusterOverrides,
    *,
    default_region: str | None = None,
    default_node_setup_uri: str | None = None,
) -> ClusterSettings:
    """Seed (or defaults) + overrides, checked; ConfigError names what is missing."""
    warnings: list[str] = []
    os_name = _os(overrides.os or (seed.os if seed else "alinux2023"))
    seed_arch: Architecture = seed.architecture if seed else "x86_64"
    arch = _architecture(overrides.architecture) if overrides.architecture else seed_arch
    if seed is not None:
        cluster, volume = seed.cluster, seed.volume
    else:
        cluster, volume = default_cluster(arch)
    head_type = cluster.head_node.instance_type
    queues = cluster.queues
    if arch != seed_arch and seed is not None:
        # The seed's instance types are for its own architecture (the seed validator
        # checks that), so another architecture needs other types.
        head_type = DEFAULT_INSTANCE_TYPES["head_node"][arch]
        compute = DEFAULT_INSTANCE_TYPES["compute"][arch]
        queues = tuple(replace(q, instance_type=compute) for q in queues)
        warnings.append(
            f"the seed's instance types are {seed_arch}; using {head_type} (head node) and "
            f"{compute} (queues) for {arch}: set them with --head-node-instance-type/--queue"
        )
    if overrides.head_node_instance_type:
        head_type = overrides.head_node_instance_type
    if overrides.queues is not None:
        if not overrides.queues:
            raise ConfigError("cluster.queues", "needs at least one queue", "--queue")
        queues = overrides.queues
    if overrides.compute_subnet_ids is not None:
        queues = tuple(replace(q, subnet_ids=overrides.compute_subnet_ids) for q in queues)

    region = overrides.region or cluster.region or default_region
    if not region:
        raise ConfigError(
            "cluster.region",
            "is not set: add `region:` under `cluster:` in the seed or pass --region",
            "--region",
        )
    if not _REGION.match(region):
        raise ConfigError("cluster.region", f"{region!r} is not an AWS region", "--region")
    subnet = overrides.subnet_id or cluster.head_node.subnet_id
    if not subnet:
        raise ConfigError(
            "cluster.head_node.subnet_id",
            "is not set: the head node needs a subnet; add `subnet_id:` under "
            "`cluster.head_node` in the seed or pass --subnet subnet-...",
            "--subnet",
        )
    if not _SUBNET.match(subnet):
        raise ConfigError(
            "cluster.head_node.subnet_id",
            f"{subnet!r} is not a subnet id (subnet-0123456789abcdef0)",
            "--subnet",
        )
    key_name = overrides.key_name or cluster.key_name
    if key_name is not None and not _KEY_NAME.match(key_name):
        raise ConfigError("cluster.key_name", f"{key_name!r} is not a key pair name", "--key-name")
    node_setup = overrides.node_setup_uri or default_node_setup_uri
    if not node_setup:
        raise ConfigError(
            "deployment.node_setup_uri",
            "is not set: every node needs the petal node-setup script; pass "
            "--node-setup-uri s3://<seed bucket>/node-setup/petal-node-setup.sh, or set "
            "PETAL_NODE_SETUP_URI or deployment.node_setup_uri in ~/.petal/config.yaml",
            "--node-setup-uri",
        )
    _script_uri(node_setup)
    policy = overrides.deletion_policy or "Delete"
    if policy not in DELETION_POLICIES:
        raise ConfigError(
            "deletion_policy",
            f"{policy!r} is not one of {', '.join(DELETION_POLICIES)}",
            "--deletion-policy",
        )
    if overrides.size_gb is not None:
        if not 1 <= overrides.size_gb <= MAX_VOLUME_GB:
            raise ConfigError(
                "volume.size_gb", f"{overrides.size_gb} is not from 1 to {MAX_VOLUME_GB}", "--size"
            )
        volume = replace(volume, size_gb=overrides.size_gb)
    _check_instance(head_type, arch, "cluster.head_node.instance_type", "--head-node-instance-type")
    seen: set[str] = set()
    for index, queue in enumerate(queues):
        where = f"cluster.queues[{index}]"
        if not _SLURM_NAME.match(queue.name) or queue.name == "default":
            raise ConfigError(
                f"{where}.name",
                f"{queue.name!r} is not a Slurm queue name ParallelCluster accepts: lowercase "
                "letter first, then letters, digits, '-', at most 25, not 'default'",
                "--queue",
            )
        if queue.name in seen:
            raise ConfigError(f"{where}.name", f"{queue.name!r} is used twice", "--queue")
        seen.add(queue.name)
        _check_instance(queue.instance_type, arch, f"{where}.instance_type", "--queue")
        if not 0 <= queue.min_count <= queue.max_count or queue.max_count < 1:
            raise ConfigError(
                f"{where}.max_count",
                f"min_count {queue.min_count} / max_count {queue.max_count}: need "
                "0 <= min_count <= max_count and max_count >= 1",
                "--queue",
            )
        for subnet_id in queue.subnet_ids:
            if not _SUBNET.match(subnet_id):
                raise ConfigError(
                    f"{where}.subnet_ids", f"{subnet_id!r} is not a subnet id", "--compute-subnet"
                )
    return ClusterSettings(
        region=region,
        os=os_name,
        architecture=arch,
        head_node_instance_type=head_type,
        subnet_id=subnet,
        key_name=key_name,
        queues=queues,
        volume=volume,
        node_setup_uri=node_setup,
        deletion_policy=policy,
        warnings=tuple(warnings),
    )


def volume_size(requested_gb: int, snapshot_size_gb: int) -> int:
    """ParallelCluster refuses a volume smaller than its snapshot; never write one."""
    return max(requested_gb, snapshot_size_gb)


def generate_config(
    settings: ClusterSettings,
    *,
    snapshot_id: str,
    snapshot_size_gb: int,
    size_gb: int | None = None,
    build_mount_dir: str = MOUNT_DIR,
    fingerprint: str | None = None,
) -> dict[str, Any]:
    """The cluster configuration mapping (ParallelCluster 3 schema).

    `size_gb` is the exact volume size to write; by default max(requested, snapshot).
    """
    os_name = _os(settings.os)
    if settings.mount_dir != build_mount_dir:
        raise ConfigError(
            "mount_dir",
            f"{settings.mount_dir} differs from {build_mount_dir}, where the software was "
            "built: Spack's paths are absolute, so the volume must be mounted there",
        )
    if not _SNAPSHOT.match(snapshot_id):
        raise ConfigError("snapshot_id", f"{snapshot_id!r} is not a snapshot id")
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
    custom_actions = {"OnNodeConfigured": {"Script": settings.node_setup_uri}}
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

    config: dict[str, Any] = {
        "Region": settings.region,
        "Image": {"Os": os_name},
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
    comments = "".join(f"# {line}\n" for line in header)
    body = yaml.dump(
        dict(config), Dumper=_PlainDumper, sort_keys=False, default_flow_style=False, width=100
    )
    return comments + body


class _PlainDumper(yaml.SafeDumper):
    """No &anchors/*aliases for shared values: people read and edit this file."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def config_header(
    *,
    cluster_name: str | None,
    seed_name: str | None,
    fingerprint: str,
    snapshot_id: str,
    source: str,
    owner: str | None,
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
) -> ResolvedConfig:
    """The config for the snapshot `resolve` chose, and its YAML saying where it came from."""
    config = generate_config(
        settings,
        snapshot_id=resolution.snapshot_id,
        snapshot_size_gb=resolution.snapshot_size_gb,
        size_gb=resolution.volume_size_gb,
        fingerprint=fingerprint,
    )
    header = config_header(
        cluster_name=cluster_name,
        seed_name=seed_name or resolution.seed_name,
        fingerprint=fingerprint,
        snapshot_id=resolution.snapshot_id,
        source=resolution.source_label,
        owner=resolution.owner,
    )
    return ResolvedConfig(config, render_config(config, header))


def check_cluster_name(name: str) -> str:
    if not _CLUSTER_NAME.match(name):
        raise ConfigError(
            "name",
            f"{name!r} is not a ParallelCluster cluster name: a letter first, then letters, "
            "digits and '-', at most 60 characters",
            "--name",
        )
    return name


def parse_queue(text: str) -> Queue:
    """`--queue NAME:INSTANCE_TYPE[:MIN_COUNT[:MAX_COUNT]]`."""
    parts = text.split(":")
    usage = "use NAME:INSTANCE_TYPE[:MIN_COUNT[:MAX_COUNT]], e.g. compute:c6a.8xlarge:0:16"
    if not 2 <= len(parts) <= 4 or not all(parts):
        raise ConfigError("cluster.queues", f"{text!r}: {usage}", "--queue")
    counts = parts[2:]
    if not all(c.isdigit() for c in counts):
        raise ConfigError("cluster.queues", f"{text!r}: counts must be numbers; {usage}", "--queue")
    min_count = int(counts[0]) if counts else 0
    max_count = int(counts[1]) if len(counts) > 1 else max(10, min_count)
    return Queue(parts[0], parts[1], min_count, max_count, ())


def overrides_from_mapping(data: Any, field: str = "overrides") -> ClusterOverrides:
    """ClusterOverrides from a request's JSON mapping (the resolver Lambda)."""
    if data is None:
        return ClusterOverrides()
    if not isinstance(data, dict):
        raise ConfigError(field, "must be a mapping")
    allowed = {
        "subnet_id": str,
        "key_name": str,
        "head_node_instance_type": str,
        "node_setup_uri": str,
        "deletion_policy": str,
        "size_gb": int,
    }
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key in allowed:
            kind = allowed[key]
            if isinstance(value, bool) or not isinstance(value, kind):
                raise ConfigError(f"{field}.{key}", f"must be {kind.__name__}, not {value!r}")
            values[key] = value
        elif key == "compute_subnet_ids":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ConfigError(f"{field}.{key}", "must be a list of subnet ids")
            values[key] = tuple(value)
        elif key == "queues":
            values[key] = tuple(
                _queue_from_mapping(q, f"{field}.queues[{i}]")
                for i, q in enumerate(value if isinstance(value, list) else [None])
            )
        else:
            names = ", ".join([*allowed, "compute_subnet_ids", "queues"])
            raise ConfigError(f"{field}.{key}", f"unknown override; allowed: {names}")
    return ClusterOverrides(**values)


def _queue_from_mapping(data: Any, field: str) -> Queue:
    if not isinstance(data, dict) or not isinstance(data.get("name"), str):
        raise ConfigError(field, "must be a mapping with name, instance_type, min_count, max_count")
    instance_type = data.get("instance_type")
    min_count, max_count = data.get("min_count", 0), data.get("max_count", 10)
    subnets = data.get("subnet_ids", [])
    if not isinstance(instance_type, str):
        raise ConfigError(f"{field}.instance_type", "is required, e.g. c6a.8xlarge")
    for key, count in (("min_count", min_count), ("max_count", max_count)):
        if isinstance(count, bool) or not isinstance(count, int):
            raise ConfigError(f"{field}.{key}", f"must be a whole number, not {count!r}")
    if not isinstance(subnets, list) or not all(isinstance(s, str) for s in subnets):
        raise ConfigError(f"{field}.subnet_ids", "must be a list of subnet ids")
    return Queue(data["name"], instance_type, min_count, max_count, tuple(subnets))


def _os(name: str) -> str:
    try:
        return operating_system(name).name
    except UnknownOperatingSystem as error:
        raise ConfigError("os", str(error), "--os") from None


def _architecture(value: str) -> Architecture:
    if value == "x86_64":
        return "x86_64"
    if value == "arm64":
        return "arm64"
    raise ConfigError(
        "architecture", f"{value!r} is not one of {', '.join(ARCHITECTURES)}", "--arch"
    )


def _check_instance(instance_type: str, arch: Architecture, where: str, flag: str) -> None:
    if not _INSTANCE_TYPE.match(instance_type):
        raise ConfigError(where, f"{instance_type!r} is not an EC2 instance type", flag)
    actual = instance_architecture(instance_type)
    if actual is not None and actual != arch:
        raise ConfigError(
            where,
            f"{instance_type} is {actual} but the cluster is {arch}: use an {arch} type "
            f"such as {DEFAULT_INSTANCE_TYPES['compute'][arch]}",
            flag,
        )


def _script_uri(uri: str) -> None:
    parts = urlsplit(uri)
    if parts.scheme == "s3" and _BUCKET.match(parts.netloc) and parts.path.strip("/"):
        return
    if parts.scheme == "https" and parts.netloc and parts.path.strip("/"):
        return
    raise ConfigError(
        "deployment.node_setup_uri",
        f"{uri!r} is not an s3://bucket/key or https:// URL of the node setup script",
        "--node-setup-uri",
    )


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
