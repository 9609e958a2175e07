"""`petal seed ...` as a user runs it: exit codes, messages, JSON, no tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from petal.cli.main import main
from petal.seed.fingerprint import FORMAT_VERSION

REPO = Path(__file__).resolve().parents[2]
GOOD = str(REPO / "seeds/bioinformatics.yaml")
BAD = str(REPO / "tests/data/bad_seeds/spec-semicolon.yaml")


def test_validate_good_seed(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["seed", "validate", GOOD]) == 0
    out = capsys.readouterr().out
    assert "valid (bioinformatics, 4 packages, sha256:" in out


def test_validate_bad_seed_exits_2_with_file_line_and_field(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["seed", "validate", BAD]) == 2
    err = capsys.readouterr().err
    assert f"{BAD}:5: software.packages[0]: " in err
    assert "unexpected ';'" in err


def test_validate_several_files_fails_if_one_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["seed", "validate", GOOD, BAD, "--json"]) == 2
    results = json.loads(capsys.readouterr().out)
    assert [r["valid"] for r in results] == [True, False]
    assert results[1]["errors"][0] == {
        "line": 5,
        "path": "software.packages[0]",
        "message": results[1]["errors"][0]["message"],
    }
    assert results[0]["fingerprint"].startswith("sha256:")


def test_validate_prints_warnings_and_still_passes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seed = tmp_path / "dup.yaml"
    seed.write_text("name: dup\nsoftware:\n  packages: [bwa, bwa]\n")
    assert main(["seed", "validate", str(seed)]) == 0
    err = capsys.readouterr().err
    assert f"{seed}:3: warning: software.packages[1]: 'bwa' repeats" in err


def test_a_rocky_seed_needs_a_builder_image(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seed = tmp_path / "rocky.yaml"
    seed.write_text("name: rocky\nsoftware:\n  packages: [bwa]\nos: rocky9\n")
    assert main(["seed", "validate", str(seed)]) == 2
    err = capsys.readouterr().err
    assert f"{seed}:4: os: rocky9 needs build.image: AWS publishes no official" in err
    assert "pcluster build-image" in err and "--builder-ami" in err
    assert "Traceback" not in err

    seed.write_text(seed.read_text() + "build:\n  image: ami-0123456789abcdef0\n")
    assert main(["seed", "validate", str(seed)]) == 0
    seed.write_text(seed.read_text().replace("ami-0123456789abcdef0", "rocky9-image"))
    assert main(["seed", "validate", str(seed)]) == 2
    assert f"{seed}:6: build.image: " in capsys.readouterr().err


def test_fingerprint_plain_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["seed", "fingerprint", GOOD]) == 0
    plain = capsys.readouterr().out.strip()
    assert plain.startswith("sha256:") and len(plain) == 71
    assert main(["seed", "fingerprint", GOOD, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["fingerprint"] == plain
    assert data["canonical_form"]["format"] == FORMAT_VERSION


def test_render_prints_spack_yaml(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["seed", "render", GOOD]) == 0
    assert "install_tree:" in capsys.readouterr().out
    assert main(["seed", "render", GOOD, "--json"]) == 0
    assert "spack:" in json.loads(capsys.readouterr().out)["spack_yaml"]


def test_render_refuses_a_bad_seed(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["seed", "render", BAD]) == 2
    assert "unexpected ';'" in capsys.readouterr().err


def test_missing_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["seed", "fingerprint", "/nonexistent/seed.yaml"]) == 2
    assert "cannot be read: No such file or directory" in capsys.readouterr().err


def test_installed_console_script_has_help() -> None:
    """The `petal` entry point as installed, in a real process: help and no traceback."""
    result = subprocess.run(
        [sys.executable, "-m", "petal", "seed", "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0
    for command in ("validate", "fingerprint", "render"):
        assert command in result.stdout


def test_usage_error_exits_2_without_traceback() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "petal", "seed", "frobnicate"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert "invalid choice" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_unreadable_aws_answer_is_one_line_not_a_traceback(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from botocore.parsers import ResponseParserError

    from petal.cli.main import build_parser, dispatch

    def answer_is_not_xml(args: object) -> int:
        raise ResponseParserError("Unable to parse response: 500 Internal Server Error")

    args = build_parser().parse_args(["seed", "validate", "x.yaml"])
    args.func = answer_is_not_xml
    assert dispatch(args) == 1
    err = capsys.readouterr().err
    assert (
        err
        == "petal: error: AWS request failed: Unable to parse response: 500 Internal Server Error\n"
    )
