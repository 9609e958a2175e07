"""`petal local status | stop`: the AWS emulator behind `petal --local`."""

from __future__ import annotations

import argparse

from petal.errors import EXIT_OK
from petal.local.mode import running_server, state_dir, stop_server


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    local = subparsers.add_parser(
        "local",
        help="the local AWS emulator used by `petal --local ...`",
        description="`petal --local COMMAND` runs COMMAND against an AWS emulator (moto) on "
        "this machine: the same state machine, handlers and SSM document as the deployed "
        "stack, with a simulated builder that installs nothing. The emulator starts on "
        "first use, keeps its state between commands and stops after an idle hour.",
    )
    commands = local.add_subparsers(dest="local_command", metavar="COMMAND", required=True)
    status = commands.add_parser("status", help="is the emulator running, and where")
    status.set_defaults(func=_status, without_emulator=True)
    stop = commands.add_parser("stop", help="stop the emulator (its state is discarded)")
    stop.set_defaults(func=_stop, without_emulator=True)


def _status(args: argparse.Namespace) -> int:
    server = running_server()
    if server is None:
        print(f"not running (state directory {state_dir()})")
    else:
        print(f"running at {server.endpoint} (pid {server.pid}, state {server.state_dir})")
    return EXIT_OK


def _stop(args: argparse.Namespace) -> int:
    print("stopped" if stop_server() else "not running")
    return EXIT_OK
