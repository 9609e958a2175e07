"""Synthesis: the Python app (the session fixture) and the real CDK CLI."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from petal.deployment_contract import STEP_FUNCTIONS
from tests.infra.conftest import REPO_ROOT, TEST_SUBNETS, TEST_VPC, Synth, npx, tool_env


def test_python_synth_writes_the_stack_template(synth: Synth) -> None:
    assert (synth.outdir / "petal.template.json").is_file()
    assert synth.stack.stack_name == "petal"
    # Region fixed by context, account left to the deploying credentials.
    assert synth.stack.region == "us-east-1"
    assert synth.stack.resolve(synth.stack.account) == {"Ref": "AWS::AccountId"}
    assert len(synth.function_ids()) == len(STEP_FUNCTIONS) + 5


@pytest.mark.slow
def test_cdk_cli_synth(tmp_path: Path) -> None:
    """The real CLI, reading cdk.json, as `cdk deploy` would run the app."""
    env = tool_env()
    env["CDK_DISABLE_CLI_TELEMETRY"] = "true"
    command = [
        npx(),
        "--no-install",
        "cdk",
        "synth",
        "--quiet",
        "--no-notices",
        "--output",
        str(tmp_path),
        "-c",
        f"petal:vpcId={TEST_VPC}",
        "-c",
        f"petal:subnetIds={','.join(TEST_SUBNETS)}",
    ]
    result = subprocess.run(
        command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stdout + result.stderr
    template = json.loads((tmp_path / "petal.template.json").read_text())
    assert "AWS::StepFunctions::StateMachine" in {r["Type"] for r in template["Resources"].values()}
    # Warnings a reviewer would have to read past: there should be none.
    assert "WARNING" not in result.stdout + result.stderr
