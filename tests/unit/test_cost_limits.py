"""Cost guard rails: Prepare refuses, before anything is created, a
build that asks for an instance type, a volume or a run time beyond the deployment's
petal:allowedInstanceTypes, petal:maxVolumeGb, petal:maxVolumeIops and
petal:maxBuildHours, naming the seed field, the limit and the setting that raises it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from petal.build.config import (
    DEFAULT_ALLOWED_INSTANCE_TYPES,
    BuildConfig,
    CostLimits,
    iam_like,
)
from petal.build.steps.prepare import check_cost_limits, managed_snapshot_tags, prepare
from petal.build.table import BuildTable
from petal.deployment_contract import (
    ENV_ALLOWED_INSTANCE_TYPES,
    ENV_MAX_BUILD_HOURS,
    ENV_MAX_VOLUME_GB,
    ENV_MAX_VOLUME_IOPS,
)
from petal.errors import ConfigurationError, InvalidBuildRequest
from petal.seed.fingerprint import fingerprint
from petal.seed.loading import load_seed, parse_seed_mapping
from tests.unit.prepare_account import (
    EXECUTION,
    NOW,
    PASSED_THE_CHECKS,
    REPO_ROOT,
    SETTINGS,
    assert_nothing_created,
    emulated_account,
    no_s3,
    run_prepare,
    seed_document,
)

# The issue's example: nothing stopped it.
EXCESSIVE: dict[str, Any] = {
    "build__instance_type": "p5.48xlarge",
    "volume__size_gb": 16384,
    "volume__iops": 16000,
    "build__timeout_minutes": 2880,
}


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, BuildTable]]:
    with emulated_account(monkeypatch) as account:
        yield account.ec2, account.table


# --- each limit: refused naming the field, the limit and the setting -------------------


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        (
            {"build__instance_type": "p5.48xlarge"},
            [
                "build.instance_type p5.48xlarge matches none of the instance types "
                "petal:allowedInstanceTypes allows (c*.large, c*.xlarge,",
                "or a pattern such as p5.*",
                "petal:allowedInstanceTypes=c*.large,",
                ",r*.16xlarge,p5.48xlarge'`",
            ],
        ),
        (
            {"volume__size_gb": 16384},
            [
                "volume.size_gb 16384 is above the limit of 2000 GiB (petal:maxVolumeGb)",
                "`cdk deploy -c petal:maxVolumeGb=16384`",
            ],
        ),
        (
            {"volume__iops": 16000, "volume__size_gb": 100},
            [
                "volume.iops 16000 is above the limit of 6000 IOPS (petal:maxVolumeIops)",
                "`cdk deploy -c petal:maxVolumeIops=16000`",
            ],
        ),
        (
            {"build__timeout_minutes": 2880},
            [
                "build.timeout_minutes 2880 is above the limit of 720 minutes "
                "(petal:maxBuildHours is 12)",
                "`cdk deploy -c petal:maxBuildHours=48`",
            ],
        ),
    ],
)
def test_a_build_beyond_a_default_limit_is_refused_before_anything_is_created(
    aws: tuple[Any, BuildTable], changes: dict[str, Any], expected: list[str]
) -> None:
    ec2, table = aws
    with pytest.raises(InvalidBuildRequest) as caught:
        run_prepare(ec2, table, {}, **changes)
    message = str(caught.value)
    assert message.startswith("the build asks for more than this deployment's cost limits")
    for fragment in expected:
        assert fragment in message
    assert message.endswith("Nothing was created.")
    assert_nothing_created(table)
    assert ec2.describe_instances()["Reservations"] == []
    assert ec2.describe_volumes()["Volumes"] == []


def test_every_limit_exceeded_is_named_at_once(aws: tuple[Any, BuildTable]) -> None:
    ec2, table = aws
    with pytest.raises(InvalidBuildRequest) as caught:
        run_prepare(ec2, table, {}, **EXCESSIVE)
    message = str(caught.value)
    for setting in ("allowedInstanceTypes", "maxVolumeGb", "maxVolumeIops", "maxBuildHours"):
        assert f"petal:{setting}" in message
    for field in ("build.instance_type", "volume.size_gb", "volume.iops", "build.timeout_minutes"):
        assert field in message
    assert_nothing_created(table)


def test_the_limit_of_a_deployment_that_changed_it_is_named(aws: tuple[Any, BuildTable]) -> None:
    ec2, table = aws
    environ = {
        ENV_ALLOWED_INSTANCE_TYPES: "c7g.*,m6i.?xlarge",
        ENV_MAX_VOLUME_GB: "100",
        ENV_MAX_VOLUME_IOPS: "4000",
        ENV_MAX_BUILD_HOURS: "1",
    }
    with pytest.raises(InvalidBuildRequest) as caught:
        run_prepare(
            ec2,
            table,
            environ,
            volume__size_gb=200,
            volume__iops=5000,
            build__timeout_minutes=90,
        )
    message = str(caught.value)
    # workload-basic builds on c6a.xlarge.
    assert "build.instance_type c6a.xlarge matches none" in message
    assert "allows (c7g.*, m6i.?xlarge)" in message
    assert "-c 'petal:allowedInstanceTypes=c7g.*,m6i.?xlarge,c6a.xlarge'" in message
    assert "volume.size_gb 200 is above the limit of 100 GiB" in message
    assert "volume.iops 5000 is above the limit of 4000 IOPS" in message
    assert "build.timeout_minutes 90 is above the limit of 60 minutes" in message
    assert "petal:maxBuildHours=2" in message
    assert_nothing_created(table)


def test_a_build_within_the_limits_passes(aws: tuple[Any, BuildTable]) -> None:
    ec2, table = aws
    # Exactly at each default limit.
    with pytest.raises(Exception, match=PASSED_THE_CHECKS):
        run_prepare(
            ec2,
            table,
            {},
            build__instance_type="r7i.16xlarge",
            volume__size_gb=2000,
            volume__iops=6000,
            build__timeout_minutes=720,
        )


def test_raised_limits_let_the_issues_example_through(aws: tuple[Any, BuildTable]) -> None:
    ec2, table = aws
    environ = {
        ENV_ALLOWED_INSTANCE_TYPES: "p5.*",
        ENV_MAX_VOLUME_GB: "16384",
        ENV_MAX_VOLUME_IOPS: "16000",
        ENV_MAX_BUILD_HOURS: "48",
    }
    with pytest.raises(Exception, match=PASSED_THE_CHECKS):
        run_prepare(ec2, table, environ, **EXCESSIVE)


def test_a_snapshot_that_exists_is_reused_whatever_the_seed_asks(
    aws: tuple[Any, BuildTable],
) -> None:
    """Reuse launches nothing: the limits bound builds, not snapshots built before."""
    ec2, table = aws
    seed = parse_seed_mapping(seed_document(**EXCESSIVE))
    volume = ec2.create_volume(AvailabilityZone="us-east-1a", Size=1)["VolumeId"]
    tags = managed_snapshot_tags(fingerprint(seed), seed.os, seed.architecture)
    ec2.create_snapshot(
        VolumeId=volume,
        TagSpecifications=[
            {"ResourceType": "snapshot", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}
        ],
    )
    result = run_prepare(ec2, table, {}, **EXCESSIVE)
    assert result["status"] == "REUSED"
    with pytest.raises(InvalidBuildRequest, match="petal:maxVolumeGb"):
        run_prepare(ec2, table, {}, force=True, **EXCESSIVE)


MINIMAL = {"name": "minimal", "software": {"packages": ["zlib"]}}


def test_an_architecture_override_is_held_to_the_limits_too(
    aws: tuple[Any, BuildTable],
) -> None:
    # `petal build --arch arm64` builds on the arm64 builder default (c7g.4xlarge).
    ec2, table = aws
    event = {
        "request": {"seed": MINIMAL, "architecture": "arm64"},
        "execution": EXECUTION,
        "settings": SETTINGS,
    }
    config = BuildConfig({ENV_ALLOWED_INSTANCE_TYPES: "c6a.*"})
    with pytest.raises(InvalidBuildRequest, match=r"build\.instance_type c7g\.4xlarge"):
        prepare(event, ec2=ec2, read_seed=no_s3, table=table, now=NOW, config=config)
    assert_nothing_created(table)


@pytest.mark.parametrize(
    "path", sorted((REPO_ROOT / "seeds").glob("**/*.yaml")), ids=lambda p: p.name
)
def test_every_example_seed_fits_the_default_limits(path: Path) -> None:
    check_cost_limits(load_seed(path), CostLimits())


@pytest.mark.parametrize("architecture", ["x86_64", "arm64"])
def test_a_seed_of_defaults_fits_the_default_limits(architecture: str) -> None:
    check_cost_limits(parse_seed_mapping({**MINIMAL, "architecture": architecture}), CostLimits())


# --- the patterns mean what IAM's StringLike means ------------------------------------


@pytest.mark.parametrize(
    "instance_type",
    [
        "c6a.4xlarge",
        "c7g.4xlarge",
        "c6a.8xlarge",
        "c7g.8xlarge",
        "m7i.large",
        "m6idn.12xlarge",
        "r7g.16xlarge",
        "c7i-flex.2xlarge",
    ],
)
def test_the_default_allows_compute_general_and_memory_families(instance_type: str) -> None:
    assert CostLimits().allows_instance_type(instance_type)


@pytest.mark.parametrize(
    "instance_type",
    [
        "p5.48xlarge",
        "p4d.24xlarge",
        "g5.xlarge",
        "g5g.2xlarge",
        "inf2.xlarge",
        "trn1.2xlarge",
        "dl1.24xlarge",
        "x2idn.16xlarge",
        "u-6tb1.metal",
        "c7i.24xlarge",
        "m7i.48xlarge",
        "r7iz.32xlarge",
        "c6g.metal",
        "mac2.metal",
        "hpc7g.16xlarge",
        "t3.large",
        "C6A.4XLARGE",
    ],
)
def test_the_default_refuses_accelerated_large_and_other_types(instance_type: str) -> None:
    assert not CostLimits().allows_instance_type(instance_type)


@pytest.mark.parametrize(
    ("pattern", "matches", "does_not_match"),
    [
        ("c*.2xlarge", ["c7g.2xlarge", "c7i-flex.2xlarge"], ["c7i.12xlarge", "c7g.xlarge"]),
        ("m6i.?xlarge", ["m6i.2xlarge", "m6i.4xlarge"], ["m6i.xlarge", "m6i.12xlarge"]),
        ("c7g.*", ["c7g.medium", "c7g.16xlarge", "c7g.metal"], ["c7gn.large", "xc7g.large"]),
        # Only * and ? are special: a dot is a dot, brackets are characters.
        ("c6a.large", ["c6a.large"], ["c6axlarge", "c6a.large2"]),
        ("c[67]a.large", ["c[67]a.large"], ["c6a.large"]),
    ],
)
def test_patterns_match_as_iam_string_like(
    pattern: str, matches: list[str], does_not_match: list[str]
) -> None:
    for value in matches:
        assert iam_like(pattern).fullmatch(value), value
    for value in does_not_match:
        assert not iam_like(pattern).fullmatch(value), value


# --- the environment the stack sets -----------------------------------------------------


def test_unset_variables_mean_the_settings_defaults() -> None:
    assert BuildConfig({}).cost_limits == CostLimits(
        allowed_instance_types=DEFAULT_ALLOWED_INSTANCE_TYPES,
        max_volume_gb=2000,
        max_volume_iops=6000,
        max_build_hours=12,
    )


def test_the_stack_settings_and_prepare_share_the_defaults() -> None:
    from stacks.settings import DEFAULTS

    assert DEFAULTS["allowedInstanceTypes"] == list(CostLimits().allowed_instance_types)
    assert DEFAULTS["maxVolumeGb"] == CostLimits().max_volume_gb
    assert DEFAULTS["maxVolumeIops"] == CostLimits().max_volume_iops
    assert DEFAULTS["maxBuildHours"] == CostLimits().max_build_hours


def test_variables_are_read() -> None:
    limits = BuildConfig(
        {
            ENV_ALLOWED_INSTANCE_TYPES: " c7g.* , m7i.*,",
            ENV_MAX_VOLUME_GB: "100",
            ENV_MAX_VOLUME_IOPS: "3000",
            ENV_MAX_BUILD_HOURS: "2",
        }
    ).cost_limits
    assert limits == CostLimits(("c7g.*", "m7i.*"), 100, 3000, 2)


@pytest.mark.parametrize("name", [ENV_MAX_VOLUME_GB, ENV_MAX_VOLUME_IOPS, ENV_MAX_BUILD_HOURS])
@pytest.mark.parametrize("raw", ["0", "-5", "12.5", "lots"])
def test_a_malformed_variable_is_a_configuration_error_naming_it(name: str, raw: str) -> None:
    with pytest.raises(ConfigurationError, match=f"{name} must be a whole number"):
        _ = BuildConfig({name: raw}).cost_limits
