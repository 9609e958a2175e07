"""The offline checkers: cfn-lint, asl-validator and shellcheck, run as tests.

A missing tool fails its test: these checks are part of every test run, not optional.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from petal.build.definition import PLACEHOLDER
from tests.infra.conftest import REPO_ROOT, Synth, npx, tool, tool_env

STATE_MACHINES = sorted((REPO_ROOT / "statemachines").glob("*.json"))
SHELL_SCRIPTS = sorted(
    [*(REPO_ROOT / "ssm_documents").glob("*.sh"), *(REPO_ROOT / "stacks" / "assets").glob("*.sh")]
)


def run(command: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, cwd=REPO_ROOT, env=tool_env(), capture_output=True, text=True, timeout=300
    )


def test_cfn_lint_passes_on_the_synthesized_templates(synth: Synth) -> None:
    templates = sorted(synth.outdir.glob("*.template.json"))
    assert templates
    # W3005 (DependsOn already implied by a reference) is CDK's doing, not ours.
    result = run([tool("cfn-lint"), "--ignore-checks", "W3005", "--", *map(str, templates)])
    hint = ""
    if "'OutputPath' was unexpected" in result.stdout:
        hint = (
            "\nHint: cfn-lint's state machine schema has no InputPath/OutputPath on Succeed "
            'states; a Pass state with the same OutputPath and "End": true ends the '
            "execution with the same output and passes."
        )
    assert result.returncode == 0, result.stdout + result.stderr + hint


def test_there_are_state_machines_and_scripts_to_check() -> None:
    assert STATE_MACHINES, "statemachines/ holds no definition"
    assert (REPO_ROOT / "stacks" / "assets" / "petal-node-setup.sh") in SHELL_SCRIPTS


def validate_asl(path: Path) -> None:
    result = run([npx(), "--no-install", "asl-validator", "--json-path", str(path)])
    assert result.returncode == 0, f"{path.name}: {result.stdout}{result.stderr}"


def deployable_definition(text: str) -> str:
    """The definition as Step Functions receives it, with stand-ins for the values.

    CloudFormation substitutes `${Name}` textually: a bare placeholder becomes a
    number, one inside a string a name or ARN.
    """
    quote = re.compile(r'(?<!\\)"')

    def stand_in(match: re.Match[str]) -> str:
        inside_string = len(quote.findall(text, 0, match.start())) % 2 == 1
        if not inside_string:
            return "60"
        name = match.group(1)
        if name.endswith("Arn"):
            return f"arn:aws:lambda:us-east-1:123456789012:function:petal-{name}"
        return f"petal-{name}"

    return PLACEHOLDER.sub(stand_in, text)


@pytest.mark.parametrize("path", STATE_MACHINES, ids=lambda p: p.name)
def test_asl_validator_accepts_the_definition(path: Path, tmp_path: Path) -> None:
    text = path.read_text()
    try:
        json.loads(text)
    except json.JSONDecodeError:
        # Bare numeric placeholders make the file itself invalid JSON; what matters
        # is the definition Step Functions gets, checked below.
        pass
    else:
        validate_asl(path)
    rendered = tmp_path / path.name
    rendered.write_text(deployable_definition(text))
    json.loads(rendered.read_text())
    validate_asl(rendered)


def test_asl_validator_rejects_a_dangling_transition(tmp_path: Path) -> None:
    bad = tmp_path / "bad.asl.json"
    bad.write_text(json.dumps({"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "B"}}}))
    result = run([npx(), "--no-install", "asl-validator", "--json-path", str(bad)])
    assert result.returncode != 0
    assert "MISSING_TRANSITION_TARGET" in result.stdout + result.stderr


@pytest.mark.parametrize("path", SHELL_SCRIPTS, ids=lambda p: p.name)
def test_shellcheck(path: Path) -> None:
    result = run([tool("shellcheck"), str(path)])
    assert result.returncode == 0, result.stdout + result.stderr
