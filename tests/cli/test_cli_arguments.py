"""Argument mistakes get messages that say what to type instead."""

from __future__ import annotations

import pytest

from petal.cli.main import build_parser, main, option_problem


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--bogus"], "petal: error: unknown option --bogus\n"),
        (["build", "--sede", "seed.yaml"], "unknown option --sede (did you mean --seed?)"),
        (["seed", "validate", "--jsn", "x.yaml"], "unknown option --jsn (did you mean --json?)"),
        (
            ["build", "list", "--local"],
            "--local is a global option: put it before the command, e.g. petal --local build",
        ),
    ],
)
def test_a_mistaken_option_exits_2_saying_what_to_type(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.startswith("usage: petal")


@pytest.mark.parametrize(
    "argv",
    [
        ["--local", "build", "list", "--help"],
        ["build", "--seed", "x.yaml", "--det", "--help"],  # an abbreviation argparse takes
    ],
)
def test_known_options_and_their_abbreviations_pass(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 0  # --help


def test_what_follows_a_double_dash_is_not_an_option() -> None:
    argv = ["seed", "validate", "--", "--odd-file-name.yaml"]
    assert option_problem(build_parser(), argv) is None
