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


def test_an_emulator_stopped_during_a_command_is_named_not_its_connection_error(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from botocore.exceptions import EndpointConnectionError

    from petal.aws.errors import RetryableAwsError
    from petal.cli.main import dispatch
    from petal.local.deploy import STACK_NAME

    # What `petal --local` set before the command ran (petal.local.mode.activate).
    monkeypatch.setenv("PETAL_STACK_NAME", STACK_NAME)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")

    def emulator_killed(args: object) -> int:
        unanswered = EndpointConnectionError(endpoint_url="http://127.0.0.1:9/")
        raise RetryableAwsError(f"DynamoDB GetItem failed: {unanswered}") from unanswered

    args = build_parser(["build", "list"]).parse_args(["build", "list"])
    args.func = emulator_killed
    assert dispatch(args) == 1
    err = capsys.readouterr().err
    assert err.startswith("petal: error: the local AWS emulator stopped answering")
    assert "petal local status" in err
    assert "Could not connect" not in err
