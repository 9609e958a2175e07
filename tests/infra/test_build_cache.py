"""petal:buildCache: the bucket petal creates (or the one named), the signing key's
secret, and what the builder role may do with them (cdk-nag runs in each synth)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from petal.build.build_cache import ENV_BUILD_CACHE_URL, ENV_SIGNING_KEY_SECRET
from stacks.settings import PetalSettings, SettingsError
from tests.infra.conftest import TEST_SUBNETS, TEST_VPC, Synth, synthesize, tool, tool_env
from tests.infra.test_checkov import run_checkov

NAMED = "team-build-cache"


@pytest.fixture(scope="module")
def created(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Synth]:
    yield synthesize(tmp_path_factory.mktemp("cdk-out-cache"), {"petal:buildCache": "create"})


@pytest.fixture(scope="module")
def named(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Synth]:
    yield synthesize(tmp_path_factory.mktemp("cdk-out-named-cache"), {"petal:buildCache": NAMED})


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def builder_statements(synth: Synth) -> list[dict[str, Any]]:
    role_id = next(r for r in synth.of_type("AWS::IAM::Role") if r.startswith("BuilderIdentity"))
    return [
        st
        for policy in synth.of_type("AWS::IAM::Policy").values()
        if {"Ref": role_id} in policy["Properties"]["Roles"]
        for st in policy["Properties"]["PolicyDocument"]["Statement"]
    ]


def cache_bucket_id(synth: Synth) -> str:
    return next(b for b in synth.of_type("AWS::S3::Bucket") if b.startswith("BuildCache"))


def test_the_created_bucket_is_private_encrypted_tls_only_and_expires(created: Synth) -> None:
    bucket_id = cache_bucket_id(created)
    properties = created.resources[bucket_id]["Properties"]
    assert properties["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    (rule,) = properties["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    rules = properties["LifecycleConfiguration"]["Rules"]
    assert {"ExpirationInDays": 365, "Prefix": "build-cache/", "Status": "Enabled"} in rules
    assert any("AbortIncompleteMultipartUpload" in r for r in rules)
    (policy,) = [
        p
        for p in created.of_type("AWS::S3::BucketPolicy").values()
        if p["Properties"]["Bucket"] == {"Ref": bucket_id}
    ]
    (tls,) = policy["Properties"]["PolicyDocument"]["Statement"]
    assert tls["Effect"] == "Deny"
    assert tls["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


@pytest.mark.parametrize("which", ["created", "named"])
def test_builders_use_only_the_cache_prefix(which: str, request: pytest.FixtureRequest) -> None:
    synth: Synth = request.getfixturevalue(which)
    bucket = (
        json.dumps({"Fn::GetAtt": [cache_bucket_id(synth), "Arn"]})
        if which == "created"
        else json.dumps(f"arn:aws:s3:::{NAMED}")
    )
    granted: dict[str, list[dict[str, Any]]] = {}
    for st in builder_statements(synth):
        text = json.dumps(st["Resource"])
        if "BuildCache" in text or NAMED in text:
            for action in as_list(st["Action"]):
                if action.startswith("s3:"):
                    granted.setdefault(action, []).append(st)
    assert set(granted) == {"s3:ListBucket", "s3:GetObject", "s3:PutObject"} | {
        "s3:AbortMultipartUpload"
    }
    (listing,) = granted["s3:ListBucket"]
    assert json.dumps(listing["Resource"]) == bucket
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["build-cache", "build-cache/*"]}}
    for action in ("s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"):
        (statement,) = granted[action]
        assert json.dumps(statement["Resource"]).endswith(('/build-cache/*"]]}', '/build-cache/*"'))
    assert not any("s3:DeleteObject" in json.dumps(st) for st in builder_statements(synth))


def test_only_the_builder_role_may_read_or_write_the_signing_key(created: Synth) -> None:
    (secret_id,) = created.of_type("AWS::SecretsManager::Secret")
    role_id = next(r for r in created.of_type("AWS::IAM::Role") if r.startswith("BuilderIdentity"))
    (policy,) = created.of_type("AWS::SecretsManager::ResourcePolicy").values()
    assert policy["Properties"]["SecretId"] == {"Ref": secret_id}
    (deny,) = policy["Properties"]["ResourcePolicy"]["Statement"]
    assert deny["Effect"] == "Deny" and deny["Principal"] == {"AWS": "*"}
    assert set(deny["Action"]) == {
        "secretsmanager:GetSecretValue",
        "secretsmanager:PutSecretValue",
    }
    assert deny["Condition"] == {
        "StringNotEquals": {"aws:PrincipalArn": {"Fn::GetAtt": [role_id, "Arn"]}}
    }
    # The builder may; no other role of the stack is granted the secret at all.
    readers: set[str] = set()
    for policy_resource in created.of_type("AWS::IAM::Policy").values():
        for st in policy_resource["Properties"]["PolicyDocument"]["Statement"]:
            if {"Ref": secret_id} in as_list(st.get("Resource", [])):
                readers.update(json.dumps(r) for r in policy_resource["Properties"]["Roles"])
    assert readers == {json.dumps({"Ref": role_id})}
    # CloudFormation's value holds no key: the first build creates it.
    secret = created.resources[secret_id]["Properties"]
    assert "private_key" not in secret["SecretString"]


def test_the_functions_learn_the_cache(created: Synth, synth: Synth) -> None:
    (secret_id,) = created.of_type("AWS::SecretsManager::Secret")
    function = next(
        f
        for f in created.of_type("AWS::Lambda::Function").values()
        if f["Properties"].get("Handler") == "lambdas.bootstrap.handler"
    )
    variables = function["Properties"]["Environment"]["Variables"]
    assert variables[ENV_SIGNING_KEY_SECRET] == {"Ref": secret_id}
    assert "build-cache" in json.dumps(variables[ENV_BUILD_CACHE_URL])
    # Off by default: no bucket, no secret, empty settings.
    assert not synth.of_type("AWS::SecretsManager::Secret")
    default = next(
        f
        for f in synth.of_type("AWS::Lambda::Function").values()
        if f["Properties"].get("Handler") == "lambdas.bootstrap.handler"
    )
    assert default["Properties"]["Environment"]["Variables"][ENV_BUILD_CACHE_URL] == ""


def test_a_bad_setting_names_the_key() -> None:
    with pytest.raises(SettingsError, match="petal:buildCache"):
        PetalSettings.from_mapping(
            {"vpcId": TEST_VPC, "subnetIds": list(TEST_SUBNETS), "buildCache": "s3://x/y"}
        )


# The default template's scans (test_checkov, test_checkers) run in `make test`; this one,
# of the template with a cache, in `make test-all` (CI).
@pytest.mark.slow
def test_checkov_and_cfn_lint_accept_the_cache(created: Synth) -> None:
    template = created.outdir / f"{created.stack.artifact_id}.template.json"
    report = run_checkov(template)
    failed = report.get("results", {}).get("failed_checks", [])
    assert [f"{f['check_id']} {f['resource']}" for f in failed] == []
    skipped = {
        (f["check_id"], f["resource"].split(".", 1)[1])
        for f in report.get("results", {}).get("skipped_checks", [])
    }
    secret_id = next(iter(created.of_type("AWS::SecretsManager::Secret")))
    # Each of the cache's acknowledgments matches a finding: none is stale.
    for logical_id in (secret_id, cache_bucket_id(created)):
        for skip in created.resources[logical_id]["Metadata"]["checkov"]["skip"]:
            assert (skip["id"], logical_id) in skipped
    lint = subprocess.run(
        [tool("cfn-lint"), "--ignore-checks", "W3005", "--", str(template)],
        env=tool_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr
