"""Synthesize the petal app once per test session (per xdist worker) and share it.

The app is built the way `cdk synth` builds it: the context of cdk.json, plus the
network settings cdk.json leaves for the operator (given here as fixed test values).
cdk-nag runs as part of that synth, so an unacknowledged finding fails every test
that uses the fixture, with the report in the error.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

REPO_ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent

TEST_VPC = "vpc-0123456789abcdef0"
TEST_SUBNETS = ("subnet-0123456789abcdef0", "subnet-0fedcba9876543210")
TEST_TRUSTED_ACCOUNTS = ("111111111111", "222222222222")
# What the tests set on top of cdk.json.
TEST_CONTEXT: dict[str, Any] = {
    "petal:vpcId": TEST_VPC,
    "petal:subnetIds": ",".join(TEST_SUBNETS),
    "petal:trustedAccounts": list(TEST_TRUSTED_ACCOUNTS),
}


def cdk_json_context() -> dict[str, Any]:
    context: dict[str, Any] = json.loads((REPO_ROOT / "cdk.json").read_text())["context"]
    return context


def tool(name: str) -> str:
    """A command-line tool from the venv or PATH; a missing tool fails the test."""
    candidate = VENV_BIN / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if not found:
        pytest.fail(f"{name} is not installed (run `make setup-dev`)")
    return found


def npx() -> str:
    found = shutil.which("npx")
    if not found:
        pytest.fail("npx (Node.js) is not installed")
    if not (REPO_ROOT / "node_modules" / ".bin" / "cdk").exists():
        pytest.fail("node_modules is missing the cdk CLI (run `npm ci`)")
    return found


def tool_env() -> dict[str, str]:
    """Environment for subprocesses: the venv's python first on PATH, Node quiet."""
    env = dict(os.environ)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env["JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION"] = "20"
    env["CDK_DISABLE_VERSION_CHECK"] = "1"
    env.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    return env


@dataclass(frozen=True)
class Synth:
    outdir: Path
    stack: Any  # stacks.petal_stack.PetalStack
    template: dict[str, Any]

    @property
    def resources(self) -> dict[str, dict[str, Any]]:
        resources: dict[str, dict[str, Any]] = self.template["Resources"]
        return resources

    def of_type(self, cfn_type: str) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.resources.items() if v["Type"] == cfn_type}

    def function_ids(self) -> dict[str, str]:
        """Handler module -> logical id of petal's function running it."""
        ids: dict[str, str] = {}
        for logical_id, res in self.of_type("AWS::Lambda::Function").items():
            handler = res["Properties"].get("Handler", "")
            if handler.startswith("lambdas.") and handler.endswith(".handler"):
                ids[handler.removeprefix("lambdas.").removesuffix(".handler")] = logical_id
        return ids


def synthesize(outdir: Path, extra_context: Mapping[str, Any] | None = None) -> Synth:
    from aws_cdk import App

    from stacks.app_builder import build_app

    context = {**cdk_json_context(), **TEST_CONTEXT, **(extra_context or {})}
    app = App(outdir=str(outdir), context=context)
    stack = build_app(app)
    app.synth()
    template = json.loads((outdir / f"{stack.artifact_id}.template.json").read_text())
    return Synth(outdir=outdir, stack=stack, template=template)


@pytest.fixture(scope="session")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Synth]:
    yield synthesize(tmp_path_factory.mktemp("cdk-out"))
