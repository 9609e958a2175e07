"""The documented `aws stepfunctions start-execution` input is the JSON `petal build`
sends, and both are build requests as petal/schemas/build_request.schema.json says.

The CLI's input is read back from the execution it started (DescribeExecution); the
README's inputs are taken from its "Deploy to AWS" section, placeholders filled in,
and started on the emulated state machine like any user would.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from petal.build.request import (
    BuildRequest,
    build_request_schema,
    parse_build_request,
    resolve_seed,
)
from petal.cli import build_watch
from petal.cli.main import main
from petal.deployment_contract import OUTPUT_SEED_BUCKET, OUTPUT_STATE_MACHINE_ARN
from petal.local.deploy import STACK_NAME
from petal.local.emulator import LocalAws
from petal.local.server import publish_stack

REPO = Path(__file__).resolve().parents[2]
SEED = "seeds/testing/workload-basic.yaml"
README = REPO / "README.md"

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")


def schema_errors(document: Any) -> list[str]:
    validator = jsonschema.Draft202012Validator(build_request_schema())
    return [error.message for error in validator.iter_errors(document)]


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[LocalAws]:
    monkeypatch.chdir(REPO)
    monkeypatch.setenv("PETAL_CONFIG", str(tmp_path / "no-petal-config.yaml"))
    for name in ("PETAL_STACK_NAME", "PETAL_REGION", "AWS_PROFILE", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(build_watch, "POLL_SECONDS", 0.05)
    with LocalAws(REPO) as local:
        yield local


# --- what the CLI sends -------------------------------------------------------------------


def test_the_cli_sends_a_schema_valid_build_request_of_the_seed_as_written(
    aws: LocalAws, capsys: pytest.CaptureFixture[str]
) -> None:
    publish_stack(aws)
    where = ["--stack-name", STACK_NAME, "--region", "us-east-1"]
    assert main(["build", "--seed", SEED, "--detach", "--json", *where]) == 0
    [build_id] = json.loads(capsys.readouterr().out)["started"]
    sfn = aws.client("stepfunctions")
    [listed] = sfn.list_executions(stateMachineArn=aws.deployment.state_machine_arn)["executions"]
    execution = sfn.describe_execution(executionArn=listed["executionArn"])
    sent = json.loads(execution["input"])

    assert schema_errors(sent) == []
    assert execution["name"] == build_id
    assert (
        sent
        == BuildRequest(
            seed=yaml.safe_load((REPO / SEED).read_text()),
            seed_uri=None,
            seed_version_id=None,
            force=False,
            build_id=build_id,
            os="alinux2023",
            architecture="x86_64",
            source=f"cli:{SEED}",
        ).to_document()
    )
    # Exactly what a user would type: the seed file's YAML as JSON, nothing derived.
    assert sent["seed"] == yaml.safe_load((REPO / SEED).read_text())
    assert aws.wait(listed["executionArn"]).status == "SUCCEEDED"


# --- what the README documents ------------------------------------------------------------


def deploy_section() -> str:
    text = README.read_text(encoding="utf-8")
    match = re.search(r"^## Deploy to AWS\n(.*?)(?=^## |\Z)", text, re.MULTILINE | re.DOTALL)
    assert match, "README.md has no '## Deploy to AWS' section"
    return match.group(1)


def documented_start_executions() -> list[list[str]]:
    """Each `aws stepfunctions start-execution` command of the section, as argv."""
    commands = []
    for block in re.findall(r"^```[a-z]*\n(.*?)^```", deploy_section(), re.MULTILINE | re.DOTALL):
        joined = re.sub(r"\\\n\s*", " ", block)  # backslash line continuations
        for line in joined.splitlines():
            if "start-execution" in line and not line.lstrip().startswith("#"):
                commands.append(shlex.split(line))
    return commands


def documented_inputs() -> list[str]:
    inputs = []
    for argv in documented_start_executions():
        assert argv[:3] == ["aws", "stepfunctions", "start-execution"], argv
        assert "--state-machine-arn" in argv, argv
        assert "--input" in argv, f"a start-execution without --input: {argv}"
        inputs.append(argv[argv.index("--input") + 1])
    return inputs


def fill_placeholders(text: str, outputs: dict[str, str]) -> str:
    filled = re.sub(r"<([A-Za-z]+)>", lambda m: outputs.get(m.group(1), m.group(0)), text)
    assert not re.search(r"<[A-Za-z]+>", filled), f"unknown placeholder in {text}"
    return filled


def test_the_readme_documents_both_forms_of_the_input() -> None:
    inputs = [
        json.loads(fill_placeholders(i, {"SeedBucketName": "b-1"})) for i in documented_inputs()
    ]
    assert any("seed_uri" in i for i in inputs), "no start-execution with a seed_uri"
    assert any("seed" in i for i in inputs), "no start-execution with an inline seed"


def test_every_documented_input_is_a_valid_build_request() -> None:
    inputs = documented_inputs()
    assert inputs
    for text in inputs:
        document = json.loads(
            fill_placeholders(text, {"SeedBucketName": "petal-seeds-123456789012"})
        )
        assert schema_errors(document) == [], text
        request = parse_build_request(document)
        if request.seed is not None:
            # The inline seed is one Prepare accepts, with the variant's overrides.
            seed = resolve_seed(request, lambda bucket, key, version: b"")
            assert (seed.os, seed.architecture) == (
                request.os or seed.os,
                request.architecture or seed.architecture,
            )


def test_every_documented_start_execution_builds_on_the_emulated_stack(aws: LocalAws) -> None:
    outputs = {
        OUTPUT_STATE_MACHINE_ARN: aws.deployment.state_machine_arn,
        OUTPUT_SEED_BUCKET: aws.deployment.seed_bucket,
    }
    # The seed the README copies to the bucket first (`aws s3 cp my-seed.yaml ...`).
    section = deploy_section()
    for key in sorted(set(re.findall(r"s3://<SeedBucketName>/(seeds/[\w.-]+\.ya?ml)", section))):
        aws.upload_seed(key, (REPO / SEED).read_bytes(), deliver=False)
    sfn = aws.client("stepfunctions")
    argvs = documented_start_executions()
    assert argvs
    for index, argv in enumerate(argvs):
        argv = [fill_placeholders(arg, outputs) for arg in argv]
        started = sfn.start_execution(
            stateMachineArn=argv[argv.index("--state-machine-arn") + 1],
            name=f"readme-example-{index}",
            input=argv[argv.index("--input") + 1],
        )
        result = aws.wait(started["executionArn"])
        assert result.status == "SUCCEEDED", (argv, result.error, result.cause)
        record = aws.table.get_build(f"readme-example-{index}")
        assert record is not None
        assert record.status in ("SUCCEEDED", "REUSED")
        document = json.loads(argv[argv.index("--input") + 1])
        assert record.os == document.get("os", record.os)
        assert record.architecture == document.get("architecture", record.architecture)
