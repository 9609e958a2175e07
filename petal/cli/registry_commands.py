"""`petal registry snapshots list | search | info | regions | check | update`.

These read the snapshot registry only (no AWS call): what a registry offers. Whether a
snapshot is actually usable from your account is decided by `petal create`, which
confirms every registry entry with EC2 first (docs/REGISTRY.md).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from petal.cli import hints
from petal.cli.commands import command
from petal.cli.output import error, is_terminal, print_json, terminal_safe
from petal.errors import EXIT_FAILURE, EXIT_INVALID, EXIT_OK, InvalidInput, PetalError
from petal.platforms import ARCHITECTURES, UnknownOperatingSystem, operating_system
from petal.registry.client import RegistryClient
from petal.registry.documents import EntryMetadata, IndexEntry, RegistryError, SnapshotVariant
from petal.seed.fingerprint import fingerprint
from petal.seed.loading import load_seed
from petal.user_config import UserConfig, UserConfigError, load_user_config


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    registry = command("registry").add_parser(
        subparsers,
        description="Browse a snapshot registry: which software stacks it offers, in "
        "which regions, for which OS and architecture. See docs/REGISTRY.md.",
    )
    groups = registry.add_subparsers(dest="registry_command", metavar="COMMAND", required=True)
    snapshots = groups.add_parser(
        "snapshots",
        help="list, search and inspect the registry's software stacks",
        description="Commands on the registry's snapshot index and stack metadata.",
    )
    commands = snapshots.add_subparsers(dest="snapshots_command", metavar="COMMAND", required=True)

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--registry-url",
        metavar="URL",
        help="registry base URL (default: PETAL_REGISTRY_URL, registry.url in "
        "~/.petal/config.yaml, else the official registry)",
    )
    common.add_argument("--json", action="store_true", help="machine-readable output")

    listing = commands.add_parser("list", parents=[common], help="list every stack")
    listing.set_defaults(func=_list)

    search = commands.add_parser(
        "search",
        parents=[common],
        help="find stacks whose name, description or packages contain TEXT",
    )
    search.add_argument("text", metavar="TEXT")
    search.set_defaults(func=_search)

    info = commands.add_parser("info", parents=[common], help="show one stack and its variants")
    info.add_argument("name", metavar="NAME")
    info.set_defaults(func=_info)

    regions = commands.add_parser(
        "regions", parents=[common], help="list the regions (and variants) of one stack"
    )
    regions.add_argument("name", metavar="NAME")
    regions.set_defaults(func=_regions)

    check = commands.add_parser(
        "check",
        parents=[common],
        help="does the registry have a snapshot for this seed? (exit 0 yes, 1 no)",
        description="Look the seed's fingerprint up in the registry. --region, --os and "
        "--arch narrow the variants (default: the seed's os and architecture).",
    )
    check.add_argument("--seed", required=True, metavar="FILE", help="seed YAML file")
    check.add_argument("--region", help="only variants in this region")
    check.add_argument("--os", help="operating system (default: the seed's)")
    check.add_argument("--arch", choices=ARCHITECTURES, help="architecture (default: the seed's)")
    check.set_defaults(func=_check)

    update = commands.add_parser(
        "update",
        parents=[common],
        help="refresh the local registry cache",
        description="Revalidate the cached index and every stack document now, whatever "
        "their age (conditional requests: unchanged documents are not downloaded again).",
    )
    update.set_defaults(func=_update)


# --- shared plumbing -----------------------------------------------------------------


class RegistryCommandFailed(PetalError):
    """A registry document could not be read or used; --json reports the registry too."""

    json_replaces_message = True

    def __init__(self, registry_url: str, failure: RegistryError) -> None:
        super().__init__(str(failure))
        self.registry_url = registry_url

    def json_document(self) -> dict[str, Any]:
        return {"registry": self.registry_url, "error": str(self)}


def _client(args: argparse.Namespace) -> RegistryClient:
    """The registry client of the user's settings and --registry-url."""
    try:
        config: UserConfig = load_user_config()
        if args.registry_url:
            config = config.with_registry_url(args.registry_url)
        return RegistryClient(
            config.registry.url,
            ttl_seconds=config.registry.cache_ttl_seconds,
            timeout=config.registry.timeout_seconds,
        )
    except (UserConfigError, RegistryError) as failure:
        raise InvalidInput(str(failure)) from failure


def _warn(client: RegistryClient) -> None:
    for warning in client.warnings:
        sys.stderr.write(f"petal: warning: {terminal_safe(str(warning))}\n")


def _index_entry_json(entry: IndexEntry) -> dict[str, Any]:
    return {
        "name": entry.name,
        "fingerprint": entry.fingerprint,
        "description": entry.description,
        "packages": list(entry.packages),
        "metadata_url": entry.metadata_url,
    }


def _variant_json(variant: SnapshotVariant) -> dict[str, Any]:
    return {
        "region": variant.region,
        "snapshot_id": variant.snapshot_id,
        "os": variant.os,
        "registry_os": operating_system(variant.os).registry_name,
        "architecture": variant.architecture,
        "size_gb": variant.size_gb,
        "aws_account": variant.aws_account,
        "description": variant.description,
    }


def _metadata_json(entry: EntryMetadata) -> dict[str, Any]:
    return {
        "name": entry.name,
        "description": entry.description,
        "fingerprint": entry.fingerprint,
        "aws_account": entry.aws_account,
        "seed_url": entry.seed_url,
        "packages": list(entry.packages),
        "public": entry.public,
        "verified": entry.verified,
        "created": entry.created,
        "updated": entry.updated,
        "metadata_url": entry.url,
        "variants": [_variant_json(v) for v in entry.variants],
    }


def _table(title: str, columns: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """A rich table on a terminal, tab-separated lines otherwise (for grep and cut)."""
    if is_terminal():
        from rich.console import Console
        from rich.table import Table
        from rich.text import Text

        # Registry text as Text, not markup: "[link=...]" would make a hidden link.
        table = Table(title=Text(terminal_safe(title, one_line=True)))
        for column in columns:
            table.add_column(column)
        for row in rows:
            table.add_row(*(Text(terminal_safe(cell, one_line=True)) for cell in row))
        Console().print(table)
        return
    for row in rows:
        print("\t".join(terminal_safe(cell, one_line=True) for cell in row))


def _run(args: argparse.Namespace, body: Any) -> int:
    client = _client(args)
    try:
        code: int = body(client)
    except RegistryError as failure:
        raise RegistryCommandFailed(client.base_url, failure) from failure
    finally:
        _warn(client)
    return code


# --- commands ------------------------------------------------------------------------


def _list(args: argparse.Namespace) -> int:
    def body(client: RegistryClient) -> int:
        index = client.index()
        if args.json:
            print_json(
                {
                    "registry": client.base_url,
                    "version": index.version,
                    "snapshots": [_index_entry_json(e) for e in index.entries],
                }
            )
        else:
            rows = [(e.name, e.fingerprint[:19] + "...", e.description) for e in index.entries]
            _table(f"Snapshots in {client.base_url}", ("NAME", "FINGERPRINT", "DESCRIPTION"), rows)
        return EXIT_OK

    return _run(args, body)


def _search(args: argparse.Namespace) -> int:
    needle = args.text.lower()

    def body(client: RegistryClient) -> int:
        # The index carries names, descriptions and package lists, so a search is one
        # request however many entries there are.
        hits = [
            e
            for e in client.index().entries
            if needle in e.name.lower()
            or needle in e.description.lower()
            or any(needle in p.lower() for p in e.packages)
        ]
        if args.json:
            print_json(
                {
                    "registry": client.base_url,
                    "query": args.text,
                    "snapshots": [_index_entry_json(e) for e in hits],
                }
            )
        elif hits:
            rows = [(e.name, e.fingerprint[:19] + "...", e.description) for e in hits]
            _table(f"Matching {args.text!r}", ("NAME", "FINGERPRINT", "DESCRIPTION"), rows)
        else:
            sys.stderr.write(f"no stack matches {args.text!r}\n")
        return EXIT_OK if hits else EXIT_FAILURE

    return _run(args, body)


def _info(args: argparse.Namespace) -> int:
    def body(client: RegistryClient) -> int:
        entry = client.entry(args.name)
        if args.json:
            print_json({"registry": client.base_url, **_metadata_json(entry)})
            return EXIT_OK
        print(terminal_safe(f"{entry.name}: {entry.description}", one_line=True))
        print(f"  fingerprint: {entry.fingerprint}")
        print(terminal_safe(f"  owner: AWS account {entry.aws_account}", one_line=True))
        if entry.packages:
            print(terminal_safe(f"  packages: {', '.join(entry.packages)}", one_line=True))
        if entry.seed_url:
            print(terminal_safe(f"  seed: {entry.seed_url}", one_line=True))
        flags = [f"{k}={v}" for k, v in (("public", entry.public), ("verified", entry.verified))]
        dates = [
            f"{k} {v}" for k, v in (("created", entry.created), ("updated", entry.updated)) if v
        ]
        print(terminal_safe(f"  {', '.join(flags + dates)}", one_line=True))
        rows = [
            (v.region, v.snapshot_id, v.os, v.architecture, f"{v.size_gb} GiB", v.description)
            for v in entry.variants
        ]
        _table("Variants", ("REGION", "SNAPSHOT", "OS", "ARCH", "SIZE", "DESCRIPTION"), rows)
        return EXIT_OK

    return _run(args, body)


def _regions(args: argparse.Namespace) -> int:
    def body(client: RegistryClient) -> int:
        entry = client.entry(args.name)
        regions: list[dict[str, Any]] = [
            {
                "region": region,
                "variants": [
                    {
                        "snapshot_id": v.snapshot_id,
                        "os": v.os,
                        "architecture": v.architecture,
                        "size_gb": v.size_gb,
                    }
                    for v in entry.variants
                    if v.region == region
                ],
            }
            for region in entry.regions()
        ]
        if args.json:
            print_json({"registry": client.base_url, "name": entry.name, "regions": regions})
        else:
            rows = [
                (
                    region,
                    ", ".join(
                        f"{v.os}/{v.architecture}/{v.size_gb} GiB"
                        for v in entry.variants
                        if v.region == region
                    ),
                )
                for region in entry.regions()
            ]
            _table(f"Regions of {entry.name}", ("REGION", "VARIANTS"), rows)
        return EXIT_OK

    return _run(args, body)


def _check(args: argparse.Namespace) -> int:
    try:
        seed = load_seed(args.seed)
        os_name = operating_system(args.os).name if args.os else seed.os
    except UnknownOperatingSystem as failure:
        error(f"--os: {failure}")
        return EXIT_INVALID
    arch = args.arch or seed.architecture
    fp = fingerprint(seed)

    def body(client: RegistryClient) -> int:
        entry = client.find(fp)
        variants = [
            v
            for v in (entry.variants if entry else ())
            if v.os == os_name
            and v.architecture == arch
            and (args.region is None or v.region == args.region)
        ]
        found = bool(variants)
        if args.json:
            print_json(
                {
                    "registry": client.base_url,
                    "seed": args.seed,
                    "fingerprint": fp,
                    "os": os_name,
                    "architecture": arch,
                    "region": args.region,
                    "found": found,
                    "stack": entry.name if entry else None,
                    "variants": [_variant_json(v) for v in variants],
                }
            )
        elif found and entry is not None:
            where = ", ".join(sorted({v.region for v in variants}))
            found_line = f"{args.seed}: {entry.name} has {os_name}/{arch} snapshots in {where}"
            print(terminal_safe(found_line, one_line=True))
            create = hints.petal(f"create --seed {args.seed} --name <cluster>")
            print(f"  create a cluster with: {create}")
        else:
            offered = "" if entry is None else f" ({entry.name} offers other variants)"
            missing = f"{args.seed}: no {os_name}/{arch} snapshot in the registry for {fp}{offered}"
            print(terminal_safe(missing, one_line=True))
            print(f"  build one with: {hints.petal(f'build --seed {args.seed}')}")
        return EXIT_OK if found else EXIT_FAILURE

    return _run(args, body)


def _update(args: argparse.Namespace) -> int:
    def body(client: RegistryClient) -> int:
        result = client.update()
        if args.json:
            print_json(
                {
                    "registry": result.registry,
                    "documents": result.documents,
                    "downloaded": result.downloaded,
                    "not_modified": result.not_modified,
                }
            )
        else:
            print(
                f"{result.registry}: {result.documents} documents checked, "
                f"{result.downloaded} downloaded, {result.not_modified} unchanged"
            )
        return EXIT_OK

    return _run(args, body)
