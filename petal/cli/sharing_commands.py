"""`petal build share | unshare | copy | publish`: hand a software volume to other
accounts, other regions and the snapshot registry (docs/SHARING.md).

The `petal build` parser belongs to build_commands.py, which calls `register` with its
subcommand action; publish lives in publish_command.py; what the commands share is
in snapshot_flags.py.
Every command checks its flags before the first AWS call (exit 2), reports what AWS or
the snapshot does not allow as exit 1, and takes --json.

`petal build` itself has --region, --seed and --json; argparse lets a subcommand's
defaults overwrite the parent's values, so the flags shared with it default to SUPPRESS
here and are read with getattr: `petal build --region X share ...` keeps X.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Final

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn

from petal.cli import hints, publish_command, snapshot_flags
from petal.cli.output import add_json_flag, error, print_json
from petal.errors import EXIT_FAILURE, EXIT_OK
from petal.sharing.copy import (
    CopyFailed,
    CopyStarted,
    check_copy_source,
    start_copies,
    wait_for_copies,
)
from petal.sharing.errors import InvalidArgument
from petal.sharing.inputs import (
    SnapshotRef,
    parse_account_ids,
    parse_regions,
    parse_snapshot_ref,
    validate_kms_key,
)
from petal.sharing.kms import KmsKeyLookup
from petal.sharing.public import (
    PUBLIC_EXPLANATION,
    make_public,
)
from petal.sharing.share import share_with_accounts, unshare
from petal.sharing.snapshots import SnapshotRecord, describe_sharing, get_snapshot

if TYPE_CHECKING:
    from typing import TypeAlias

    from mypy_boto3_ec2 import EC2Client

    SubParsers: TypeAlias = argparse._SubParsersAction[argparse.ArgumentParser]

COPY_POLL_SECONDS: Final = 15.0


# --- parser ---------------------------------------------------------------------------


def register(build_subcommands: SubParsers) -> None:
    """Add share, unshare, copy and publish under `petal build`, in the order
    `petal build --help` lists them."""
    _add_share_parser(build_subcommands)
    _add_unshare_parser(build_subcommands)
    _add_copy_parser(build_subcommands)
    publish_command.register(build_subcommands)


def _add_share_parser(build_subcommands: SubParsers) -> None:
    share = build_subcommands.add_parser(
        "share",
        help="let other AWS accounts (or everyone) create volumes from a snapshot",
        description="Share a software volume's snapshot with AWS accounts, or make it "
        "public. A snapshot encrypted with the AWS managed key cannot be shared; one "
        "encrypted with a customer managed key can, once the key policy allows the accounts "
        "(petal prints the statement to add). Only unencrypted snapshots can be public.",
    )
    share.add_argument("snapshot", metavar="SNAPSHOT", help="snap-... or REGION:snap-...")
    who = share.add_mutually_exclusive_group(required=True)
    who.add_argument(
        "--accounts",
        action="append",
        metavar="IDS",
        help="comma-separated 12-digit AWS account ids (repeatable)",
    )
    who.add_argument(
        "--public",
        action="store_true",
        help="share with every AWS account (unencrypted snapshots only)",
    )
    share.add_argument(
        "--yes-make-public",
        action="store_true",
        help="confirm --public: anyone can then read every file on the volume",
    )
    snapshot_flags.region_flag(share)
    add_json_flag(share)
    share.set_defaults(func=_share)


def _add_unshare_parser(build_subcommands: SubParsers) -> None:
    unshare_ = build_subcommands.add_parser(
        "unshare",
        help="revoke what `share` granted",
        description="Remove accounts (--accounts) or public access (--public) from a "
        "snapshot. Volumes and copies already made by others remain theirs.",
    )
    unshare_.add_argument("snapshot", metavar="SNAPSHOT", help="snap-... or REGION:snap-...")
    unshare_.add_argument(
        "--accounts", action="append", metavar="IDS", help="comma-separated account ids"
    )
    unshare_.add_argument("--public", action="store_true", help="make the snapshot private")
    snapshot_flags.region_flag(unshare_)
    add_json_flag(unshare_)
    unshare_.set_defaults(func=_unshare)


def _add_copy_parser(build_subcommands: SubParsers) -> None:
    copy = build_subcommands.add_parser(
        "copy",
        help="copy a snapshot to other regions (or re-encrypt it with your own key)",
        description="Copy a software volume's snapshot into each --to region with its "
        "Description and petal tags. Copies are encrypted (with --kms-key, else the "
        "region's default EBS key) unless --unencrypted. Copying into the same region with "
        "--kms-key re-encrypts a snapshot so that it can be shared.",
    )
    copy.add_argument("snapshot", metavar="SNAPSHOT", help="snap-... or REGION:snap-...")
    copy.add_argument(
        "--to",
        action="append",
        required=True,
        metavar="REGIONS",
        help="comma-separated destination regions (repeatable)",
    )
    copy.add_argument(
        "--from",
        dest="region",
        default=argparse.SUPPRESS,
        metavar="REGION",
        help="the snapshot's region (default: the configured AWS region)",
    )
    encryption = copy.add_mutually_exclusive_group()
    encryption.add_argument(
        "--kms-key",
        metavar="KEY",
        help="KMS key for the copies: alias/NAME (looked up in each region), key id or ARN",
    )
    encryption.add_argument(
        "--unencrypted",
        action="store_true",
        help="keep an unencrypted snapshot unencrypted (for public distribution)",
    )
    waiting = copy.add_mutually_exclusive_group()
    waiting.add_argument(
        "--no-wait", action="store_true", help="start the copies and return their ids"
    )
    waiting.add_argument(
        "--wait-minutes",
        type=snapshot_flags.positive_int("--wait-minutes"),
        default=180,
        metavar="N",
        help="give up waiting after N minutes (default 180; the copies go on)",
    )
    add_json_flag(copy)
    copy.set_defaults(func=_copy)


# --- plumbing -------------------------------------------------------------------------


# --- share / unshare -------------------------------------------------------------------


def _share(args: argparse.Namespace) -> int:
    if args.yes_make_public and not args.public:
        raise InvalidArgument("--yes-make-public only goes with --public")
    ref = parse_snapshot_ref(args.snapshot, snapshot_flags.default_region(args))
    if args.public:
        return _share_public(args, ref)
    accounts = parse_account_ids(args.accounts)
    result = share_with_accounts(
        snapshot_flags.ec2(ref.region),
        KmsKeyLookup(snapshot_flags.client("kms", ref.region)),
        ref.region,
        ref.snapshot_id,
        accounts,
    )
    if snapshot_flags.json(args):
        print_json(result.to_json())
    else:
        for warning in result.warnings:
            snapshot_flags.warn(warning)
        if result.added:
            print(f"{ref}: shared with {', '.join(result.added)}.")
        if result.already:
            print(f"{ref}: already shared with {', '.join(result.already)}.")
        print(f"{ref}: now {result.sharing.summary()}.")
        if result.key is not None and result.key_policy_statement is not None:
            print(
                f"\nThe snapshot is encrypted with the customer managed key\n  {result.key.arn}\n"
                "The accounts can use it only once the key policy lets them. petal does not "
                "change key policies;\nadd this statement to the key policy's Statement list "
                "(KMS console, or aws kms put-key-policy):\n"
            )
            print_json(result.key_policy_statement)
            print(
                "\nEach account must also allow its own users or roles these kms: actions on "
                "this key ARN in IAM."
            )
    return EXIT_OK


def _share_public(args: argparse.Namespace, ref: SnapshotRef) -> int:
    if not args.yes_make_public:
        raise InvalidArgument(PUBLIC_EXPLANATION.format(snapshot=ref))
    result = make_public(
        snapshot_flags.ec2(ref.region),
        ref.region,
        ref.snapshot_id,
        block_public_access=snapshot_flags.block_public_access,
    )
    if snapshot_flags.json(args):
        print_json(result.to_json())
        return EXIT_OK
    for warning in result.warnings:
        snapshot_flags.warn(warning)
    if result.changed:
        print(f"{ref}: now public. Any AWS account can create volumes from it.")
    else:
        print(f"{ref}: already public; nothing changed.")
    print(f"Revoke with: {hints.petal(f'build unshare {ref} --public')}")
    return EXIT_OK


def _unshare(args: argparse.Namespace) -> int:
    if not args.accounts and not args.public:
        raise InvalidArgument("unshare needs --accounts IDS, --public, or both")
    accounts = parse_account_ids(args.accounts) if args.accounts else ()
    ref = parse_snapshot_ref(args.snapshot, snapshot_flags.default_region(args))
    result = unshare(
        snapshot_flags.ec2(ref.region), ref.region, ref.snapshot_id, accounts, public=args.public
    )
    if snapshot_flags.json(args):
        print_json(result.to_json())
        return EXIT_OK
    if result.removed:
        print(f"{ref}: no longer shared with {', '.join(result.removed)}.")
    if result.not_shared:
        print(f"{ref}: was not shared with {', '.join(result.not_shared)}; nothing to remove.")
    if args.public:
        print(f"{ref}: " + ("no longer public." if result.public_removed else "was not public."))
    print(f"{ref}: now {result.sharing.summary()}.")
    if result.removed or result.public_removed:
        print("Volumes and copies others already made from it remain theirs.")
    return EXIT_OK


# --- copy ------------------------------------------------------------------------------


class _CopyProgress:
    """Rich bars on a terminal, one plain line per change otherwise; stderr either
    way so that --json output stays clean."""

    def __init__(self, copies: Sequence[CopyStarted]) -> None:
        self._rich: Progress | None = None
        self._tasks: dict[str, TaskID] = {}
        if sys.stderr.isatty():
            self._rich = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                TextColumn("{task.percentage:>3.0f}%"),
                console=Console(stderr=True),
            )
            for copy in copies:
                self._tasks[copy.snapshot_id] = self._rich.add_task(
                    f"{copy.region} {copy.snapshot_id}", total=100
                )

    def __enter__(self) -> _CopyProgress:
        if self._rich is not None:
            self._rich.start()
        return self

    def __exit__(self, *_: object) -> None:
        if self._rich is not None:
            self._rich.stop()

    def update(self, copy: CopyStarted) -> None:
        percent = _percent(copy.progress)
        if self._rich is not None:
            self._rich.update(self._tasks[copy.snapshot_id], completed=percent)
        else:
            sys.stderr.write(
                f"{copy.region} {copy.snapshot_id}: {copy.state} {copy.progress or '0%'}\n"
            )


def _percent(progress: str) -> float:
    try:
        return float(progress.rstrip("%") or 0)
    except ValueError:
        return 0.0


def _copy(args: argparse.Namespace) -> int:
    ref = parse_snapshot_ref(
        args.snapshot, snapshot_flags.default_region(args, "--from"), region_flag="--from"
    )
    destinations = parse_regions(args.to, "--to")
    kms_key = validate_kms_key(args.kms_key, destinations) if args.kms_key else None
    encrypt = not args.unencrypted
    source = get_snapshot(snapshot_flags.ec2(ref.region), ref.region, ref.snapshot_id, owned=False)
    clients = {region: snapshot_flags.ec2(region) for region in destinations}
    check_copy_source(source, encrypt=encrypt, destinations=clients)
    try:
        started = start_copies(source, clients, kms_key_id=kms_key, encrypt=encrypt)
    except CopyFailed as failure:
        # The copies that did start cost money: say which, in the one output document.
        _report_copies(args, source, failure.started, encrypt, kms_key, done=False, failure=failure)
        error(str(failure))
        return failure.exit_code
    if args.no_wait:
        _report_copies(args, source, started, encrypt, kms_key, done=False)
        return EXIT_OK
    final = _wait_for_copies(args, ref, destinations, started, clients)
    _report_copies(args, source, final, encrypt, kms_key, done=True)
    return _copies_outcome(final, args.wait_minutes)


def _wait_for_copies(
    args: argparse.Namespace,
    ref: SnapshotRef,
    destinations: Sequence[str],
    started: Sequence[CopyStarted],
    clients: Mapping[str, EC2Client],
) -> list[CopyStarted]:
    if not snapshot_flags.json(args):
        print(f"Copying {ref} to {', '.join(destinations)}...", file=sys.stderr)
    attempts = max(1, int(args.wait_minutes * 60 / COPY_POLL_SECONDS))
    with _CopyProgress(started) as progress:
        return wait_for_copies(
            started,
            clients,
            on_progress=progress.update,
            delay_seconds=COPY_POLL_SECONDS,
            max_attempts=attempts,
        )


def _copies_outcome(final: Sequence[CopyStarted], wait_minutes: int) -> int:
    """Exit 1, saying how to follow up, when a copy failed or did not finish in time."""
    failed = [c for c in final if c.state == "error"]
    unfinished = [c for c in final if c.state in ("pending", "recovering")]
    if failed:
        error(
            "copy failed in "
            + ", ".join(f"{c.region} ({c.snapshot_id})" for c in failed)
            + ": see aws ec2 describe-snapshots --region REGION --snapshot-ids ID (StateMessage)"
        )
        return EXIT_FAILURE
    if unfinished:
        error(
            f"still copying after {wait_minutes} minutes (AWS goes on): "
            + ", ".join(f"{c.region} {c.snapshot_id} {c.progress}" for c in unfinished)
            + ". Check later with aws ec2 describe-snapshots --region REGION --snapshot-ids ID"
        )
        return EXIT_FAILURE
    return EXIT_OK


def _report_copies(
    args: argparse.Namespace,
    source: SnapshotRecord,
    copies: Sequence[CopyStarted],
    encrypt: bool,
    kms_key: str | None,
    *,
    done: bool,
    failure: CopyFailed | None = None,
) -> None:
    if snapshot_flags.json(args):
        print_json(
            {
                "ok": failure is None,
                "error": None if failure is None else str(failure),
                "source": {
                    "region": source.region,
                    "snapshot_id": source.snapshot_id,
                    "description": source.description,
                },
                "encrypted": encrypt,
                "kms_key_id": kms_key,
                "copies": [c.to_json() for c in copies],
                "completed": done and all(c.state == "completed" for c in copies),
            }
        )
        return
    how = f"encrypted with {kms_key}" if kms_key else "encrypted (default EBS key)"
    if not encrypt:
        how = "unencrypted"
    print(f"Copies of {source.ref} ({how}):")
    for copy in copies:
        print(f"  {copy.region:<16} {copy.snapshot_id}  {copy.state} {copy.progress}".rstrip())


# build_commands.py's `petal build list --shared` reads sharing through this module.
__all__ = ["describe_sharing", "register"]
