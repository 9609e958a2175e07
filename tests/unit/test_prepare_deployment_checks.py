"""Prepare refuses, before anything is created, a build the deployment cannot carry out,
naming the setting to change: an Ubuntu build without HTTP egress, an s3:// mirror the
builder role may not read, a customer managed default EBS key the functions may not
use."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from petal.build.config import (
    ENV_BUILDER_HTTP_EGRESS,
    ENV_EBS_DEFAULT_KMS_KEY,
    ENV_MIRROR_BUCKETS,
)
from petal.build.table import BuildTable
from petal.errors import ConfigurationError, InvalidBuildRequest
from tests.unit.prepare_account import (
    PASSED_THE_CHECKS,
    assert_nothing_created,
    emulated_account,
    run_prepare,
)


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, Any, BuildTable]]:
    with emulated_account(monkeypatch) as account:
        yield account.ec2, account.kms, account.table


# --- Ubuntu's apt mirrors are HTTP-only ---------------------------------------


@pytest.mark.parametrize("os_name", ["ubuntu2204", "ubuntu2404"])
def test_ubuntu_without_http_egress_is_refused_naming_the_setting(
    aws: tuple[Any, Any, BuildTable], os_name: str
) -> None:
    ec2, _, table = aws
    with pytest.raises(ConfigurationError, match=r"petal:builderHttpEgress.*true") as caught:
        run_prepare(ec2, table, {ENV_BUILDER_HTTP_EGRESS: "false"}, os=os_name)
    assert os_name in str(caught.value)
    assert_nothing_created(table)


@pytest.mark.parametrize(
    ("os_name", "environ"),
    [
        ("ubuntu2404", {ENV_BUILDER_HTTP_EGRESS: "true"}),
        # Unset means the setting's default, which allows HTTP.
        ("ubuntu2404", {}),
        # dnf on Amazon Linux fetches over HTTPS.
        ("alinux2023", {ENV_BUILDER_HTTP_EGRESS: "false"}),
    ],
)
def test_http_egress_check_passes_when_apt_can_reach_its_mirrors(
    aws: tuple[Any, Any, BuildTable], os_name: str, environ: dict[str, str]
) -> None:
    ec2, _, table = aws
    with pytest.raises(Exception, match=PASSED_THE_CHECKS):
        run_prepare(ec2, table, environ, os=os_name)


# --- s3:// mirrors need petal:mirrorBuckets -----------------------------------

S3_MIRROR = [{"name": "team", "url": "s3://team-spack-cache/v1"}]


@pytest.mark.parametrize("listed", ["", "other-bucket"])
def test_s3_mirror_outside_mirror_buckets_is_refused_naming_the_setting(
    aws: tuple[Any, Any, BuildTable], listed: str
) -> None:
    ec2, _, table = aws
    with pytest.raises(InvalidBuildRequest, match=r"petal:mirrorBuckets") as caught:
        run_prepare(ec2, table, {ENV_MIRROR_BUCKETS: listed}, software__mirrors=S3_MIRROR)
    message = str(caught.value)
    assert "software.mirrors[0]" in message and "'team-spack-cache'" in message
    assert_nothing_created(table)


def test_s3_mirror_in_mirror_buckets_and_https_mirrors_pass(
    aws: tuple[Any, Any, BuildTable],
) -> None:
    ec2, _, table = aws
    mirrors = [*S3_MIRROR, {"name": "web", "url": "https://cache.example.org/spack"}]
    environ = {ENV_MIRROR_BUCKETS: "other-bucket,team-spack-cache"}
    with pytest.raises(Exception, match=PASSED_THE_CHECKS):
        run_prepare(ec2, table, environ, software__mirrors=mirrors)
    with pytest.raises(Exception, match=PASSED_THE_CHECKS):
        run_prepare(ec2, table, {}, software__mirrors=mirrors[1:])


# --- a customer managed default EBS key ---------------------------------------


def test_customer_managed_default_ebs_key_is_refused_naming_the_setting_and_key(
    aws: tuple[Any, Any, BuildTable],
) -> None:
    ec2, kms, table = aws
    key = kms.create_key()["KeyMetadata"]["Arn"]
    ec2.modify_ebs_default_kms_key_id(KmsKeyId=key)
    with pytest.raises(ConfigurationError, match=r"petal:ebsDefaultKmsKeyArn") as caught:
        run_prepare(ec2, table, {})
    assert f"Set petal:ebsDefaultKmsKeyArn to {key}" in str(caught.value)
    other = kms.create_key()["KeyMetadata"]["Arn"]
    with pytest.raises(ConfigurationError, match=f"it is {other}"):
        run_prepare(ec2, table, {ENV_EBS_DEFAULT_KMS_KEY: other})
    assert_nothing_created(table)


def test_default_ebs_key_granted_by_the_setting_passes(aws: tuple[Any, Any, BuildTable]) -> None:
    ec2, kms, table = aws
    key = kms.create_key()["KeyMetadata"]["Arn"]
    ec2.modify_ebs_default_kms_key_id(KmsKeyId=key)
    with pytest.raises(Exception, match=PASSED_THE_CHECKS):
        run_prepare(ec2, table, {ENV_EBS_DEFAULT_KMS_KEY: key})


def test_aws_managed_default_ebs_key_needs_no_setting(aws: tuple[Any, Any, BuildTable]) -> None:
    ec2, _, table = aws
    # The managed key exists once EBS has used it; it stays the AWS managed key.
    ec2.create_volume(AvailabilityZone="us-east-1a", Size=1, Encrypted=True)
    assert ec2.get_ebs_default_kms_key_id()["KmsKeyId"] == "alias/aws/ebs"
    with pytest.raises(Exception, match=PASSED_THE_CHECKS):
        run_prepare(ec2, table, {})
