"""The optional settings synthesize cleanly too (cdk-nag included): VPC endpoints (one
subnet per zone), HTTPS-only egress, no reserved concurrency, no trusted accounts,
volume KMS keys, a customer managed default EBS key, mirror buckets, builder image
owners, cost limits, another stack name."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.infra.conftest import TEST_SUBNETS, Synth, synthesize

KEY = "arn:aws:kms:us-east-1:111111111111:key/1234abcd-12ab-34cd-56ef-1234567890ab"
DEFAULT_KEY = "arn:aws:kms:us-east-1:111111111111:key/0000abcd-12ab-34cd-56ef-1234567890ab"
# Two subnets in one zone: an endpoint may take only the first of them.
SUBNETS = (*TEST_SUBNETS, "subnet-00000000000000001")
ZONES = ("us-east-1a", "us-east-1a", "us-east-1b")
MIRROR_BUCKETS = ("team-spack-cache", "other.cache")
IMAGE_OWNERS = ("333333333333", "444444444444")
INSTANCE_TYPES = ("c7g.*", "m6i.?xlarge", "p5.48xlarge")


@pytest.fixture(scope="module")
def options(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Synth]:
    yield synthesize(
        tmp_path_factory.mktemp("cdk-out-options"),
        {
            "petal:stackName": "PetalTest",
            "petal:subnetIds": ",".join(SUBNETS),
            "petal:subnetAvailabilityZones": ",".join(ZONES),
            "petal:createVpcEndpoints": "true",
            "petal:builderHttpEgress": "false",
            "petal:mirrorBuckets": ",".join(MIRROR_BUCKETS),
            "petal:ebsDefaultKmsKeyArn": DEFAULT_KEY,
            "petal:callbackConcurrency": "null",
            "petal:intakeConcurrency": "null",
            "petal:trustedAccounts": "",
            "petal:registryUrl": "https://example.org/petal/index.json",
            "petal:volumeKmsKeyArns": KEY,
            "petal:builderImageOwners": ",".join(IMAGE_OWNERS),
            "petal:allowedInstanceTypes": ",".join(INSTANCE_TYPES),
            "petal:maxVolumeGb": "16384",
            "petal:maxVolumeIops": "16000",
            "petal:maxBuildHours": "48",
        },
    )


def test_stack_name_flows_into_fixed_names(options: Synth) -> None:
    assert (options.outdir / "PetalTest.template.json").is_file()
    (sm,) = options.of_type("AWS::StepFunctions::StateMachine").values()
    assert sm["Properties"]["StateMachineName"] == "PetalTest-build"
    (doc,) = options.of_type("AWS::SSM::Document").values()
    assert doc["Properties"]["Name"] == "PetalTest-bootstrap"


def test_vpc_endpoints_for_the_ssm_agent(options: Synth) -> None:
    endpoints = options.of_type("AWS::EC2::VPCEndpoint")
    services = sorted(e["Properties"]["ServiceName"] for e in endpoints.values())
    assert services == [
        f"com.amazonaws.us-east-1.{s}" for s in ("ec2messages", "logs", "ssm", "ssmmessages")
    ]
    for endpoint in endpoints.values():
        # One subnet per zone, the first of each (DuplicateSubnetsInSameZone otherwise).
        assert endpoint["Properties"]["SubnetIds"] == [SUBNETS[0], SUBNETS[2]]
        assert endpoint["Properties"]["PrivateDnsEnabled"] is True
    # The endpoints accept HTTPS from the builder only.
    (ingress,) = [
        g["Properties"]["SecurityGroupIngress"]
        for g in options.of_type("AWS::EC2::SecurityGroup").values()
        if "SecurityGroupIngress" in g["Properties"]
    ]
    assert [(i["FromPort"], i["ToPort"]) for i in ingress] == [(443, 443)]
    assert "SourceSecurityGroupId" in ingress[0]


def test_https_only_egress_when_asked(options: Synth) -> None:
    builder = next(
        g
        for logical_id, g in options.of_type("AWS::EC2::SecurityGroup").items()
        if logical_id.startswith("BuilderNetworkBuilderSecurityGroup")
    )
    ports = {e["FromPort"] for e in builder["Properties"]["SecurityGroupEgress"]}
    assert ports == {443}


def test_prepare_learns_the_builder_settings(options: Synth) -> None:
    prepare = options.resources[options.function_ids()["prepare"]]["Properties"]
    variables = prepare["Environment"]["Variables"]
    assert variables["PETAL_BUILDER_HTTP_EGRESS"] == "false"
    assert variables["PETAL_MIRROR_BUCKETS"] == ",".join(MIRROR_BUCKETS)
    assert variables["PETAL_EBS_DEFAULT_KMS_KEY_ARN"] == DEFAULT_KEY
    assert variables["PETAL_BUILDER_IMAGE_OWNERS"] == ",".join(IMAGE_OWNERS)
    assert variables["PETAL_ALLOWED_INSTANCE_TYPES"] == ",".join(INSTANCE_TYPES)
    assert variables["PETAL_MAX_VOLUME_GB"] == "16384"
    assert variables["PETAL_MAX_VOLUME_IOPS"] == "16000"
    assert variables["PETAL_MAX_BUILD_HOURS"] == "48"


def test_launch_may_start_exactly_the_allowed_instance_types(options: Synth) -> None:
    launch_role = options.resources[options.function_ids()["launch"]]["Properties"]["Role"]
    statements = [
        statement
        for policy in options.of_type("AWS::IAM::Policy").values()
        if launch_role["Fn::GetAtt"][0] in json.dumps(policy["Properties"]["Roles"])
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        if "ec2:InstanceType" in json.dumps(statement.get("Condition", {}))
    ]
    (statement,) = statements
    assert statement["Action"] == "ec2:RunInstances"
    assert ":instance/*" in json.dumps(statement["Resource"])
    assert statement["Condition"]["StringLike"] == {"ec2:InstanceType": list(INSTANCE_TYPES)}


def test_launch_may_boot_images_of_the_builder_image_owners(options: Synth) -> None:
    launch_role = options.resources[options.function_ids()["launch"]]["Properties"]["Role"]
    conditions = [
        statement["Condition"]
        for policy in options.of_type("AWS::IAM::Policy").values()
        if launch_role["Fn::GetAtt"][0] in json.dumps(policy["Properties"]["Roles"])
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        if "ec2:Owner" in json.dumps(statement.get("Condition", {}))
    ]
    assert conditions == [
        {"StringEquals": {"ec2:Owner": ["amazon", {"Ref": "AWS::AccountId"}, *IMAGE_OWNERS]}}
    ]


def builder_statements(options: Synth) -> list[dict[str, Any]]:
    role_id = next(r for r in options.of_type("AWS::IAM::Role") if r.startswith("BuilderIdentity"))
    return [
        st
        for policy in options.of_type("AWS::IAM::Policy").values()
        if {"Ref": role_id} in policy["Properties"]["Roles"]
        for st in policy["Properties"]["PolicyDocument"]["Statement"]
    ]


def test_builder_reads_exactly_the_mirror_buckets(options: Synth) -> None:
    s3 = [
        st
        for st in builder_statements(options)
        if "s3:" in json.dumps(st["Action"]) and "manifests/" not in json.dumps(st["Resource"])
    ]
    granted = {
        (action, json.dumps(resource, sort_keys=True))
        for st in s3
        for action in (st["Action"] if isinstance(st["Action"], list) else [st["Action"]])
        for resource in (st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]])
    }
    expected = {
        pair
        for bucket in MIRROR_BUCKETS
        for pair in (
            ("s3:ListBucket", json.dumps(f"arn:aws:s3:::{bucket}")),
            ("s3:GetObject", json.dumps(f"arn:aws:s3:::{bucket}/*")),
        )
    }
    assert granted == expected
    assert all("Condition" not in st and st["Effect"] == "Allow" for st in s3)


def test_default_mirror_buckets_grant_no_s3_read(synth: Synth) -> None:
    # Only the manifest's upload (tests/infra/test_iam.py): nothing to read.
    assert "s3:GetObject" not in json.dumps(builder_statements(synth))
    assert "s3:ListBucket" not in json.dumps(builder_statements(synth))


def test_no_reserved_concurrency_and_no_sharing(options: Synth) -> None:
    for function in options.of_type("AWS::Lambda::Function").values():
        assert "ReservedConcurrentExecutions" not in function["Properties"]
    for policy in options.of_type("AWS::IAM::Policy").values():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            assert "ec2:ModifySnapshotAttribute" not in statement["Action"]


def test_customer_managed_volume_keys_only_through_ec2(options: Synth) -> None:
    ids = options.function_ids()
    holders = set()
    for module, function_id in ids.items():
        role = options.resources[function_id]["Properties"]["Role"]["Fn::GetAtt"][0]
        for policy in options.of_type("AWS::IAM::Policy").values():
            if {"Ref": role} not in policy["Properties"]["Roles"]:
                continue
            for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
                actions = statement["Action"]
                actions = actions if isinstance(actions, list) else [actions]
                if not any(a.startswith("kms:") for a in actions):
                    continue
                holders.add(module)
                assert statement["Resource"] == [KEY, DEFAULT_KEY]
                assert statement["Condition"]["StringEquals"] == {
                    "kms:ViaService": "ec2.us-east-1.amazonaws.com"
                }
                if "kms:CreateGrant" in actions:
                    assert statement["Condition"]["Bool"] == {"kms:GrantIsForAWSResource": "true"}
    assert holders == {"launch", "check_ready"}
