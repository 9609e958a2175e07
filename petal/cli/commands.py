"""The `petal` commands: name, aliases, one-line help and the module that defines it.

`petal --help` lists every command from this table alone, and a run imports only the
module of the command it runs: `petal --help` and `petal seed validate` never pay for
boto3, rich or the emulator, which other commands need.
"""

from __future__ import annotations

import argparse
import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    SubParsers = argparse._SubParsersAction[argparse.ArgumentParser]


@dataclass(frozen=True)
class Command:
    name: str
    module: str
    help: str
    aliases: tuple[str, ...] = ()

    def add_parser(self, subparsers: SubParsers, **options: Any) -> argparse.ArgumentParser:
        """The command's parser, named and summarised as the table says."""
        parser: argparse.ArgumentParser = subparsers.add_parser(
            self.name, aliases=list(self.aliases), help=self.help, **options
        )
        return parser

    def register(self, subparsers: SubParsers) -> None:
        """Its full parser: the module's own register()."""
        importlib.import_module(self.module).register(subparsers)


COMMANDS: Final[tuple[Command, ...]] = (
    Command(
        "seed",
        "petal.cli.seed_commands",
        "check a seed file: validate it, print its fingerprint or its Spack environment",
    ),
    Command(
        "build",
        "petal.cli.build_commands",
        "build a software volume (EBS snapshot) from a seed, and manage builds",
        aliases=("bake",),
    ),
    Command(
        "create",
        "petal.cli.create_command",
        "create a ParallelCluster cluster from a seed's software snapshot",
    ),
    Command(
        "cluster",
        "petal.cli.cluster_commands",
        "what petal created for a cluster: the software volume's initialization",
    ),
    Command(
        "registry",
        "petal.cli.registry_commands",
        "browse the snapshot registry (pre-built software volumes)",
    ),
    Command(
        "local", "petal.cli.local_commands", "the local AWS emulator used by `petal --local ...`"
    ),
    Command(
        "admin",
        "petal.cli.admin_commands",
        "operate the deployed stack: replay the dead-letter queues (redrive)",
    ),
)


def command(name: str) -> Command:
    """The table's entry for `name` (or one of its aliases)."""
    for entry in COMMANDS:
        if name == entry.name or name in entry.aliases:
            return entry
    raise KeyError(name)
