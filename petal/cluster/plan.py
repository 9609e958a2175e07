"""A cluster plan: the one chain `petal create` and the resolver Lambda both follow.

    software (a seed, or only a fingerprint) + overrides
      -> prepare_plan: cluster name, settings, resolution request (no AWS call)
      -> plan_cluster: the snapshot (own account, trusted accounts, registries) and the
         ParallelCluster config for it

It is cut in two because `petal create` does work of its own between the halves: it
checks that it may write the config file before saying "Creating cluster" and asking
AWS, so that a bad flag costs no lookup.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Final

from petal.cluster.config import (
    TAG_CLUSTER_FINGERPRINT,
    TAG_CLUSTER_SNAPSHOT,
    ResolvedConfig,
    config_for_snapshot,
)
from petal.cluster.resolution import (
    RegistryFactory,
    Resolution,
    ResolutionRequest,
    make_request,
    resolve,
)
from petal.cluster.settings import (
    ClusterOverrides,
    ClusterSettings,
    ConfigError,
    check_cluster_name,
    cluster_settings,
)
from petal.seed.fingerprint import fingerprint as seed_fingerprint
from petal.seed.model import Seed
from petal.user_config import UserConfig

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client

# On a software volume petal creates for a cluster (`petal create --initialize`), with
# the cluster tags: which cluster it is for, and the seed. Not petal:managed: the
# stack's functions have power over those, and a cluster's volume is the user's.
TAG_VOLUME_CLUSTER: Final = "petal:cluster"
TAG_VOLUME_SEED: Final = "petal:software-seed"


@dataclass(frozen=True)
class Software:
    """What the cluster's software volume holds: a seed's build, or only its fingerprint
    (the resolver accepts a bare fingerprint; the cluster then gets default settings)."""

    fingerprint: str
    seed: Seed | None = None

    @classmethod
    def from_seed(cls, seed: Seed, claimed: object = None) -> Software:
        """The seed's software; a fingerprint sent along with it must be the seed's."""
        computed = seed_fingerprint(seed)
        if claimed is not None and claimed != computed:
            raise ConfigError(
                "fingerprint",
                f"{claimed!r} is not the seed's fingerprint {computed}; "
                "send one of seed or fingerprint",
            )
        return cls(computed, seed)

    @property
    def seed_name(self) -> str | None:
        return self.seed.name if self.seed is not None else None


@dataclass(frozen=True)
class PreparedPlan:
    """Everything checked that can be without AWS: what to look for and how to set up
    the cluster once it is found."""

    software: Software
    cluster_name: str | None
    settings: ClusterSettings
    request: ResolutionRequest


@dataclass(frozen=True)
class ClusterPlan:
    prepared: PreparedPlan
    resolution: Resolution
    config: ResolvedConfig

    @property
    def warnings(self) -> tuple[str, ...]:
        """The settings' warnings (another architecture's instance types), then the
        resolution's."""
        return (*self.prepared.settings.warnings, *self.resolution.warnings)


def prepare_plan(
    software: Software,
    overrides: ClusterOverrides,
    *,
    cluster_name: str | None = None,
    default_region: str | None = None,
    default_node_setup_uri: str | None = None,
) -> PreparedPlan:
    """Check the name, merge seed and overrides, build the request; no AWS call.

    Raises ConfigError (a setting, naming its seed field and flag) or InvalidRequest.
    """
    if cluster_name is not None:
        check_cluster_name(cluster_name)
    settings = cluster_settings(
        software.seed,
        overrides,
        default_region=default_region,
        default_node_setup_uri=default_node_setup_uri,
    )
    request = make_request(
        software.fingerprint,
        settings.region,
        settings.os,
        settings.architecture,
        settings.volume.size_gb,
        software.seed_name,
    )
    return PreparedPlan(software, cluster_name, settings, request)


def plan_cluster(
    prepared: PreparedPlan,
    *,
    ec2: EC2Client,
    config: UserConfig,
    registry_for: RegistryFactory | None = None,
    on_resolved: Callable[[Resolution], None] | None = None,
) -> ClusterPlan:
    """The snapshot for a prepared plan and the ParallelCluster config for it.

    `ec2` is a client for `prepared.request.region`. Raises SnapshotNotFound,
    ResolutionError (AWS could not be asked) or ConfigError (the snapshot does not fit
    the settings, e.g. too small for the volume's IOPS). `on_resolved` sees the chosen
    snapshot before the config is generated, so a caller can report the choice even
    when the config is then refused.
    """
    resolution = resolve(prepared.request, ec2=ec2, config=config, registry_for=registry_for)
    if on_resolved is not None:
        on_resolved(resolution)
    return ClusterPlan(prepared, resolution, _config(prepared, resolution))


def with_volume(plan: ClusterPlan, volume_id: str) -> ClusterPlan:
    """The plan once its software volume has been created from the snapshot (`petal
    create --initialize`): the config mounts that volume (EbsSettings.VolumeId)."""
    return replace(plan, config=_config(plan.prepared, plan.resolution, volume_id))


def _config(
    prepared: PreparedPlan, resolution: Resolution, volume_id: str | None = None
) -> ResolvedConfig:
    return config_for_snapshot(
        prepared.settings,
        resolution,
        cluster_name=prepared.cluster_name,
        seed_name=prepared.software.seed_name,
        fingerprint=prepared.software.fingerprint,
        volume_id=volume_id,
    )


def volume_tags(plan: ClusterPlan) -> dict[str, str]:
    """The tags of the software volume petal creates for the plan's cluster."""
    prepared, resolution = plan.prepared, plan.resolution
    tags = {
        TAG_CLUSTER_SNAPSHOT: resolution.snapshot_id,
        TAG_CLUSTER_FINGERPRINT: prepared.software.fingerprint,
    }
    if prepared.cluster_name:
        tags["Name"] = f"petal-{prepared.cluster_name}-software"
        tags[TAG_VOLUME_CLUSTER] = prepared.cluster_name
    seed_name = prepared.software.seed_name or resolution.seed_name
    if seed_name:
        tags[TAG_VOLUME_SEED] = seed_name
    return tags
