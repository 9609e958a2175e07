"""Entry point of the `petal` command: global options, then one command group."""

from __future__ import annotations

import argparse
import difflib
import sys
from collections.abc import Sequence

from petal.cli.commands import COMMANDS, command
from petal.cli.output import error, print_json
from petal.errors import EXIT_FAILURE, EXIT_INTERRUPTED, PetalError

DESCRIPTION = """\
Build a Spack software stack once onto an EBS snapshot, then create AWS ParallelCluster
clusters from it in minutes. Start with `petal seed validate seeds/bioinformatics.yaml`.
"""
EPILOG = """\
exit codes: 0 success, 1 not found in AWS or the operation failed, 2 invalid input
(a seed file missing or invalid, a flag or a config file); 130 interrupted.
"""


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser; given the command line, only the command it names is defined in full
    (its module imported), the others by name and help for the listing."""
    parser = argparse.ArgumentParser(
        prog="petal",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--local",
        action="store_true",
        help="run against an AWS emulator on this machine instead of AWS: no account "
        "needed, builders are simulated (see `petal local --help`)",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    named = _named_command(argv) if argv is not None else None
    for entry in COMMANDS:
        if argv is None or entry.name == named:
            entry.register(subparsers)
        else:
            entry.add_parser(subparsers, add_help=False)
    return parser


def _named_command(argv: Sequence[str]) -> str | None:
    """The command the line runs: the first word that is not an option (the global
    options take no value)."""
    for word in argv:
        if word == "--":
            return None
        if not word.startswith("-"):
            try:
                return command(word).name
            except KeyError:
                return None  # argparse names the valid choices
    return None


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(arguments)
    problem = option_problem(parser, arguments)
    if problem:
        parser.error(problem)  # exits 2 with the usage, as argparse's own errors do
    return dispatch(parser.parse_args(arguments))


def option_problem(parser: argparse.ArgumentParser, argv: Sequence[str]) -> str | None:
    """An option no command has, or a global option after the command: argparse would
    report the first as a missing or invalid command and the second as unrecognized."""
    everywhere = _long_options(parser)
    global_only = _long_options(parser, recurse=False) - _long_options_below(parser)
    command_seen = False
    for word in argv:
        if word == "--":
            break
        if not word.startswith("--"):
            command_seen = command_seen or not word.startswith("-")
            continue
        name = word.split("=", 1)[0]
        if name in global_only and command_seen:
            return (
                f"{name} is a global option: put it before the command, "
                f"e.g. petal {name} build list"
            )
        if not any(option.startswith(name) for option in everywhere):
            close = difflib.get_close_matches(name, sorted(everywhere), n=1, cutoff=0.75)
            return f"unknown option {name}" + (f" (did you mean {close[0]}?)" if close else "")
    return None


def _subparsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    return [
        sub
        for action in parser._actions
        if isinstance(action, argparse._SubParsersAction)
        for sub in action.choices.values()
    ]


def _long_options(parser: argparse.ArgumentParser, *, recurse: bool = True) -> set[str]:
    own = {o for a in parser._actions for o in a.option_strings if o.startswith("--")}
    if recurse:
        for sub in _subparsers(parser):
            own |= _long_options(sub)
    return own


def _long_options_below(parser: argparse.ArgumentParser) -> set[str]:
    below: set[str] = set()
    for sub in _subparsers(parser):
        below |= _long_options(sub)
    return below


def dispatch(args: argparse.Namespace) -> int:
    """Run the chosen command. The one place expected failures become a message on
    stderr (and, given --json, the error's document on stdout) and an exit code: never
    a traceback."""
    try:
        if getattr(args, "local", False) and not getattr(args, "without_emulator", False):
            from petal.local.mode import activate  # the emulator's code, only when asked

            activate()
        code: int = args.func(args)
    except PetalError as failure:
        if _emulator_stopped(failure):
            return _report_emulator_stopped()
        document = failure.json_document() if getattr(args, "json", False) else None
        if document is not None:
            print_json(document)
            if failure.json_replaces_message:
                return failure.exit_code
        if failure.is_report:
            sys.stderr.write(f"{_as_invoked(str(failure))}\n")
        else:
            error(_as_invoked(str(failure)))
        return failure.exit_code
    except KeyboardInterrupt:
        error("interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # `petal ... | head` closing the pipe early is not an error worth a traceback.
        sys.stderr.close()
        return 0
    except Exception as failure:
        if not _is_aws_failure(failure):
            raise
        if _emulator_stopped(failure):
            return _report_emulator_stopped()
        error(f"AWS request failed: {failure}")
        return EXIT_FAILURE
    return code


def _as_invoked(message: str) -> str:
    """The message with the commands it suggests as this invocation would type them.
    Only local mode changes them, and then the emulator's module is loaded already."""
    if "petal.local.mode" not in sys.modules:
        return message
    from petal.cli.hints import in_text

    return in_text(message)


def _emulator_stopped(failure: BaseException) -> bool:
    """In local mode, a request the emulator did not answer: it was stopped or killed
    while this command ran (its address is this command's AWS endpoint)."""
    if "botocore" not in sys.modules or "petal.local.mode" not in sys.modules:
        return False
    from botocore.exceptions import EndpointConnectionError

    from petal.local import mode as local_mode

    cause: BaseException | None = failure
    while cause is not None:
        if isinstance(cause, EndpointConnectionError):
            return local_mode.is_active()
        cause = cause.__cause__
    return False


def _report_emulator_stopped() -> int:
    error(
        "the local AWS emulator stopped answering: it was stopped or killed while this "
        "command ran, and its builds and snapshots went with it. `petal local status` "
        "shows it; run the command again to start a fresh one."
    )
    return EXIT_FAILURE


def _is_aws_failure(failure: Exception) -> bool:
    """A failed or unreadable AWS request. botocore is imported only by commands that
    call AWS: if it is not loaded, the failure cannot be one of its errors."""
    if "botocore" not in sys.modules:
        return False
    from botocore.exceptions import BotoCoreError, ClientError
    from botocore.parsers import ResponseParserError

    return isinstance(failure, ClientError | BotoCoreError | ResponseParserError)


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":
    run()
