"""Where the CLI's region comes from: AWS_REGION before AWS_DEFAULT_REGION before the
profile (boto3 alone reads only the last two), and what it says when there is none."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import NoRegionError

from petal.aws import session as aws_session
from petal.aws.deployment import Deployment, DeploymentNotFound, discover_deployment
from petal.cli import build_watch

PROFILE_REGION = "eu-west-1"


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """No region from anywhere but what a test sets: an AWS config file whose default
    profile names PROFILE_REGION only when a test writes it, no petal config."""
    for name in (
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "PETAL_REGION",
        "PETAL_STACK_NAME",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws-credentials"))
    monkeypatch.setenv("PETAL_CONFIG", str(tmp_path / "petal-config.yaml"))
    return monkeypatch


def profile_region(tmp_path: Path) -> None:
    (tmp_path / "aws-config").write_text(f"[default]\nregion = {PROFILE_REGION}\n")


@pytest.mark.parametrize(
    ("aws_region", "aws_default_region", "in_profile", "expected"),
    [
        (None, None, False, None),
        (None, None, True, PROFILE_REGION),
        (None, "us-west-2", True, "us-west-2"),
        ("ap-south-1", None, False, "ap-south-1"),
        ("ap-south-1", None, True, "ap-south-1"),
        ("ap-south-1", "us-west-2", True, "ap-south-1"),
        # Empty counts as unset, as it does for the AWS CLI.
        ("", "us-west-2", True, "us-west-2"),
        ("", None, True, PROFILE_REGION),
    ],
)
def test_default_region_order(
    env: pytest.MonkeyPatch,
    tmp_path: Path,
    aws_region: str | None,
    aws_default_region: str | None,
    in_profile: bool,
    expected: str | None,
) -> None:
    if aws_region is not None:
        env.setenv("AWS_REGION", aws_region)
    if aws_default_region is not None:
        env.setenv("AWS_DEFAULT_REGION", aws_default_region)
    if in_profile:
        profile_region(tmp_path)
    assert aws_session.default_region() == expected
    # Every client petal makes without a region uses the same one.
    if expected is not None:
        assert aws_session.client("sts").meta.region_name == expected
        assert aws_session.new_session().client("sts").meta.region_name == expected


def test_explicit_region_beats_the_environment(env: pytest.MonkeyPatch) -> None:
    env.setenv("AWS_REGION", "ap-south-1")
    env.setenv("AWS_DEFAULT_REGION", "us-west-2")
    assert aws_session.client("sts", "eu-central-1").meta.region_name == "eu-central-1"


def test_configured_region_reads_aws_region(env: pytest.MonkeyPatch) -> None:
    env.setenv("AWS_REGION", "ap-south-1")
    env.setenv("AWS_DEFAULT_REGION", "us-west-2")
    assert build_watch.configured_region() == "ap-south-1"
    # The petal config's region still comes first.
    env.setenv("PETAL_REGION", "eu-north-1")
    assert build_watch.configured_region() == "eu-north-1"


def test_find_pipeline_uses_aws_region(env: pytest.MonkeyPatch) -> None:
    env.setenv("AWS_REGION", "ap-south-1")
    env.setenv("AWS_DEFAULT_REGION", "us-west-2")
    seen: dict[str, Any] = {}

    def discover(cloudformation: Any, stack_name: str, region: str) -> Deployment:
        seen["client_region"] = cloudformation.meta.region_name
        return Deployment(stack_name, region, "arn", "table", "bucket", "logs")

    env.setattr(build_watch, "discover_deployment", discover)
    pipeline = build_watch.find_pipeline(None, None)
    assert pipeline.deployment.region == "ap-south-1"
    assert seen["client_region"] == "ap-south-1"
    assert pipeline.client("dynamodb").meta.region_name == "ap-south-1"


def assert_names_every_way(message: str) -> None:
    for way in (
        "--region",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "aws configure",
        "deployment.region",
        "~/.petal/config.yaml",
    ):
        assert way in message, f"{way!r} missing from: {message}"


def test_no_region_names_every_way_to_give_one(env: pytest.MonkeyPatch) -> None:
    with pytest.raises(DeploymentNotFound) as failure:
        build_watch.find_pipeline(None, None)
    assert str(failure.value).startswith("no AWS region")
    assert_names_every_way(str(failure.value))


def test_no_region_from_boto_names_every_way(env: pytest.MonkeyPatch) -> None:
    class NoRegion:
        def describe_stacks(self, StackName: str) -> Any:
            raise NoRegionError()

    with pytest.raises(DeploymentNotFound) as failure:
        discover_deployment(NoRegion(), "petal", "us-east-1")
    assert_names_every_way(str(failure.value))


@pytest.mark.parametrize(
    ("region", "partition"),
    [
        ("us-east-1", "aws"),
        ("ap-southeast-7", "aws"),
        ("cn-north-1", "aws-cn"),
        ("us-gov-west-1", "aws-us-gov"),
        ("us-iso-east-1", "aws-iso"),
        ("xx-nowhere-1", None),
    ],
)
def test_partition_of(region: str, partition: str | None) -> None:
    assert aws_session.partition_of(region) == partition
