"""`petal build share | unshare | copy | publish`: hand a software volume to other
accounts, other regions and the snapshot registry (docs/SHARING.md).

The `petal build` parser belongs to build_commands.py, which calls `register` with its
subcommand action. Every command checks its flags before the first AWS call (exit 2),
reports what AWS or the snapshot does not allow as exit 1, and takes --json.

`petal build` itself has --region, --seed and --json; argparse lets a subcommand's
defaults overwrite the parent's values, so the flags shared with it default to SUPPRESS
here and are read with getattr: `petal build --region X share ...` keeps X.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn

from petal.aws import session as aws_session
from petal.cli.output import add_json_flag, error, print_json
from petal.errors import EXIT_FAILURE, EXIT_OK
from petal.registry.publish import (
    build_publication,
    check_publishable,
    read_existing_metadata,
    write_publication,
)
from petal.seed.fingerprint import fingerprint
from petal.seed.loading import load_seed
from petal.seed.model import Seed, SeedError
from petal.sharing import public
from petal.sharing.copy import (
    CopyFailed,
    CopyStarted,
    check_copy_source,
    start_copies,
    wait_for_copies,
)
from petal.sharing.errors import InvalidArgument, Refused
from petal.sharing.inputs import (
    SnapshotRef,
    parse_account_ids,
    parse_regions,
    parse_snapshot_ref,
    validate_kms_key,
    validate_region,
    validate_registry_name,
)
from petal.sharing.kms import KmsKeyLookup
from petal.sharing.public import (
    PUBLIC_EXPLANATION,
    BlockPublicAccessState,
    make_public,
)
from petal.sharing.share import share_with_accounts, unshare
from petal.sharing.snapshots import (
    SharingInfo,
    SnapshotRecord,
    describe_sharing,
    get_snapshot,
    get_snapshots,
)
from petal.user_config import DEFAULT_REGISTRY_URL, UserConfigError, load_user_config

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client

Handler = Callable[[argparse.Namespace], int]
COPY_POLL_SECONDS: Final = 15.0
DESCRIPTION_MAX: Final = 1000


def _new_client(service: str, region: str) -> Any:
    return aws_session.client(service, region)


def _client(service: str, region: str) -> Any:
    """The boto3 client for a service and region; tests replace `_new_client` to prove
    that bad input never reaches AWS."""
    return _new_client(service, region)


# --- parser ---------------------------------------------------------------------------


def register(build_subcommands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add share, unshare, copy and publish under `petal build`."""
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
    _region_flag(share)
    add_json_flag(share)
    share.set_defaults(func=_share)

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
    _region_flag(unshare_)
    add_json_flag(unshare_)
    unshare_.set_defaults(func=_unshare)

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
        type=_positive_int("--wait-minutes"),
        default=180,
        metavar="N",
        help="give up waiting after N minutes (default 180; the copies go on)",
    )
    add_json_flag(copy)
    copy.set_defaults(func=_copy)

    publish = build_subcommands.add_parser(
        "publish",
        help="write snapshot registry metadata for a pull request",
        description="Read snapshots of one software stack (any regions) and write the "
        "registry documents: <name>.json and the entry in index.json (docs/SHARING.md). "
        "With --out DIR (a registry checkout's snapshots/ directory) the files are written "
        "or updated there; otherwise they are printed.",
    )
    publish.add_argument(
        "snapshots", nargs="+", metavar="SNAPSHOT", help="snap-... or REGION:snap-..."
    )
    publish.add_argument(
        "--name",
        required=True,
        type=_checked(validate_registry_name, "--name"),
        help="registry name, e.g. bioinformatics-v1",
    )
    publish.add_argument("--description", help="one line for the registry listing")
    publish.add_argument(
        "--seed",
        default=argparse.SUPPRESS,
        metavar="FILE",
        help="the seed the snapshots were built from: checks the fingerprint and lists the "
        "packages",
    )
    publish.add_argument("--seed-url", metavar="URL", help="http(s) URL of the seed file")
    publish.add_argument(
        "--registry-url",
        default=DEFAULT_REGISTRY_URL,
        metavar="URL",
        help="raw base URL of the registry repository, for the default --seed-url",
    )
    publish.add_argument(
        "--private",
        action="store_true",
        help="the snapshots are shared with accounts, not public (an organization registry)",
    )
    publish.add_argument("--out", metavar="DIR", help="write <name>.json and index.json here")
    _region_flag(publish)
    add_json_flag(publish)
    publish.set_defaults(func=_publish)


def _region_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--region",
        default=argparse.SUPPRESS,
        metavar="REGION",
        help="region of snapshots given without REGION: (default: the configured AWS region)",
    )


def _positive_int(flag: str) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < 1:
            raise argparse.ArgumentTypeError(f"{flag} must be at least 1")
        return value

    return parse


def _checked(check: Callable[[str, str], str], flag: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        try:
            return check(text, flag)
        except InvalidArgument as failure:
            # argparse prefixes the flag itself
            raise argparse.ArgumentTypeError(str(failure).removeprefix(f"{flag}: ")) from None

    return parse


# --- plumbing -------------------------------------------------------------------------


def _json(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "json", False))


def _warn(message: str) -> None:
    sys.stderr.write(f"petal: warning: {message}\n")


def _default_region(args: argparse.Namespace, flag: str = "--region") -> str | None:
    """The flag, else the petal config's deployment.region (or PETAL_REGION), else the
    AWS configuration's region: the order `petal build` itself uses."""
    given: str | None = getattr(args, "region", None)
    if given:
        return validate_region(given, flag)
    try:
        configured = load_user_config().deployment.region
    except UserConfigError as failure:
        raise InvalidArgument(str(failure)) from None
    if configured:
        return validate_region(configured, "deployment.region of the petal config")
    from_aws = aws_session.default_region()
    if from_aws is None:
        return None
    return validate_region(from_aws, "the configured AWS region (AWS_REGION or profile)")


def _ec2(region: str) -> EC2Client:
    client: EC2Client = _client("ec2", region)
    return client


# --- share / unshare -------------------------------------------------------------------


def _share(args: argparse.Namespace) -> int:
    if args.yes_make_public and not args.public:
        raise InvalidArgument("--yes-make-public only goes with --public")
    ref = parse_snapshot_ref(args.snapshot, _default_region(args))
    if args.public:
        return _share_public(args, ref)
    accounts = parse_account_ids(args.accounts)
    result = share_with_accounts(
        _ec2(ref.region),
        KmsKeyLookup(_client("kms", ref.region)),
        ref.region,
        ref.snapshot_id,
        accounts,
    )
    if _json(args):
        print_json(result.to_json())
    else:
        for warning in result.warnings:
            _warn(warning)
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
        _ec2(ref.region), ref.region, ref.snapshot_id, block_public_access=_block_public_access
    )
    if _json(args):
        print_json(result.to_json())
        return EXIT_OK
    for warning in result.warnings:
        _warn(warning)
    if result.changed:
        print(f"{ref}: now public. Any AWS account can create volumes from it.")
    else:
        print(f"{ref}: already public; nothing changed.")
    print(f"Revoke with: petal build unshare {ref} --public")
    return EXIT_OK


def _block_public_access(ec2: EC2Client) -> BlockPublicAccessState:
    # Looked up through the module at call time so tests can replace the adapter:
    # moto 5.2.5 does not implement GetSnapshotBlockPublicAccessState.
    return public.get_block_public_access_state(ec2)


def _unshare(args: argparse.Namespace) -> int:
    if not args.accounts and not args.public:
        raise InvalidArgument("unshare needs --accounts IDS, --public, or both")
    accounts = parse_account_ids(args.accounts) if args.accounts else ()
    ref = parse_snapshot_ref(args.snapshot, _default_region(args))
    result = unshare(_ec2(ref.region), ref.region, ref.snapshot_id, accounts, public=args.public)
    if _json(args):
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
    ref = parse_snapshot_ref(args.snapshot, _default_region(args, "--from"), region_flag="--from")
    destinations = parse_regions(args.to, "--to")
    kms_key = validate_kms_key(args.kms_key, destinations) if args.kms_key else None
    encrypt = not args.unencrypted
    source = get_snapshot(_ec2(ref.region), ref.region, ref.snapshot_id, owned=False)
    clients = {region: _ec2(region) for region in destinations}
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
    if not _json(args):
        print(f"Copying {ref} to {', '.join(destinations)}...", file=sys.stderr)
    attempts = max(1, int(args.wait_minutes * 60 / COPY_POLL_SECONDS))
    with _CopyProgress(started) as progress:
        final = wait_for_copies(
            started,
            clients,
            on_progress=progress.update,
            delay_seconds=COPY_POLL_SECONDS,
            max_attempts=attempts,
        )
    _report_copies(args, source, final, encrypt, kms_key, done=True)
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
            f"still copying after {args.wait_minutes} minutes (AWS goes on): "
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
    if _json(args):
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


# --- publish ---------------------------------------------------------------------------


def _publish(args: argparse.Namespace) -> int:
    default_region = _default_region(args)
    refs = list(dict.fromkeys(parse_snapshot_ref(s, default_region) for s in args.snapshots))
    if args.description is not None and len(args.description) > DESCRIPTION_MAX:
        raise InvalidArgument(f"--description: at most {DESCRIPTION_MAX} characters")
    for flag, url in (("--seed-url", args.seed_url), ("--registry-url", args.registry_url)):
        if url is not None and not url.startswith(("https://", "http://")):
            raise InvalidArgument(f"{flag}: {url!r} must be an http(s) URL")
    seed_file: str | None = getattr(args, "seed", None)
    seed = _load_seed(seed_file) if seed_file else None
    out_dir = Path(args.out) if args.out else None
    existing = read_existing_metadata(out_dir, args.name) if out_dir else None

    by_region: dict[str, list[str]] = {}
    for ref in refs:
        by_region.setdefault(ref.region, []).append(ref.snapshot_id)
    records: list[SnapshotRecord] = []
    sharing: dict[str, SharingInfo] = {}
    block_states: dict[str, BlockPublicAccessState] = {}
    for region, ids in by_region.items():
        ec2 = _ec2(region)
        found = get_snapshots(ec2, region, ids)
        records.extend(found[i] for i in ids)
        sharing.update(describe_sharing(ec2, ids))
        if not args.private:
            block_states[region] = _block_public_access(ec2)

    stack_fingerprint, warnings = check_publishable(
        records,
        sharing,
        public=not args.private,
        keys=lambda region: KmsKeyLookup(_client("kms", region)),
        block_public_access=block_states,
    )
    packages: list[str] = []
    if seed is not None:
        seed_fingerprint = fingerprint(seed)
        if seed_fingerprint != stack_fingerprint:
            raise Refused(
                f"--seed {seed_file} has fingerprint {seed_fingerprint}, the snapshots "
                f"{stack_fingerprint}: they were built from another seed (or another version "
                "of it)"
            )
        packages = list(dict.fromkeys([*seed.software.compilers, *seed.software.packages]))
    seed_url = args.seed_url
    if seed_url is None and seed is not None:
        seed_url = f"{args.registry_url.rstrip('/')}/seeds/{args.name}.yaml"
    publication = build_publication(
        records,
        name=args.name,
        fingerprint=stack_fingerprint,
        public=not args.private,
        description=args.description if args.description is not None else _seed_text(seed),
        packages=packages,
        seed_url=seed_url,
        existing=existing,
    )
    warnings.extend(publication.warnings)
    for region, state in block_states.items():
        if state == "unknown":
            warnings.append(
                f"could not read snapshot block public access in {region}; if it is "
                "block-all-sharing, the public snapshots there are hidden"
            )
    files: list[Path] = []
    if out_dir is not None:
        files = write_publication(out_dir, publication)

    if _json(args):
        print_json(
            {
                "metadata": publication.metadata,
                "index_entry": publication.index_entry,
                "files": [str(f) for f in files],
                "warnings": warnings,
            }
        )
        return EXIT_OK
    for warning in warnings:
        _warn(warning)
    if not files:
        print(f"# snapshots/{args.name}.json")
        print_json(publication.metadata)
        print("# entry for snapshots/index.json")
        print_json(publication.index_entry)
        return EXIT_OK
    print(f"{args.name}: {len(records)} snapshot(s), fingerprint {stack_fingerprint}")
    for path in files:
        print(f"  wrote {path}")
    seed_hint = f"add {seed_file} as seeds/{args.name}.yaml, " if seed_file else ""
    print(f"Next: in the registry checkout, {seed_hint}commit and open a pull request.")
    return EXIT_OK


def _seed_text(seed: Seed | None) -> str:
    return seed.description if seed is not None else ""


def _load_seed(path: str) -> Seed:
    try:
        return load_seed(path)
    except SeedError as failure:
        raise InvalidArgument(f"--seed: {failure}") from None


# build_commands.py's `petal build list --shared` reads sharing through this module.
__all__ = ["describe_sharing", "register"]
