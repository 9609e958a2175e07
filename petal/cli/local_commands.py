"""`petal local status | stop`: the AWS emulator behind `petal --local`."""

from __future__ import annotations

import argparse
import time
from datetime import datetime
from typing import Any

from petal.cli.commands import command
from petal.cli.output import add_json_flag, print_json
from petal.errors import EXIT_OK
from petal.local.mode import (
    ENV_LOCAL_DIR,
    forget_previous,
    previous_end,
    running_server,
    state_dir,
    stop_server,
)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    local = command("local").add_parser(
        subparsers,
        description="`petal --local COMMAND` runs COMMAND against an AWS emulator (moto) on "
        "this machine: the same state machine, handlers and SSM document as the deployed "
        "stack, with a simulated builder that installs nothing. The emulator starts on "
        "first use, keeps its state in memory between commands and stops on `petal local "
        f"stop` or after an idle hour. ${ENV_LOCAL_DIR} (default "
        "~/.local/state/petal/local) is where a command finds its emulator: one emulator "
        "per directory, and these commands act on that one only.",
    )
    commands = local.add_subparsers(dest="local_command", metavar="COMMAND", required=True)
    status = commands.add_parser(
        "status", help="is the emulator running: its pid, address, start time and directory"
    )
    add_json_flag(status)
    status.set_defaults(func=_status, without_emulator=True)
    stop = commands.add_parser(
        "stop", help="stop this state directory's emulator (its builds are discarded)"
    )
    stop.set_defaults(func=_stop, without_emulator=True)


def _status(args: argparse.Namespace) -> int:
    directory = state_dir()
    server = running_server(directory)
    ended = None if server is not None else previous_end(directory)
    if getattr(args, "json", False):
        document: dict[str, Any] = {"running": server is not None, "state_dir": str(directory)}
        if server is not None:
            document |= {
                "pid": server.pid,
                "endpoint": server.endpoint,
                "started_at": datetime.fromtimestamp(server.started_at).astimezone().isoformat(),
            }
        if ended is not None:
            document["previous_end"] = ended
        print_json(document)
        return EXIT_OK
    if server is None:
        print(f"The local AWS emulator is not running (state directory {directory}).")
        if ended is not None:
            print(f"Before: {ended}")
        print("The next `petal --local COMMAND` starts it.")
        return EXIT_OK
    started = datetime.fromtimestamp(server.started_at)
    print(f"The local AWS emulator is running at {server.endpoint} (pid {server.pid}).")
    print(f"  started:         {started:%Y-%m-%d %H:%M:%S} ({_ago(server.started_at)} ago)")
    print(f"  state directory: {directory} (${ENV_LOCAL_DIR})")
    print(
        "Its builds and snapshots live in its memory until it stops: "
        "`petal local stop` stops it, and so does an idle hour."
    )
    return EXIT_OK


def _stop(args: argparse.Namespace) -> int:
    directory = state_dir()
    server = stop_server(directory)
    if server is not None:
        print(
            f"Stopped the local AWS emulator (pid {server.pid}) of {directory}; its builds "
            "and snapshots are discarded. The next `petal --local COMMAND` starts a fresh one."
        )
        return EXIT_OK
    ended = previous_end(directory)
    print(f"The local AWS emulator of {directory} is not running; nothing to stop.")
    if ended is not None:
        print(f"Before: {ended}")
        forget_previous(directory)  # reported here: the next command need not repeat it
    return EXIT_OK


def _ago(epoch_seconds: float) -> str:
    seconds = max(0, int(time.time() - epoch_seconds))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"
