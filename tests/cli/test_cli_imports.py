"""Commands import only what they use: `petal --help` and `petal seed validate` never
load the AWS SDK, rich or the emulator (their start-up time is printed by
benchmarks/cli_startup.py; this checks the cause, which does not depend on the machine)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("boto3", "botocore", "rich", "moto", "aws_lambda_powertools")
PROBE = """
import contextlib, io, json, sys
from petal.cli.main import main
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    try:
        code = main(sys.argv[1:])
    except SystemExit as exited:
        code = exited.code
print(json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""


def loaded_by(*argv: str) -> tuple[int, set[str]]:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, *argv],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    report = json.loads(result.stdout.strip().splitlines()[-1])
    return int(report["code"]), set(report["modules"])


def packages(modules: set[str]) -> set[str]:
    return {name.split(".")[0] for name in modules}


@pytest.mark.parametrize(
    "argv",
    [
        ("--help",),
        ("seed", "validate", "seeds/bioinformatics.yaml"),
        ("seed", "fingerprint", "seeds/bioinformatics.yaml"),
        ("seed", "render", "seeds/bioinformatics.yaml"),
    ],
)
def test_commands_without_aws_load_no_aws_sdk_rich_or_emulator(argv: tuple[str, ...]) -> None:
    code, modules = loaded_by(*argv)
    assert code == 0
    assert packages(modules).isdisjoint(HEAVY), sorted(packages(modules) & set(HEAVY))


def test_only_the_command_that_runs_is_loaded() -> None:
    code, modules = loaded_by("bake", "--help")  # an alias names its command too
    assert code == 0
    assert "petal.cli.build_commands" in modules
    assert "petal.cli.create_command" not in modules
