"""Deployment settings: cdk.json documents every default, bad values fail clearly."""

from __future__ import annotations

from typing import Any

import pytest

from petal.validation import load_schema
from stacks.settings import DEFAULTS, PREFIX, RETENTION, SCHEMA, PetalSettings, SettingsError
from tests.infra.conftest import TEST_SUBNETS, TEST_VPC, cdk_json_context

NETWORK = {"vpcId": TEST_VPC, "subnetIds": list(TEST_SUBNETS)}


def settings(**values: Any) -> PetalSettings:
    return PetalSettings.from_mapping({**NETWORK, **values})


def test_cdk_json_lists_every_setting_with_its_default() -> None:
    context = cdk_json_context()
    petal_keys = {k.removeprefix(PREFIX): v for k, v in context.items() if k.startswith(PREFIX)}
    assert petal_keys == DEFAULTS


def test_the_schema_describes_every_setting_and_retention() -> None:
    properties = load_schema(SCHEMA)["properties"]
    assert set(properties) == set(DEFAULTS)
    assert properties["logRetentionDays"]["enum"] == sorted(RETENTION)


def test_defaults() -> None:
    s = settings()
    assert s.stack_name == "petal"
    assert s.region == "us-east-1"
    assert s.subnet_ids == TEST_SUBNETS
    assert s.build_timeout_minutes == 360
    assert s.janitor_rate_minutes == 60
    assert s.trusted_accounts == ()
    assert s.volume_kms_key_arns == ()
    # On by default: Ubuntu's apt mirrors on EC2 are HTTP-only.
    assert s.builder_http_egress is True
    assert s.create_vpc_endpoints is False
    assert s.subnet_availability_zones == ()
    assert s.mirror_buckets == ()
    assert s.ebs_default_kms_key_arn == ""
    assert s.log_retention == RETENTION[30]
    assert (s.callback_concurrency, s.intake_concurrency) == (5, 2)


def test_cost_limits_default_to_compute_families_and_bounded_volumes_and_time() -> None:
    # Without them a seed may ask for p5.48xlarge with 16 TiB at
    # 16,000 IOPS for 48 hours.
    s = settings()
    assert s.allowed_instance_types == tuple(
        f"{family}*.{size}"
        for family in "cmr"
        for size in ("large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge")
    )
    assert (s.max_volume_gb, s.max_volume_iops, s.max_build_hours) == (2000, 6000, 12)


def test_cost_limits_given_with_dash_c() -> None:
    s = settings(
        allowedInstanceTypes="c7g.*, m6i.?xlarge,c7g.*",
        maxVolumeGb="16384",
        maxVolumeIops="16000",
        maxBuildHours="48",
    )
    assert s.allowed_instance_types == ("c7g.*", "m6i.?xlarge")
    assert (s.max_volume_gb, s.max_volume_iops, s.max_build_hours) == (16384, 16000, 48)


def test_values_given_with_dash_c_arrive_as_strings() -> None:
    s = PetalSettings.from_mapping(
        {
            "vpcId": TEST_VPC,
            "subnetIds": f"{TEST_SUBNETS[0]}, {TEST_SUBNETS[1]}",
            "trustedAccounts": "111111111111,222222222222",
            "buildTimeoutMinutes": "120",
            "createVpcEndpoints": "true",
            "subnetAvailabilityZones": "us-east-1a, us-east-1b",
            "mirrorBuckets": "team-cache,other.cache",
            "callbackConcurrency": "null",
        }
    )
    assert s.subnet_availability_zones == ("us-east-1a", "us-east-1b")
    assert s.mirror_buckets == ("team-cache", "other.cache")
    assert s.subnet_ids == TEST_SUBNETS
    assert s.trusted_accounts == ("111111111111", "222222222222")
    assert s.build_timeout_minutes == 120
    assert s.create_vpc_endpoints is True
    assert s.callback_concurrency is None


def test_network_is_required_and_the_message_says_how() -> None:
    with pytest.raises(SettingsError, match=r"petal:vpcId.*petal:subnetIds.*-c"):
        PetalSettings.from_mapping({})


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"vpcId": "vpc-nothex!"}, "not a VPC id"),
        (
            {"subnetIds": ["subnet-0123456789abcdef0", "sg-123"]},
            r"subnetIds\[1\]: 'sg-123' is not a subnet id",
        ),
        ({"trustedAccounts": ["12345"]}, "12-digit"),
        ({"volumeKmsKeyArns": "alias/aws/ebs"}, "'alias/aws/ebs' is not a KMS key ARN"),
        ({"registryUrl": "http://example.com/index.json"}, "https://"),
        ({"logRetentionDays": 31}, "logRetentionDays"),
        ({"buildTimeoutMinutes": 0}, "buildTimeoutMinutes"),
        ({"janitorRateMinutes": "often"}, "janitorRateMinutes"),
        ({"stackName": "1bad name"}, "stackName"),
        ({"region": "moon-1"}, "region"),
        ({"createVpcEndpoints": "yes"}, "true or false"),
        (
            {"mirrorBuckets": "s3://team-cache"},
            r"mirrorBuckets\[0\]: 's3://team-cache' is not an S3",
        ),
        (
            {"ebsDefaultKmsKeyArn": "arn:aws:kms:us-east-1:111111111111:alias/ebs"},
            "is not a KMS key ARN",
        ),
        ({"subnetAvailabilityZones": ["us-east-1"]}, "is not an Availability Zone name"),
        ({"allowedInstanceTypes": []}, "allowedInstanceTypes"),
        (
            {"allowedInstanceTypes": "c7g.*,P5.48XLARGE"},
            r"allowedInstanceTypes\[1\]: 'P5.48XLARGE' is not an instance type pattern",
        ),
        ({"allowedInstanceTypes": "c7g.[0-9]xlarge"}, "not an instance type pattern"),
        ({"maxVolumeGb": 20000}, "maxVolumeGb"),
        ({"maxVolumeGb": 0}, "maxVolumeGb"),
        ({"maxVolumeIops": 2000}, "maxVolumeIops"),
        ({"maxBuildHours": 49}, "maxBuildHours"),
        ({"maxBuildHours": "half a day"}, "maxBuildHours"),
    ],
)
def test_bad_values_are_rejected(values: dict[str, Any], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        settings(**values)


def test_null_disables_reserved_concurrency_and_means_default_elsewhere() -> None:
    s = settings(callbackConcurrency=None, intakeConcurrency="null", buildTimeoutMinutes=None)
    assert (s.callback_concurrency, s.intake_concurrency) == (None, None)
    assert s.build_timeout_minutes == 360


def test_misspelt_keys_are_errors_not_ignored() -> None:
    with pytest.raises(SettingsError, match="petal:subnetId"):
        settings(subnetId="subnet-0123456789abcdef0")


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(SettingsError) as caught:
        settings(region="moon-1", readyWaitSeconds="often", intakeConcurrency=0)
    message = str(caught.value)
    assert "petal:region: 'moon-1' is not a region name" in message
    assert "petal:readyWaitSeconds: must be a whole number, not text ('often')" in message
    assert "petal:intakeConcurrency: must be a whole number of at least 1, not 0" in message


def test_vpc_endpoints_need_the_zone_of_each_subnet() -> None:
    with pytest.raises(
        SettingsError,
        match=r"petal:createVpcEndpoints needs petal:subnetAvailabilityZones.*describe-subnets",
    ):
        settings(createVpcEndpoints=True)
    with pytest.raises(SettingsError, match=r"lists 1 zones for 2 subnets in petal:subnetIds"):
        settings(subnetAvailabilityZones=["us-east-1a"])
