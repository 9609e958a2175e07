"""How commands speak: JSON for scripts, plain lines or rich text for people, and the
exit codes are petal.errors' (listed in `petal --help` and README.md).

Text a builder, a registry or a seed wrote goes through `terminal_safe` before it is
printed for people (petal.text says why); JSON escapes control characters itself."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, TextIO

from petal.text import terminal_safe

__all__ = [
    "add_json_flag",
    "error",
    "is_terminal",
    "print_json",
    "terminal_safe",
]


def print_json(data: Any, stream: TextIO | None = None) -> None:
    json.dump(data, stream or sys.stdout, indent=2, sort_keys=False, default=str)
    (stream or sys.stdout).write("\n")


def error(message: str) -> None:
    """One clear line on stderr; commands return an exit code instead of raising."""
    sys.stderr.write(f"petal: error: {message}\n")


def is_terminal(stream: TextIO | None = None) -> bool:
    return (stream or sys.stdout).isatty()


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    """`--json` on a subcommand. SUPPRESS keeps argparse from letting the subcommand's
    default overwrite a `--json` given to its parent (`petal build --json list`)."""
    parser.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="machine-readable output"
    )
