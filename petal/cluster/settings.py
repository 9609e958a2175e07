"""A cluster's settings: the seed's cluster section (or defaults, when only a
fingerprint is known) merged with overrides from the command line or the Lambda
request; what is missing is reported by seed field and CLI flag."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Final, Literal
from urllib.parse import urlsplit

from petal.deployment_contract import MOUNT_DIR
from petal.errors import EXIT_INVALID, PetalError
from petal.identifiers import MAX_VOLUME_GB, REGION, SUBNET_ID
from petal.platforms import (
    ARCHITECTURES,
    DEFAULT_INSTANCE_TYPES,
    Architecture,
    UnknownOperatingSystem,
    instance_architecture,
    operating_system,
)
from petal.seed.model import Cluster, HeadNode, Queue, Seed, Volume

DeletionPolicy = Literal["Delete", "Retain", "Snapshot"]


DELETION_POLICIES: Final[tuple[DeletionPolicy, ...]] = ("Delete", "Retain", "Snapshot")


_KEY_NAME: Final = re.compile(r"^[A-Za-z0-9 ._:/=+@-]{1,255}$")


_INSTANCE_TYPE: Final = re.compile(r"^[a-z][a-z0-9-]*\.[a-z0-9]+$")


# ParallelCluster's own rules (pcluster.validators.cluster_validators, constants).
_SLURM_NAME: Final = re.compile(r"^[a-z][a-z0-9-]{0,24}$")


_CLUSTER_NAME: Final = re.compile(r"^[a-zA-Z][a-zA-Z0-9-]{0,59}$")


_BUCKET: Final = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


class ConfigError(PetalError, ValueError):
    """A setting the config cannot be generated with. `field` is the seed field (or
    request field) and `flag` the command-line option that provides it."""

    exit_code = EXIT_INVALID

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
    strict_node_check: bool | None = None


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
    # The seed's build.image when the cluster is the seed's own variant: an image of
    # one OS and architecture cannot run another. None: the snapshot says, or the
    # official AMI.
    custom_ami: str | None = None
    # A node whose volume does not hold the expected software fails to boot, rather
    # than booting and warning its users (the node-setup script's --strict).
    strict_node_check: bool = False
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
    """Seed (or defaults) + overrides, checked; ConfigError names what is missing.

    The checks run in a fixed order (platform, machines, region, subnet, key, node
    setup, deletion policy, size, instance types, queues): the first problem is the
    one reported."""
    os_name, arch = _platform(seed, overrides)
    cluster, volume = (seed.cluster, seed.volume) if seed is not None else default_cluster(arch)
    # The default cluster's instance types are for `arch`; a seed's for its own.
    cluster_arch = seed.architecture if seed is not None else arch
    head_type, queues, warnings = _machines(cluster, cluster_arch, arch, overrides)
    region = _region(overrides.region or cluster.region or default_region)
    subnet = _head_node_subnet(overrides.subnet_id or cluster.head_node.subnet_id)
    key_name = _key_name(overrides.key_name or cluster.key_name)
    node_setup = _node_setup_uri(overrides.node_setup_uri or default_node_setup_uri)
    policy = _deletion_policy(overrides.deletion_policy or "Delete")
    if overrides.size_gb is not None:
        volume = replace(volume, size_gb=_volume_size_gb(overrides.size_gb))
    _check_instance(head_type, arch, "cluster.head_node.instance_type", "--head-node-instance-type")
    _check_queues(queues, arch)
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
        custom_ami=(
            seed.build.image
            if seed is not None and (os_name, arch) == (seed.os, seed.architecture)
            else None
        ),
        strict_node_check=bool(overrides.strict_node_check),
        warnings=warnings,
    )


def _platform(seed: Seed | None, overrides: ClusterOverrides) -> tuple[str, Architecture]:
    """ParallelCluster OS name and architecture: the overrides', else the seed's, else
    the seed schema's defaults."""
    os_name = pcluster_os(overrides.os or (seed.os if seed else "alinux2023"))
    seed_arch: Architecture = seed.architecture if seed else "x86_64"
    return os_name, _architecture(overrides.architecture) if overrides.architecture else seed_arch


def _machines(
    cluster: Cluster, cluster_arch: Architecture, arch: Architecture, overrides: ClusterOverrides
) -> tuple[str, tuple[Queue, ...], tuple[str, ...]]:
    """Head node type and queues: the cluster's (`cluster_arch` is the architecture its
    instance types are for), then the overrides'; and a warning if they were replaced."""
    head_type, queues = cluster.head_node.instance_type, cluster.queues
    warnings: tuple[str, ...] = ()
    if arch != cluster_arch:
        # The seed's instance types are for its own architecture (the seed validator
        # checks that), so another architecture needs other types.
        head_type = DEFAULT_INSTANCE_TYPES["head_node"][arch]
        compute = DEFAULT_INSTANCE_TYPES["compute"][arch]
        queues = tuple(replace(q, instance_type=compute) for q in queues)
        warnings = (
            f"the seed's instance types are {cluster_arch}; using {head_type} (head node) and "
            f"{compute} (queues) for {arch}: set them with --head-node-instance-type/--queue",
        )
    if overrides.head_node_instance_type:
        head_type = overrides.head_node_instance_type
    if overrides.queues is not None:
        if not overrides.queues:
            raise ConfigError("cluster.queues", "needs at least one queue", "--queue")
        queues = overrides.queues
    if overrides.compute_subnet_ids is not None:
        queues = tuple(replace(q, subnet_ids=overrides.compute_subnet_ids) for q in queues)
    return head_type, queues, warnings


def _region(region: str | None) -> str:
    if not region:
        raise ConfigError(
            "cluster.region",
            "is not set: add `region:` under `cluster:` in the seed or pass --region",
            "--region",
        )
    if not REGION.match(region):
        raise ConfigError("cluster.region", f"{region!r} is not an AWS region", "--region")
    return region


def _head_node_subnet(subnet: str | None) -> str:
    if not subnet:
        raise ConfigError(
            "cluster.head_node.subnet_id",
            "is not set: the head node needs a subnet; add `subnet_id:` under "
            "`cluster.head_node` in the seed or pass --subnet subnet-...",
            "--subnet",
        )
    if not SUBNET_ID.match(subnet):
        raise ConfigError(
            "cluster.head_node.subnet_id",
            f"{subnet!r} is not a subnet id (subnet-0123456789abcdef0)",
            "--subnet",
        )
    return subnet


def _key_name(key_name: str | None) -> str | None:
    if key_name is not None and not _KEY_NAME.match(key_name):
        raise ConfigError("cluster.key_name", f"{key_name!r} is not a key pair name", "--key-name")
    return key_name


def _node_setup_uri(uri: str | None) -> str:
    if not uri:
        raise ConfigError(
            "deployment.node_setup_uri",
            "is not set: every node needs the petal node-setup script; pass "
            "--node-setup-uri s3://<seed bucket>/node-setup/petal-node-setup.sh, or set "
            "PETAL_NODE_SETUP_URI or deployment.node_setup_uri in ~/.petal/config.yaml",
            "--node-setup-uri",
        )
    _script_uri(uri)
    return uri


def _deletion_policy(policy: str) -> DeletionPolicy:
    for known in DELETION_POLICIES:
        if policy == known:
            return known
    raise ConfigError(
        "deletion_policy",
        f"{policy!r} is not one of {', '.join(DELETION_POLICIES)}",
        "--deletion-policy",
    )


def _volume_size_gb(size_gb: int) -> int:
    if not 1 <= size_gb <= MAX_VOLUME_GB:
        raise ConfigError("volume.size_gb", f"{size_gb} is not from 1 to {MAX_VOLUME_GB}", "--size")
    return size_gb


def _check_queues(queues: tuple[Queue, ...], arch: Architecture) -> None:
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
            if not SUBNET_ID.match(subnet_id):
                raise ConfigError(
                    f"{where}.subnet_ids", f"{subnet_id!r} is not a subnet id", "--compute-subnet"
                )


def volume_size(requested_gb: int, snapshot_size_gb: int) -> int:
    """ParallelCluster refuses a volume smaller than its snapshot; never write one."""
    return max(requested_gb, snapshot_size_gb)


def check_cluster_name(name: str) -> str:
    if not _CLUSTER_NAME.match(name):
        raise ConfigError(
            "name",
            f"{name!r} is not a ParallelCluster cluster name: a letter first, then letters, "
            "digits and '-', at most 60 characters",
            "--name",
        )
    return name


def pcluster_os(name: str) -> str:
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
