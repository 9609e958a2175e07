"""The optional settings synthesize cleanly too (cdk-nag included): VPC endpoints,
HTTP egress, no reserved concurrency, no trusted accounts, volume KMS keys, another
stack name."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.infra.conftest import TEST_SUBNETS, Synth, synthesize

KEY = "arn:aws:kms:us-east-1:111111111111:key/1234abcd-12ab-34cd-56ef-1234567890ab"


@pytest.fixture(scope="module")
def options(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Synth]:
    yield synthesize(
        tmp_path_factory.mktemp("cdk-out-options"),
        {
            "petal:stackName": "PetalTest",
            "petal:createVpcEndpoints": "true",
            "petal:builderHttpEgress": "true",
            "petal:callbackConcurrency": "null",
            "petal:intakeConcurrency": "null",
            "petal:trustedAccounts": "",
            "petal:registryUrl": "https://example.org/petal/index.json",
            "petal:volumeKmsKeyArns": KEY,
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
        assert endpoint["Properties"]["SubnetIds"] == list(TEST_SUBNETS)
        assert endpoint["Properties"]["PrivateDnsEnabled"] is True
    # The endpoints accept HTTPS from the builder only.
    (ingress,) = [
        g["Properties"]["SecurityGroupIngress"]
        for g in options.of_type("AWS::EC2::SecurityGroup").values()
        if "SecurityGroupIngress" in g["Properties"]
    ]
    assert [(i["FromPort"], i["ToPort"]) for i in ingress] == [(443, 443)]
    assert "SourceSecurityGroupId" in ingress[0]


def test_http_egress_when_asked(options: Synth) -> None:
    builder = next(
        g
        for logical_id, g in options.of_type("AWS::EC2::SecurityGroup").items()
        if logical_id.startswith("BuilderNetworkBuilderSecurityGroup")
    )
    ports = {e["FromPort"] for e in builder["Properties"]["SecurityGroupEgress"]}
    assert ports == {80, 443}


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
                assert statement["Resource"] == KEY
                assert statement["Condition"]["StringEquals"] == {
                    "kms:ViaService": "ec2.us-east-1.amazonaws.com"
                }
                if "kms:CreateGrant" in actions:
                    assert statement["Condition"]["Bool"] == {"kms:GrantIsForAWSResource": "true"}
    assert holders == {"launch", "check_ready"}
