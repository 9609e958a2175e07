"""The cluster plan both `petal create` and the resolver Lambda follow."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import pytest

from petal.cluster import plan as plan_module
from petal.cluster.plan import Software, plan_cluster, prepare_plan
from petal.cluster.resolution import (
    InvalidRequest,
    Resolution,
    ResolutionError,
    ResolutionRequest,
)
from petal.cluster.resolver_event import ResolverInputError
from petal.cluster.settings import ClusterOverrides, ConfigError
from petal.errors import EXIT_FAILURE, EXIT_INVALID, PetalError
from petal.seed.fingerprint import fingerprint
from petal.seed.loading import load_seed
from petal.user_config import config_from_environment

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client

REPO = Path(__file__).resolve().parents[2]
SUBNET = "subnet-0123456789abcdef0"
NODE_SETUP = "s3://petal-seeds/node-setup/petal-node-setup.sh"
FP = "sha256:" + "ab" * 32
OVERRIDES = ClusterOverrides(subnet_id=SUBNET, node_setup_uri=NODE_SETUP)


def bio_software() -> Software:
    return Software.from_seed(load_seed(REPO / "seeds/bioinformatics.yaml"))


def test_a_fingerprint_sent_with_a_seed_must_be_the_seeds() -> None:
    seed = load_seed(REPO / "seeds/bioinformatics.yaml")
    assert Software.from_seed(seed, claimed=fingerprint(seed)).fingerprint == fingerprint(seed)
    with pytest.raises(ConfigError, match=r"^fingerprint: 'sha256:ab.*is not the seed's"):
        Software.from_seed(seed, claimed=FP)


def test_prepare_plan_builds_the_request_from_the_merged_settings() -> None:
    prepared = prepare_plan(
        bio_software(), OVERRIDES, cluster_name="research", default_region="eu-west-1"
    )
    request = prepared.request
    assert (request.fingerprint, request.seed_name) == (
        prepared.software.fingerprint,
        "bioinformatics",
    )
    assert (request.region, request.size_gb) == (
        prepared.settings.region,
        prepared.settings.volume.size_gb,
    )


def test_a_fingerprint_alone_gets_default_settings() -> None:
    prepared = prepare_plan(Software(FP), OVERRIDES, default_region="us-east-1")
    assert prepared.request.seed_name is None
    assert (prepared.request.os, prepared.request.architecture) == ("alinux2023", "x86_64")
    assert prepared.cluster_name is None


def test_prepare_plan_checks_the_cluster_name() -> None:
    with pytest.raises(ConfigError, match="'1x' is not a ParallelCluster cluster name"):
        prepare_plan(bio_software(), OVERRIDES, cluster_name="1x", default_region="us-east-1")


def small_snapshot(request: ResolutionRequest, **clients: Any) -> Resolution:
    return Resolution(
        snapshot_id="snap-0123456789abcdef0",
        region=request.region,
        os=request.os,
        architecture=request.architecture,
        snapshot_size_gb=5,
        volume_size_gb=5,
        owner=None,
        source="local",
        source_label="own account",
        reason="test",
    )


def test_the_choice_is_reported_before_a_config_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(plan_module, "resolve", small_snapshot)
    overrides = replace(OVERRIDES, size_gb=5)
    prepared = prepare_plan(bio_software(), overrides, default_region="us-east-1")
    seen: list[Resolution] = []
    with pytest.raises(ConfigError, match="3000 IOPS needs at least 6 GiB"):
        plan_cluster(
            prepared,
            ec2=cast("EC2Client", object()),  # resolve is replaced: no AWS call
            config=config_from_environment({}),
            on_resolved=seen.append,
        )
    assert [r.snapshot_id for r in seen] == ["snap-0123456789abcdef0"]


@pytest.mark.parametrize(
    ("error", "bases", "exit_code"),
    [
        (ConfigError("f", "m"), (ValueError,), EXIT_INVALID),
        (InvalidRequest("f", "m"), (ValueError,), EXIT_INVALID),
        (ResolutionError("m"), (RuntimeError,), EXIT_FAILURE),
        (ResolverInputError("m"), (ValueError,), EXIT_INVALID),
    ],
)
def test_errors_are_petal_errors_with_their_exit_codes(
    error: PetalError, bases: tuple[type, ...], exit_code: int
) -> None:
    assert all(isinstance(error, base) for base in (PetalError, *bases))
    assert error.exit_code == exit_code
