"""The wiring that matters, asserted on the synthesized template."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_cdk.assertions import Match, Template

from petal.build.bootstrap_document import render_bootstrap_document
from petal.build.definition import placeholders
from petal.deployment_contract import (
    CALLBACK_FUNCTION,
    ENV_BUILD_LOG_GROUP,
    ENV_BUILD_TIMEOUT_MINUTES,
    ENV_DOCUMENT,
    ENV_INSTANCE_PROFILE,
    ENV_NODE_SETUP_URI,
    ENV_REGISTRY_URL,
    ENV_SECURITY_GROUP,
    ENV_SEED_BUCKET,
    ENV_STATE_MACHINE,
    ENV_SUBNETS,
    ENV_TABLE,
    ENV_TRUSTED_ACCOUNTS,
    FAILURE_MARKER,
    HEARTBEAT_MARKER,
    INDEX_KEYS,
    INTAKE_FUNCTION,
    JANITOR_FUNCTION,
    LOG_HEARTBEAT_FUNCTION,
    OUTPUT_BUILD_LOG_GROUP,
    OUTPUT_DOCUMENT,
    OUTPUT_RESOLVER,
    OUTPUT_SEED_BUCKET,
    OUTPUT_STATE_MACHINE_ARN,
    OUTPUT_TABLE,
    PROGRESS_MARKER,
    RESOLVER_FUNCTION,
    STATE_MACHINE_FILE,
    STEP_FUNCTIONS,
    STEP_MARKER,
    TABLE_PARTITION_KEY,
    TABLE_SORT_KEY,
    TABLE_TTL_ATTRIBUTE,
)
from stacks.functions import FUNCTION_SPECS
from stacks.node_setup import NODE_SETUP_KEY, NODE_SETUP_PREFIX
from tests.infra.conftest import REPO_ROOT, TEST_SUBNETS, TEST_TRUSTED_ACCOUNTS, TEST_VPC, Synth

ALL_MODULES = {
    *STEP_FUNCTIONS.values(),
    CALLBACK_FUNCTION,
    LOG_HEARTBEAT_FUNCTION,
    INTAKE_FUNCTION,
    JANITOR_FUNCTION,
    RESOLVER_FUNCTION,
}
CONTRACT_ENV = (
    ENV_TABLE,
    ENV_SEED_BUCKET,
    ENV_DOCUMENT,
    ENV_INSTANCE_PROFILE,
    ENV_SECURITY_GROUP,
    ENV_SUBNETS,
    ENV_BUILD_LOG_GROUP,
    ENV_STATE_MACHINE,
    ENV_REGISTRY_URL,
    ENV_TRUSTED_ACCOUNTS,
    ENV_NODE_SETUP_URI,
    ENV_BUILD_TIMEOUT_MINUTES,
)


@pytest.fixture(scope="module")
def template(synth: Synth) -> Template:
    return Template.from_json(synth.template)


def one(synth: Synth, cfn_type: str) -> tuple[str, dict[str, Any]]:
    found = synth.of_type(cfn_type)
    assert len(found) == 1, f"expected one {cfn_type}, found {sorted(found)}"
    return next(iter(found.items()))


def petal_bucket_id(synth: Synth) -> str:
    buckets = [
        k
        for k, v in synth.of_type("AWS::S3::Bucket").items()
        if v["Properties"].get("VersioningConfiguration")
    ]
    assert len(buckets) == 1
    return buckets[0]


def rule_with_source(synth: Synth, source: str) -> list[dict[str, Any]]:
    return [
        r["Properties"]
        for r in synth.of_type("AWS::Events::Rule").values()
        if r["Properties"].get("EventPattern", {}).get("source") == [source]
    ]


def target_function(synth: Synth, rule: dict[str, Any]) -> str:
    (target,) = rule["Targets"]
    arn = target["Arn"]
    assert list(arn) == ["Fn::GetAtt"] and arn["Fn::GetAtt"][1] == "Arn", arn
    logical_id: str = arn["Fn::GetAtt"][0]
    return logical_id


# --- functions -------------------------------------------------------------------


def test_one_function_per_handler_module(synth: Synth) -> None:
    assert set(synth.function_ids()) == ALL_MODULES == set(FUNCTION_SPECS)


@pytest.mark.parametrize("module", sorted(ALL_MODULES))
def test_function_configuration(synth: Synth, module: str) -> None:
    props = synth.resources[synth.function_ids()[module]]["Properties"]
    assert props["Runtime"] == "python3.12"
    assert props["Handler"] == f"lambdas.{module}.handler"
    assert props["TracingConfig"] == {"Mode": "Active"}
    assert props["Architectures"] == ["x86_64"]
    (layer,) = props["Layers"]
    assert layer == (
        "arn:aws:lambda:us-east-1:017000801446:layer:"
        "AWSLambdaPowertoolsPythonV3-python312-x86_64:27"
    )
    env = props["Environment"]["Variables"]
    assert set(CONTRACT_ENV) <= set(env)
    assert env["POWERTOOLS_SERVICE_NAME"] == "petal"
    assert env["POWERTOOLS_METRICS_NAMESPACE"] == "Petal"
    assert env[ENV_SUBNETS] == ",".join(TEST_SUBNETS)
    assert env[ENV_TRUSTED_ACCOUNTS] == ",".join(TEST_TRUSTED_ACCOUNTS)
    assert env[ENV_BUILD_TIMEOUT_MINUTES] == "360"
    # An explicit log group with retention, not the implicit never-expiring one.
    log_group = props["LoggingConfig"]["LogGroup"]["Ref"]
    assert synth.resources[log_group]["Properties"]["RetentionInDays"] == 30
    assert props["Timeout"] >= 60


def test_each_function_has_a_role_of_its_own(synth: Synth) -> None:
    roles = [
        synth.resources[logical_id]["Properties"]["Role"]["Fn::GetAtt"][0]
        for logical_id in synth.function_ids().values()
    ]
    assert len(set(roles)) == len(roles) == len(ALL_MODULES)


def test_reserved_concurrency_on_the_event_driven_entry_points(synth: Synth) -> None:
    ids = synth.function_ids()
    concurrency = {
        module: synth.resources[ids[module]]["Properties"].get("ReservedConcurrentExecutions")
        for module in ALL_MODULES
    }
    assert concurrency[CALLBACK_FUNCTION] == 5
    assert concurrency[INTAKE_FUNCTION] == 2


def test_environment_points_at_the_stack_resources(synth: Synth) -> None:
    env = synth.resources[synth.function_ids()[RESOLVER_FUNCTION]]["Properties"]["Environment"][
        "Variables"
    ]
    bucket = petal_bucket_id(synth)
    table, _ = one(synth, "AWS::DynamoDB::Table")
    document, _ = one(synth, "AWS::SSM::Document")
    profile, _ = one(synth, "AWS::IAM::InstanceProfile")
    assert env[ENV_SEED_BUCKET] == {"Ref": bucket}
    assert env[ENV_TABLE] == {"Ref": table}
    assert env[ENV_DOCUMENT] == {"Ref": document}
    assert env[ENV_INSTANCE_PROFILE] == {"Fn::GetAtt": [profile, "Arn"]}
    assert env[ENV_NODE_SETUP_URI] == {
        "Fn::Join": ["", ["s3://", {"Ref": bucket}, f"/{NODE_SETUP_KEY}"]]
    }
    # Computed from the fixed name, so it is a string, not a reference to the resource.
    assert "stateMachine:petal-build" in json.dumps(env[ENV_STATE_MACHINE])


# --- state machine ---------------------------------------------------------------


def asl_text() -> str:
    return (REPO_ROOT / STATE_MACHINE_FILE).read_text()


def test_state_machine_is_standard_logged_and_traced(synth: Synth) -> None:
    _, sm = one(synth, "AWS::StepFunctions::StateMachine")
    props = sm["Properties"]
    assert props["StateMachineType"] == "STANDARD"
    assert props["StateMachineName"] == "petal-build"
    assert props["TracingConfiguration"] == {"Enabled": True}
    logging = props["LoggingConfiguration"]
    assert logging["Level"] == "ALL"
    assert logging["IncludeExecutionData"] is True
    # Inline, so cfn-lint validates it; exactly the file's text.
    assert props["DefinitionString"] == asl_text()


def test_every_placeholder_in_the_definition_is_substituted(synth: Synth) -> None:
    _, sm = one(synth, "AWS::StepFunctions::StateMachine")
    substitutions = sm["Properties"]["DefinitionSubstitutions"]
    used = placeholders(asl_text())
    missing = used - set(substitutions)
    assert not missing, f"{STATE_MACHINE_FILE} uses placeholders the stack does not set"
    assert set(substitutions) == used
    # Every step function is a state of the definition.
    assert set(STEP_FUNCTIONS) <= used


@pytest.mark.parametrize("key", sorted(STEP_FUNCTIONS))
def test_substitution_resolves_to_the_function_of_that_module(synth: Synth, key: str) -> None:
    _, sm = one(synth, "AWS::StepFunctions::StateMachine")
    value = sm["Properties"]["DefinitionSubstitutions"][key]
    expected = synth.function_ids()[STEP_FUNCTIONS[key]]
    assert value == {"Fn::GetAtt": [expected, "Arn"]}


def test_table_name_substitution(synth: Synth) -> None:
    _, sm = one(synth, "AWS::StepFunctions::StateMachine")
    substitutions = sm["Properties"]["DefinitionSubstitutions"]
    table, _ = one(synth, "AWS::DynamoDB::Table")
    if "BuildsTableName" in placeholders(asl_text()):
        assert substitutions["BuildsTableName"] == {"Ref": table}


# --- triggers --------------------------------------------------------------------


def test_seed_upload_rule(synth: Synth) -> None:
    (rule,) = rule_with_source(synth, "aws.s3")
    assert rule["EventPattern"] == {
        "source": ["aws.s3"],
        "detail-type": ["Object Created"],
        "detail": {
            "bucket": {"name": [{"Ref": petal_bucket_id(synth)}]},
            "object": {"key": [{"wildcard": "seeds/*.yaml"}, {"wildcard": "seeds/*.yml"}]},
        },
    }
    assert target_function(synth, rule) == synth.function_ids()[INTAKE_FUNCTION]


def test_bootstrap_command_rule(synth: Synth) -> None:
    (rule,) = rule_with_source(synth, "aws.ssm")
    document, _ = one(synth, "AWS::SSM::Document")
    assert rule["EventPattern"] == {
        "source": ["aws.ssm"],
        "detail-type": ["EC2 Command Invocation Status-change Notification"],
        "detail": {"document-name": [{"Ref": document}]},
    }
    assert target_function(synth, rule) == synth.function_ids()[CALLBACK_FUNCTION]


def test_builder_state_rule(synth: Synth) -> None:
    (rule,) = rule_with_source(synth, "aws.ec2")
    assert rule["EventPattern"] == {
        "source": ["aws.ec2"],
        "detail-type": ["EC2 Instance State-change Notification"],
        "detail": {"state": ["stopping", "shutting-down", "terminated", "stopped"]},
    }
    assert target_function(synth, rule) == synth.function_ids()[CALLBACK_FUNCTION]


def test_janitor_schedule(synth: Synth) -> None:
    scheduled = [
        r["Properties"]
        for r in synth.of_type("AWS::Events::Rule").values()
        if "ScheduleExpression" in r["Properties"]
    ]
    (rule,) = scheduled
    assert rule["ScheduleExpression"] == "rate(1 hour)"
    assert target_function(synth, rule) == synth.function_ids()[JANITOR_FUNCTION]


def test_event_rules_may_invoke_their_targets(template: Template, synth: Synth) -> None:
    ids = synth.function_ids()
    for module in (INTAKE_FUNCTION, CALLBACK_FUNCTION, JANITOR_FUNCTION):
        template.has_resource_properties(
            "AWS::Lambda::Permission",
            {
                "Action": "lambda:InvokeFunction",
                "FunctionName": {"Fn::GetAtt": [ids[module], "Arn"]},
                "Principal": "events.amazonaws.com",
            },
        )


def test_build_log_markers_reach_the_heartbeat_function(synth: Synth) -> None:
    _, sub = one(synth, "AWS::Logs::SubscriptionFilter")
    props = sub["Properties"]
    assert props["DestinationArn"] == {
        "Fn::GetAtt": [synth.function_ids()[LOG_HEARTBEAT_FUNCTION], "Arn"]
    }
    for marker in (PROGRESS_MARKER, STEP_MARKER, HEARTBEAT_MARKER, FAILURE_MARKER):
        assert f'?"{marker}"' in props["FilterPattern"]
    log_group = props["LogGroupName"]["Ref"]
    assert synth.resources[log_group]["Properties"]["RetentionInDays"] == 30


# --- storage ---------------------------------------------------------------------


def test_seed_bucket_is_private_encrypted_versioned_and_logged(synth: Synth) -> None:
    bucket_id = petal_bucket_id(synth)
    props = synth.resources[bucket_id]["Properties"]
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    assert props["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    (rule,) = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    assert props["LoggingConfiguration"]["DestinationBucketName"]["Ref"] in synth.resources
    assert synth.resources[bucket_id]["DeletionPolicy"] == "Retain"


def test_both_buckets_refuse_plain_http(synth: Synth) -> None:
    policies = synth.of_type("AWS::S3::BucketPolicy")
    assert len(policies) == 2
    for policy in policies.values():
        statements = policy["Properties"]["PolicyDocument"]["Statement"]
        assert any(
            s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
            for s in statements
        )


def test_seed_bucket_sends_events_to_eventbridge(template: Template, synth: Synth) -> None:
    template.has_resource_properties(
        "Custom::S3BucketNotifications",
        {
            "BucketName": {"Ref": petal_bucket_id(synth)},
            "NotificationConfiguration": {"EventBridgeConfiguration": {}},
        },
    )


def test_builds_table(template: Template) -> None:
    template.has_resource(
        "AWS::DynamoDB::Table",
        {
            "DeletionPolicy": "Retain",
            "Properties": Match.object_like(
                {
                    "BillingMode": "PAY_PER_REQUEST",
                    "KeySchema": [
                        {"AttributeName": TABLE_PARTITION_KEY, "KeyType": "HASH"},
                        {"AttributeName": TABLE_SORT_KEY, "KeyType": "RANGE"},
                    ],
                    "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
                    "SSESpecification": {"SSEEnabled": True},
                    "TimeToLiveSpecification": {
                        "AttributeName": TABLE_TTL_ATTRIBUTE,
                        "Enabled": True,
                    },
                }
            ),
        },
    )


def test_builds_table_indexes(synth: Synth) -> None:
    _, table = one(synth, "AWS::DynamoDB::Table")
    props = table["Properties"]
    indexes = {i["IndexName"]: i for i in props["GlobalSecondaryIndexes"]}
    assert set(indexes) == set(INDEX_KEYS)
    for name, (pk, sk) in INDEX_KEYS.items():
        assert indexes[name]["KeySchema"] == [
            {"AttributeName": pk, "KeyType": "HASH"},
            {"AttributeName": sk, "KeyType": "RANGE"},
        ]
    types = {a["AttributeName"]: a["AttributeType"] for a in props["AttributeDefinitions"]}
    assert all(t == "S" for t in types.values())


# --- builder ---------------------------------------------------------------------


def test_bootstrap_document(synth: Synth) -> None:
    _, doc = one(synth, "AWS::SSM::Document")
    props = doc["Properties"]
    assert props["DocumentType"] == "Command"
    assert props["Name"] == "petal-bootstrap"
    assert props["UpdateMethod"] == "NewVersion"
    assert props["Content"] == render_bootstrap_document(REPO_ROOT)


def test_builder_security_group_has_no_ingress_and_https_and_http_egress(synth: Synth) -> None:
    groups = synth.of_type("AWS::EC2::SecurityGroup")
    (sg,) = groups.values()
    props = sg["Properties"]
    assert props["VpcId"] == TEST_VPC
    assert "SecurityGroupIngress" not in props
    assert not synth.of_type("AWS::EC2::SecurityGroupIngress")
    egress = props["SecurityGroupEgress"]
    # Port 80 by default: Ubuntu builders' apt sources on EC2 are HTTP-only.
    assert {(e["IpProtocol"], e["FromPort"], e["ToPort"]) for e in egress} == {
        ("tcp", 443, 443),
        ("tcp", 80, 80),
    }
    assert {e.get("CidrIp") or e.get("CidrIpv6") for e in egress} == {"0.0.0.0/0", "::/0"}
    assert len(egress) == 4


def test_builder_instance_profile_role(synth: Synth) -> None:
    _, profile = one(synth, "AWS::IAM::InstanceProfile")
    (role_ref,) = profile["Properties"]["Roles"]
    role = synth.resources[role_ref["Ref"]]["Properties"]
    assert role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {
        "Service": "ec2.amazonaws.com"
    }
    # A scoped policy instead of AmazonSSMManagedInstanceCore (see test_iam.py).
    assert "ManagedPolicyArns" not in role


def test_node_setup_script_is_deployed_without_pruning(template: Template, synth: Synth) -> None:
    template.has_resource_properties(
        "Custom::CDKBucketDeployment",
        {
            "DestinationBucketName": {"Ref": petal_bucket_id(synth)},
            "DestinationBucketKeyPrefix": NODE_SETUP_PREFIX,
            "Prune": False,
        },
    )


# --- outputs ---------------------------------------------------------------------


def test_outputs_use_the_contract_names(synth: Synth) -> None:
    outputs = synth.template["Outputs"]
    sm, _ = one(synth, "AWS::StepFunctions::StateMachine")
    table, _ = one(synth, "AWS::DynamoDB::Table")
    document, _ = one(synth, "AWS::SSM::Document")
    log_group = synth.resources[
        next(iter(synth.of_type("AWS::Logs::SubscriptionFilter").values()))["Properties"][
            "LogGroupName"
        ]["Ref"]
    ]
    assert log_group
    assert outputs[OUTPUT_STATE_MACHINE_ARN]["Value"] == {"Ref": sm}
    assert outputs[OUTPUT_SEED_BUCKET]["Value"] == {"Ref": petal_bucket_id(synth)}
    assert outputs[OUTPUT_TABLE]["Value"] == {"Ref": table}
    assert outputs[OUTPUT_RESOLVER]["Value"] == {"Ref": synth.function_ids()[RESOLVER_FUNCTION]}
    assert outputs[OUTPUT_DOCUMENT]["Value"] == {"Ref": document}
    assert "Ref" in outputs[OUTPUT_BUILD_LOG_GROUP]["Value"]
