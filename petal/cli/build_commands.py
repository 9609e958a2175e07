"""`petal build`: start builds of a seed's variants, watch them, list, log and cancel.

The CLI only talks to the deployed pipeline: it starts Step Functions executions with
the same JSON input a user would pass to `aws stepfunctions start-execution`, and reads
progress from the builds table the pipeline writes; build_watch.py follows the builds.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from petal.aws.ec2_snapshots import SnapshotView, find_snapshots, lifecycle_of
from petal.build.cancel import cancel_build
from petal.build.records import FINISHED, SUCCESSFUL, BuildRecord
from petal.build.request import (
    AUTO_PARENT,
    BuildRequest,
    BuildRequestError,
    check_build_id,
    new_build_id,
    parse_build_request,
    resolve_seed,
)
from petal.cli import build_diff_command, hints, sharing_commands, snapshot_lifecycle_commands
from petal.cli.build_progress import status_line, step_lines, summary_lines
from petal.cli.build_watch import (
    Pipeline,
    Speaker,
    build_execution,
    build_regions,
    find_pipeline,
    interrupted,
    print_log,
    watch,
)
from petal.cli.commands import command
from petal.cli.output import add_json_flag, error, print_json
from petal.deployment_contract import (
    MANAGED_VALUE,
    TAG_ARCH,
    TAG_FINGERPRINT,
    TAG_MANAGED,
    TAG_OS,
    TAG_PARENT,
)
from petal.errors import EXIT_FAILURE, EXIT_INVALID, EXIT_OK
from petal.identifiers import IMAGE_ID
from petal.local import mode as local_mode
from petal.platforms import ARCHITECTURES, UnknownOperatingSystem, operating_system
from petal.seed.fingerprint import fingerprint
from petal.seed.loading import load_seed
from petal.seed.model import Seed, SeedError
from petal.sharing.snapshots import SharingInfo, describe_sharing
from petal.yaml_source import load_yaml_document


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    build = command("build").add_parser(
        subparsers,
        description="Build a software volume (EBS snapshot) with the seed's packages "
        "pre-installed. A build takes 45-90 minutes once; clusters then start in minutes. "
        "Without a COMMAND, starts a build: petal build --seed FILE.",
    )
    _deployment_flags(build)
    build.add_argument("--seed", metavar="FILE", help="seed YAML file to build")
    build.add_argument("--name", help="name for tracking; the build ids start with it")
    build.add_argument(
        "--os", metavar="OS[,OS]", help="build these operating systems (default: the seed's)"
    )
    build.add_argument(
        "--arch",
        metavar="ARCH[,ARCH]",
        help="build these architectures, x86_64 and/or arm64 (default: the seed's)",
    )
    build.add_argument(
        "--builder-ami",
        metavar="AMI",
        help="boot the builder from this ParallelCluster image (from `pcluster build-image`) "
        "instead of the seed's build.image or the official AMI; needed for rocky8/rocky9, "
        "which have no official AMI",
    )
    build.add_argument(
        "--from",
        dest="parent",
        metavar="SNAP|auto",
        help="build on this snapshot of this account instead of an empty volume, installing "
        "only what it lacks and removing what the seed no longer needs; auto: the newest "
        "snapshot of the same seed name, os and architecture (see docs/INCREMENTAL.md)",
    )
    build.add_argument("--force", action="store_true", help="build even if a snapshot exists")
    build.add_argument("--detach", action="store_true", help="start the builds and return")
    build.add_argument(
        "--simulate-failure",
        metavar="STEP",
        help="with --local only: make the build fail at STEP (prepare, launch, ready, "
        "bootstrap, snapshot or cleanup; STEP:MODE for a specific failure, e.g. "
        "bootstrap:timed-out) to watch the cleanup path",
    )
    build.add_argument("--json", action="store_true", help="machine-readable output")
    build.set_defaults(func=_start, build_parser=build)
    _register_commands(build.add_subparsers(dest="build_command", metavar="COMMAND"))


def _register_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    status = commands.add_parser("status", help="show a build; --watch follows it")
    _deployment_flags(status, default=argparse.SUPPRESS)
    status.add_argument("build_id", metavar="BUILD_ID")
    status.add_argument("--watch", action="store_true", help="follow until the build ends")
    add_json_flag(status)
    status.set_defaults(func=_status)

    listing = commands.add_parser("list", help="list builds and software volumes")
    _deployment_flags(listing, default=argparse.SUPPRESS)
    listing.add_argument(
        "--status",
        type=str.upper,
        choices=sorted(FINISHED | {"RUNNING"}),
        help="only builds in this state; software volumes come from successful builds, so "
        "they are listed only without --status or with SUCCEEDED or REUSED",
    )
    listing.add_argument(
        "--seed", metavar="NAME", help="only builds and software volumes of this seed name"
    )
    listing.add_argument("--limit", type=int, default=20, help="most builds to show on a page (20)")
    pages = listing.add_mutually_exclusive_group()
    pages.add_argument("--all", action="store_true", help="every build, page after page")
    pages.add_argument(
        "--after",
        metavar="CURSOR",
        help="the page after the one that printed this cursor (with the same filters)",
    )
    listing.add_argument(
        "--shared", action="store_true", help="show who each snapshot is shared with"
    )
    add_json_flag(listing)
    listing.set_defaults(func=_list)

    logs = commands.add_parser("logs", help="print the build's bootstrap log")
    _deployment_flags(logs, default=argparse.SUPPRESS)
    logs.add_argument("build_id", metavar="BUILD_ID")
    logs.add_argument("--follow", action="store_true", help="keep printing until it ends")
    logs.set_defaults(func=_logs)

    cancel = commands.add_parser(
        "cancel",
        help="stop a build and delete what it created",
        description="Stop the build's execution and clean up what it had created "
        "(instance, volume, lock): stopping an execution skips its own cleanup.",
    )
    _deployment_flags(cancel, default=argparse.SUPPRESS)
    cancel.add_argument("build_id", metavar="BUILD_ID")
    add_json_flag(cancel)
    cancel.set_defaults(func=_cancel)

    sharing_commands.register(commands)
    _deployment_flags(build_diff_command.register(commands), default=argparse.SUPPRESS)
    snapshot_lifecycle_commands.register(commands)


def _deployment_flags(parser: argparse.ArgumentParser, default: Any = None) -> None:
    """On the subcommands, default=SUPPRESS: argparse lets a subcommand's defaults
    overwrite the parent's values, and `petal build --region X list` must keep X."""
    parser.add_argument("--region", default=default, help="AWS region of the petal stack")
    parser.add_argument(
        "--stack-name", default=default, help="name of the petal stack (default: petal)"
    )


# --- petal build --seed --------------------------------------------------------------


@dataclass
class _Order:
    """What `petal build --seed FILE` was asked to build."""

    seed: Seed
    # The seed as written, not with the seed's defaults filled in: a request's
    # os/architecture then gets the defaults of its own variant (an arm64 builder
    # for --arch arm64), as for a seed_uri request.
    written: Any
    variants: list[tuple[str, str]]


def _start(args: argparse.Namespace) -> int:
    if not _start_flags_fit(args):
        return EXIT_INVALID
    order = _read_order(args)
    if order is None:
        return EXIT_INVALID
    pipeline = find_pipeline(args.region, args.stack_name)
    fp = fingerprint(order.seed)
    say = Speaker(args.json)
    say(f"🌸 Building software volume from {args.seed} ({fp[:19]}...)")
    plan = _plan(args, pipeline, order, fp, say)
    if plan is None:
        return EXIT_INVALID
    requests, reused = plan
    started: list[str] = []
    try:
        _start_executions(pipeline, requests, args.simulate_failure, say, started)
    except KeyboardInterrupt:
        # Builds already started go on: the same words as a Ctrl-C while watching.
        return interrupted(started)
    if args.detach or not started:
        if args.json:
            print_json({"fingerprint": fp, "started": started, "reused": reused})
        for build_id in started:
            say(f"   Track with: {hints.petal(f'build status {build_id} --watch')}")
        return EXIT_OK
    return watch(pipeline, started, order.seed, args.seed, as_json=args.json)


def _start_flags_fit(args: argparse.Namespace) -> bool:
    if args.seed is None:
        args.build_parser.print_usage(sys.stderr)
        error("petal build needs --seed FILE (or a command: status, list, logs, cancel, ...)")
        return False
    if args.builder_ami is not None and not IMAGE_ID.match(args.builder_ami):
        error(f"--builder-ami: {args.builder_ami!r} is not an AMI id (ami-0123456789abcdef0)")
        return False
    if args.simulate_failure and not local_mode.is_active():
        error("--simulate-failure works only in local mode: petal --local build ...")
        return False
    if args.simulate_failure:
        # Checked before anything else, so that a mistyped step is never ignored
        # (for instance when the snapshot exists and no build starts).
        from petal.local.failures import check_failure_request  # local mode only

        check_failure_request(args.simulate_failure)
    return True


def _read_order(args: argparse.Namespace) -> _Order | None:
    """The seed and its variants to build; None, reported, when a flag is wrong."""
    try:
        seed = load_seed(args.seed, _builder_ami_override(args))
        written = load_yaml_document(Path(args.seed).read_bytes()).data
        variants = _variants(seed, args.os, args.arch)
        if args.parent not in (None, AUTO_PARENT) and len(variants) > 1:
            raise ValueError(
                f"--from {args.parent}: one snapshot is the parent of one variant only, and "
                f"{len(variants)} are asked for: use --from auto (each variant's newest "
                "snapshot) or build one --os/--arch"
            )
        if args.name is not None:
            check_build_id(args.name, "--name")
    except SeedError:
        raise  # a ValueError too, but reported whole by the CLI's one error guard
    except (UnknownOperatingSystem, ValueError) as failure:
        error(f"--os: {failure}" if isinstance(failure, UnknownOperatingSystem) else str(failure))
        return None
    return _Order(seed, written, variants)


def _builder_ami_override(args: argparse.Namespace) -> dict[str, str]:
    # Applied before the seed's own validation: a rocky seed without build.image is
    # valid with --builder-ami, and a malformed id is reported as the seed field.
    return {"build.image": args.builder_ami} if args.builder_ami else {}


def _variants(seed: Seed, os_flag: str | None, arch_flag: str | None) -> list[tuple[str, str]]:
    oses = [operating_system(o.strip()).name for o in os_flag.split(",")] if os_flag else [seed.os]
    arches = [a.strip() for a in arch_flag.split(",")] if arch_flag else [seed.architecture]
    for arch in arches:
        if arch not in ARCHITECTURES:
            raise ValueError(f"--arch: {arch!r} is not allowed; use x86_64 and/or arm64")
    return [(o, a) for o in dict.fromkeys(oses) for a in dict.fromkeys(arches)]


def _plan(
    args: argparse.Namespace, pipeline: Pipeline, order: _Order, fp: str, say: Speaker
) -> tuple[list[BuildRequest], list[dict[str, str]]] | None:
    """Per variant, the snapshot to reuse or the request to build one; None, reported,
    when the seed does not fit a variant (before any build starts)."""
    requests: list[BuildRequest] = []
    reused: list[dict[str, str]] = []
    now = datetime.now(UTC)
    for os_name, arch in order.variants:
        snapshot_id = None if args.force else _existing_snapshot(pipeline, fp, os_name, arch)
        if snapshot_id is not None:
            say(f"✅ Software volume already exists for {os_name}/{arch}: {snapshot_id}")
            reused.append({"os": os_name, "architecture": arch, "snapshot_id": snapshot_id})
            continue
        request = _request(args, order, os_name, arch, now)
        if not _seed_fits(request):
            return None
        requests.append(request)
    return requests, reused


def _existing_snapshot(pipeline: Pipeline, fp: str, os_name: str, arch: str) -> str | None:
    existing = find_snapshots(
        pipeline.client("ec2"),
        {TAG_FINGERPRINT: fp, TAG_OS: os_name, TAG_ARCH: arch, TAG_MANAGED: MANAGED_VALUE},
    )
    return existing[0].snapshot_id if existing else None


def _request(
    args: argparse.Namespace, order: _Order, os_name: str, arch: str, now: datetime
) -> BuildRequest:
    build_id = new_build_id(args.name or order.seed.name, now)
    if len(order.variants) > 1:
        build_id += f"-{operating_system(os_name).registry_name}-{arch.replace('_', '-')}"
    return BuildRequest(
        seed=order.written,
        seed_uri=None,
        seed_version_id=None,
        force=args.force,
        build_id=build_id[:64].rstrip("-"),
        os=os_name,
        architecture=arch,
        source=f"cli:{args.seed}",
        builder_ami=args.builder_ami,
        parent=args.parent,
    )


def _seed_fits(request: BuildRequest) -> bool:
    try:
        # The checks Prepare makes, before any build starts: a variant the seed
        # does not fit (x86_64 instance types for arm64) is bad input, not a
        # build that fails later.
        resolve_seed(parse_build_request(request.to_document()), _no_seed_reader)
    except (SeedError, BuildRequestError) as failure:
        sys.stderr.write(f"{failure}\n")
        return False
    return True


def _no_seed_reader(bucket: str, key: str, version_id: str | None) -> bytes:
    raise AssertionError("the CLI sends the seed inline")


def _start_executions(
    pipeline: Pipeline,
    requests: list[BuildRequest],
    simulate_failure: str | None,
    say: Speaker,
    started: list[str],
) -> None:
    """Start each request's execution, adding each build id to `started` as it starts
    (a Ctrl-C half-way then knows which builds run)."""
    for request in requests:
        if simulate_failure:
            local_mode.request_failure(str(request.build_id), simulate_failure)
        pipeline.client("stepfunctions").start_execution(
            stateMachineArn=pipeline.deployment.state_machine_arn,
            name=request.build_id,
            input=json.dumps(request.to_document(), separators=(",", ":")),
        )
        started.append(str(request.build_id))
        say(f"⏳ Started build {request.build_id} ({request.os}/{request.architecture})")


# --- status, list, logs, cancel ------------------------------------------------------------


def _find(pipeline: Pipeline, build_id: str) -> BuildRecord | None:
    record = pipeline.table.get_build(build_id)
    if record is None:
        error(f"no build {build_id!r}: list builds with `{hints.petal('build list')}`")
    return record


def _status(args: argparse.Namespace) -> int:
    pipeline = find_pipeline(args.region, args.stack_name)
    if (
        args.watch
        and pipeline.table.get_build(args.build_id) is None
        and build_execution(pipeline, args.build_id) is not None
    ):
        # Started moments ago (`petal build --detach`): Prepare writes the record soon.
        return watch(pipeline, [args.build_id], None, None, as_json=args.json, json_list=False)
    record = _find(pipeline, args.build_id)
    if record is None:
        return EXIT_FAILURE
    if args.watch and record.status not in FINISHED:
        return watch(pipeline, [args.build_id], None, None, as_json=args.json, json_list=False)
    if args.json:
        print_json(record.to_json())
    else:
        print(status_line(record, datetime.now(UTC)))
        for line in step_lines(record):
            print(line)
        if record.status in ("FAILED", "CANCELLED"):
            # Why, and what to do: what `--watch` prints when the build ends.
            regions = build_regions(pipeline)
            print("\n".join(summary_lines(record, None, "SEED", regions=regions)))
    return EXIT_OK if record.status != "FAILED" else EXIT_FAILURE


def _list(args: argparse.Namespace) -> int:
    if args.limit < 1:
        error(f"--limit {args.limit}: show at least 1 build")
        return EXIT_INVALID
    pipeline = find_pipeline(args.region, args.stack_name)
    # A page of builds, not the history: each Query reads one page (Limit), and
    # --all follows the cursors.
    builds: list[BuildRecord] = []
    after = args.after
    try:
        while True:
            size = max(args.limit, 100) if args.all else args.limit
            page = pipeline.table.list_page(size, args.status, args.seed, after=after)
            builds.extend(page.records)
            after = page.next
            if not (args.all and after):
                break
    except ValueError as failure:  # a cursor this listing did not print
        error(f"--after: {failure}")
        return EXIT_INVALID
    ec2 = pipeline.client("ec2")
    with_volumes = args.status is None or args.status in SUCCESSFUL
    volumes = find_snapshots(ec2, {TAG_MANAGED: MANAGED_VALUE}) if with_volumes else []
    if args.seed:
        volumes = [v for v in volumes if v.tags.get("petal:seed") == args.seed]
    shared = describe_sharing(ec2, [v.snapshot_id for v in volumes]) if args.shared else {}
    if args.json:
        listing: dict[str, Any] = {
            "builds": [b.to_json() for b in builds],
            "software_volumes": [_volume_json(v, shared.get(v.snapshot_id)) for v in volumes],
        }
        if after is not None:
            listing["next"] = after  # only then: the keys of a whole listing stay as they were
        print_json(listing)
    else:
        next_page = None
        if after is not None:
            # The same filters: a cursor is a position in this listing only.
            flags = ["build list"] + [
                f"--{flag} {value}"
                for flag, value in (("status", args.status), ("seed", args.seed))
                if value
            ]
            if args.limit != 20:
                flags.append(f"--limit {args.limit}")
            next_page = hints.petal(" ".join([*flags, f"--after {after}"]))
        _print_listing(builds, volumes if with_volumes else None, shared, next_page)
    return EXIT_OK


def _volume_json(volume: SnapshotView, sharing: SharingInfo | None) -> dict[str, Any]:
    tags = volume.tags
    return {
        "snapshot_id": volume.snapshot_id,
        "fingerprint": tags.get(TAG_FINGERPRINT),
        "os": tags.get(TAG_OS),
        "architecture": tags.get(TAG_ARCH),
        "seed": tags.get("petal:seed"),
        "packages": tags.get("petal:packages"),
        "size_gb": volume.size_gb,
        "parent_snapshot_id": tags.get(TAG_PARENT),
        "lifecycle": lifecycle_of(tags),
        "created": volume.start_time,
        "sharing": sharing.to_json() if sharing is not None else None,
    }


def _print_listing(
    builds: list[BuildRecord],
    volumes: list[SnapshotView] | None,
    shared: dict[str, SharingInfo],
    next_page: str | None = None,
) -> None:
    """`volumes` None: not asked for (a --status of builds that make no volume);
    `next_page` the command that lists the builds after these (None: no more)."""
    now = datetime.now(UTC)
    if builds:
        print("Builds:")
    elif next_page is None:
        print(f"Builds: none yet (start one with: {hints.petal('build --seed FILE')})")
    else:
        print("Builds: none among the most recent ones read")
    for record in builds:
        lineage = f"  (from {record.parent_snapshot_id})" if record.parent_snapshot_id else ""
        print(f"  {status_line(record, now)}{lineage}")
    if next_page is not None:
        print(f"  more builds: {next_page}")
    if volumes is None:
        return
    print("Software volumes:" if volumes else "Software volumes: none")
    for v in volumes:
        line = (
            f"  {v.snapshot_id}  {v.tags.get('petal:seed', '?')}  "
            f"{v.tags.get(TAG_OS)}/{v.tags.get(TAG_ARCH)}  {v.size_gb} GiB  "
            f"{v.tags.get(TAG_FINGERPRINT, '')[:19]}...  {v.tags.get('petal:packages', '')}"
        )
        if v.tags.get(TAG_PARENT):
            line += f"  from {v.tags[TAG_PARENT]}"
        lifecycle = lifecycle_of(v.tags)
        if lifecycle != "current":
            line += f"  {lifecycle.upper()}"
        if v.snapshot_id in shared:
            line += f"  shared: {shared[v.snapshot_id].summary()}"
        print(line)


def _logs(args: argparse.Namespace) -> int:
    pipeline = find_pipeline(args.region, args.stack_name)
    record = _find(pipeline, args.build_id)
    if record is None:
        return EXIT_FAILURE
    if not record.command_id:
        if record.status in FINISHED:
            error(
                f"build {args.build_id} has no bootstrap log: it ended ({record.status}) "
                "before the install started; "
                f"`{hints.petal(f'build status {args.build_id}')}` says why"
            )
        else:
            error(f"build {args.build_id} has no bootstrap log yet (step: {record.step})")
        return EXIT_FAILURE
    group = record.log_group or pipeline.deployment.build_log_group
    return print_log(pipeline, args.build_id, group, record.command_id, follow=args.follow)


def _cancel(args: argparse.Namespace) -> int:
    pipeline = find_pipeline(args.region, args.stack_name)
    record = _find(pipeline, args.build_id)
    if record is None:
        return EXIT_FAILURE
    outcome = cancel_build(
        record,
        stepfunctions=pipeline.client("stepfunctions"),
        ec2=pipeline.client("ec2"),
        table=pipeline.table,
    )
    if args.json:
        print_json(outcome.to_json())
    else:
        print("\n".join(outcome.lines()))
    return EXIT_OK
