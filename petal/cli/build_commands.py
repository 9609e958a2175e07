"""`petal build`: start builds of a seed's variants, watch them, list, log and cancel.

The CLI only talks to the deployed pipeline: it starts Step Functions executions with
the same JSON input a user would pass to `aws stepfunctions start-execution`, and reads
progress from the builds table the pipeline writes.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from botocore.exceptions import ClientError
from rich.console import Console
from rich.live import Live

from petal.aws import session as aws_session
from petal.aws.deployment import Deployment, DeploymentNotFound, discover_deployment
from petal.aws.ec2_builder import find_snapshots
from petal.build.cancel import cancel_build
from petal.build.records import FINISHED, BuildFailure, BuildRecord, iso
from petal.build.request import (
    BuildRequest,
    BuildRequestError,
    check_build_id,
    new_build_id,
    parse_build_request,
    resolve_seed,
)
from petal.build.table import BuildTable
from petal.cli import sharing_commands
from petal.cli.build_progress import (
    new_lines,
    rich_view,
    status_line,
    step_lines,
    summary_lines,
)
from petal.cli.output import add_json_flag, error, is_terminal, print_json
from petal.deployment_contract import MANAGED_VALUE, TAG_ARCH, TAG_FINGERPRINT, TAG_MANAGED, TAG_OS
from petal.errors import EXIT_FAILURE, EXIT_INVALID, EXIT_OK
from petal.local import mode as local_mode
from petal.platforms import ARCHITECTURES, UnknownOperatingSystem, operating_system
from petal.seed.fingerprint import fingerprint
from petal.seed.loading import load_seed
from petal.seed.model import Seed, SeedError
from petal.sharing.snapshots import describe_sharing
from petal.user_config import load_user_config
from petal.yaml_source import load_yaml_document

POLL_SECONDS: Final = 5.0
LOCAL_POLL_SECONDS: Final = 0.3
EXIT_INTERRUPTED: Final = 130


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    build = subparsers.add_parser(
        "build",
        aliases=["bake"],
        help="build a software volume (EBS snapshot) from a seed, and manage builds",
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

    commands = build.add_subparsers(dest="build_command", metavar="COMMAND")
    status = commands.add_parser("status", help="show a build; --watch follows it")
    _deployment_flags(status, default=argparse.SUPPRESS)
    status.add_argument("build_id", metavar="BUILD_ID")
    status.add_argument("--watch", action="store_true", help="follow until the build ends")
    add_json_flag(status)
    status.set_defaults(func=_status)

    listing = commands.add_parser("list", help="list builds and software volumes")
    _deployment_flags(listing, default=argparse.SUPPRESS)
    listing.add_argument("--status", type=str.upper, choices=sorted(FINISHED | {"RUNNING"}))
    listing.add_argument("--seed", metavar="NAME", help="only builds of this seed name")
    listing.add_argument("--limit", type=int, default=20, help="most builds to show (20)")
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


def _deployment_flags(parser: argparse.ArgumentParser, default: Any = None) -> None:
    """On the subcommands, default=SUPPRESS: argparse lets a subcommand's defaults
    overwrite the parent's values, and `petal build --region X list` must keep X."""
    parser.add_argument("--region", default=default, help="AWS region of the petal stack")
    parser.add_argument(
        "--stack-name", default=default, help="name of the petal stack (default: petal)"
    )


# --- the deployment and its clients -------------------------------------------------


@dataclass
class Pipeline:
    deployment: Deployment
    client: Callable[[str], Any]

    @property
    def table(self) -> BuildTable:
        return BuildTable(self.client("dynamodb"), self.deployment.table_name)


def _pipeline(args: argparse.Namespace) -> Pipeline:
    config = load_user_config()
    region = args.region or config.deployment.region or aws_session.default_region()
    if region is None:
        raise DeploymentNotFound("no AWS region: pass --region or set AWS_REGION")
    stack = args.stack_name or config.deployment.stack_name

    def client(service: str) -> Any:
        return aws_session.client(service, region)

    return Pipeline(discover_deployment(client("cloudformation"), stack, region), client)


# --- petal build --seed --------------------------------------------------------------


def _variants(seed: Seed, os_flag: str | None, arch_flag: str | None) -> list[tuple[str, str]]:
    oses = [operating_system(o.strip()).name for o in os_flag.split(",")] if os_flag else [seed.os]
    arches = [a.strip() for a in arch_flag.split(",")] if arch_flag else [seed.architecture]
    for arch in arches:
        if arch not in ARCHITECTURES:
            raise ValueError(f"--arch: {arch!r} is not allowed; use x86_64 and/or arm64")
    return [(o, a) for o in dict.fromkeys(oses) for a in dict.fromkeys(arches)]


def _start(args: argparse.Namespace) -> int:
    if args.seed is None:
        args.build_parser.print_usage(sys.stderr)
        error("petal build needs --seed FILE (or a command: status, list, logs, cancel, ...)")
        return EXIT_INVALID
    if args.simulate_failure and not local_mode.is_active():
        error("--simulate-failure works only in local mode: petal --local build ...")
        return EXIT_INVALID
    try:
        seed = load_seed(args.seed)
        # The seed as written, not with the seed's defaults filled in: a request's
        # os/architecture then gets the defaults of its own variant (an arm64 builder
        # for --arch arm64), as for a seed_uri request.
        written = load_yaml_document(Path(args.seed).read_bytes()).data
        variants = _variants(seed, args.os, args.arch)
        if args.name is not None:
            check_build_id(args.name, "--name")
    except SeedError:
        raise  # a ValueError too, but reported whole by the CLI's one error guard
    except (UnknownOperatingSystem, ValueError) as failure:
        error(f"--os: {failure}" if isinstance(failure, UnknownOperatingSystem) else str(failure))
        return EXIT_INVALID
    pipeline = _pipeline(args)
    fp = fingerprint(seed)
    say = _Speaker(args.json)
    say(f"🌸 Building software volume from {args.seed} ({fp[:19]}...)")
    started: list[str] = []
    reused: list[dict[str, str]] = []
    requests: list[BuildRequest] = []
    now = datetime.now(UTC)
    for os_name, arch in variants:
        if not args.force:
            existing = find_snapshots(
                pipeline.client("ec2"),
                {TAG_FINGERPRINT: fp, TAG_OS: os_name, TAG_ARCH: arch, TAG_MANAGED: MANAGED_VALUE},
            )
            if existing:
                snap = existing[0].snapshot_id
                say(f"✅ Software volume already exists for {os_name}/{arch}: {snap}")
                reused.append({"os": os_name, "architecture": arch, "snapshot_id": snap})
                continue
        build_id = new_build_id(args.name or seed.name, now)
        if len(variants) > 1:
            build_id += f"-{operating_system(os_name).registry_name}-{arch.replace('_', '-')}"
        request = BuildRequest(
            seed=written,
            seed_uri=None,
            seed_version_id=None,
            force=args.force,
            build_id=build_id[:64].rstrip("-"),
            os=os_name,
            architecture=arch,
            source=f"cli:{args.seed}",
        )
        try:
            # The checks Prepare makes, before any build starts: a variant the seed
            # does not fit (x86_64 instance types for arm64) is bad input, not a
            # build that fails later.
            resolve_seed(parse_build_request(request.to_document()), _no_seed_reader)
        except (SeedError, BuildRequestError) as failure:
            sys.stderr.write(f"{failure}\n")
            return EXIT_INVALID
        requests.append(request)
    for request in requests:
        document = request.to_document()
        if args.simulate_failure:
            local_mode.request_failure(str(request.build_id), args.simulate_failure)
        pipeline.client("stepfunctions").start_execution(
            stateMachineArn=pipeline.deployment.state_machine_arn,
            name=request.build_id,
            input=_json(document),
        )
        started.append(str(request.build_id))
        say(f"⏳ Started build {request.build_id} ({request.os}/{request.architecture})")
    if args.json and (args.detach or not started):
        print_json({"fingerprint": fp, "started": started, "reused": reused})
    if not started:
        return EXIT_OK
    if args.detach:
        for build_id in started:
            say(f"   Track with: petal build status {build_id} --watch")
        return EXIT_OK
    return _watch(pipeline, started, seed, args.seed, as_json=args.json)


def _json(document: Any) -> str:
    return json.dumps(document, separators=(",", ":"))


def _no_seed_reader(bucket: str, key: str, version_id: str | None) -> bytes:
    raise AssertionError("the CLI sends the seed inline")


class _Speaker:
    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet

    def __call__(self, text: str) -> None:
        if not self.quiet:
            print(text, flush=True)


# --- watching -------------------------------------------------------------------------


def _watch(
    pipeline: Pipeline,
    build_ids: Sequence[str],
    seed: Seed | None,
    seed_file: str | None,
    *,
    as_json: bool = False,
    json_list: bool = True,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    table = pipeline.table
    records: dict[str, BuildRecord] = {}

    def unrecorded(build_id: str) -> BuildRecord | None:
        return _ended_without_record(pipeline, table, build_id)

    try:
        if is_terminal() and not as_json:
            with Live(console=Console(), refresh_per_second=2, transient=False) as live:
                while not _all_finished(table, build_ids, records, unrecorded):
                    live.update(rich_view(list(records.values()), datetime.now(UTC)))
                    sleep(_poll_seconds())
                live.update(rich_view(list(records.values()), datetime.now(UTC)))
        else:
            printed: dict[str, list[str]] = {b: [] for b in build_ids}
            while True:
                done = _all_finished(table, build_ids, records, unrecorded)
                if not as_json:
                    for build_id, record in records.items():
                        for line in new_lines(printed[build_id], record, len(build_ids) > 1):
                            print(line, flush=True)
                if done:
                    break
                sleep(_poll_seconds())
    except KeyboardInterrupt:
        sys.stderr.write("\nStopped watching; the build goes on. Resume with:\n")
        for build_id in build_ids:
            sys.stderr.write(f"  petal build status {build_id} --watch\n")
        return EXIT_INTERRUPTED
    if as_json:
        documents = [records[b].to_json() for b in build_ids if b in records]
        # `petal build status ID --json` prints one record, watched or not.
        print_json(documents if json_list or len(documents) != 1 else documents[0])
    else:
        for build_id in build_ids:
            if build_id in records:
                print()
                print("\n".join(summary_lines(records[build_id], seed, seed_file or "SEED")))
    ok = all(records[b].status in ("SUCCEEDED", "REUSED") for b in build_ids if b in records)
    return EXIT_OK if ok and len(records) == len(build_ids) else EXIT_FAILURE


def _poll_seconds() -> float:
    return LOCAL_POLL_SECONDS if local_mode.is_active() else POLL_SECONDS


def _all_finished(
    table: BuildTable,
    build_ids: Sequence[str],
    records: dict[str, BuildRecord],
    unrecorded: Callable[[str], BuildRecord | None],
) -> bool:
    for build_id in build_ids:
        record = table.get_build(build_id)
        if record is None and build_id not in records:
            record = unrecorded(build_id)
        if record is not None:
            records[build_id] = record
    return len(records) == len(build_ids) and all(r.status in FINISHED for r in records.values())


def _ended_without_record(
    pipeline: Pipeline, table: BuildTable, build_id: str
) -> BuildRecord | None:
    """A build whose execution ended before Prepare wrote its record (Prepare rejected
    the request, or failed): no record will come, so the execution says what happened."""
    execution = _build_execution(pipeline, build_id)
    if execution is None or execution["status"] == "RUNNING":
        return None
    record = table.get_build(build_id)  # written just before the execution ended
    if record is not None:
        return record
    request = json.loads(execution.get("input") or "{}")
    status = execution["status"]
    arn = execution["executionArn"]
    return BuildRecord(
        build_id=build_id,
        status="CANCELLED" if status == "ABORTED" else "FAILED",
        started_at=iso(execution["startDate"]),
        finished_at=iso(execution.get("stopDate") or datetime.now(UTC)),
        os=request.get("os"),
        architecture=request.get("architecture"),
        step="prepare",
        execution_arn=arn,
        error=BuildFailure(
            step="prepare",
            error=str(execution.get("error") or status),
            cause=str(execution.get("cause") or f"the execution ended {status} before it began"),
        ),
    )


def _build_execution(pipeline: Pipeline, build_id: str) -> dict[str, Any] | None:
    """DescribeExecution of the build's execution (named by the build id), if any."""
    machine = pipeline.deployment.state_machine_arn
    arn = machine.replace(":stateMachine:", ":execution:", 1) + f":{build_id}"
    try:
        execution: dict[str, Any] = pipeline.client("stepfunctions").describe_execution(
            executionArn=arn
        )
    except ClientError:
        return None  # not started (yet)
    return {**execution, "executionArn": arn}


# --- status, list, logs, cancel ------------------------------------------------------------


def _find(pipeline: Pipeline, build_id: str) -> BuildRecord | None:
    record = pipeline.table.get_build(build_id)
    if record is None:
        error(f"no build {build_id!r}: list builds with `petal build list`")
    return record


def _status(args: argparse.Namespace) -> int:
    pipeline = _pipeline(args)
    if (
        args.watch
        and pipeline.table.get_build(args.build_id) is None
        and _build_execution(pipeline, args.build_id) is not None
    ):
        # Started moments ago (`petal build --detach`): Prepare writes the record soon.
        return _watch(pipeline, [args.build_id], None, None, as_json=args.json, json_list=False)
    record = _find(pipeline, args.build_id)
    if record is None:
        return EXIT_FAILURE
    if args.watch and record.status not in FINISHED:
        return _watch(pipeline, [args.build_id], None, None, as_json=args.json, json_list=False)
    if args.json:
        print_json(record.to_json())
    else:
        print(status_line(record, datetime.now(UTC)))
        for line in step_lines(record):
            print(line)
        if record.status in ("FAILED", "CANCELLED"):
            # Why, and what to do: what `--watch` prints when the build ends.
            print("\n".join(summary_lines(record, None, "SEED")))
    return EXIT_OK if record.status != "FAILED" else EXIT_FAILURE


def _list(args: argparse.Namespace) -> int:
    pipeline = _pipeline(args)
    builds = pipeline.table.list_builds(limit=args.limit, status=args.status, seed=args.seed)
    ec2 = pipeline.client("ec2")
    volumes = find_snapshots(ec2, {TAG_MANAGED: MANAGED_VALUE})
    shared = describe_sharing(ec2, [v.snapshot_id for v in volumes]) if args.shared else {}
    if args.seed:
        volumes = [v for v in volumes if v.tags.get("petal:seed") == args.seed]
    if args.json:
        print_json(
            {
                "builds": [b.to_json() for b in builds],
                "software_volumes": [
                    {
                        "snapshot_id": v.snapshot_id,
                        "fingerprint": v.tags.get(TAG_FINGERPRINT),
                        "os": v.tags.get(TAG_OS),
                        "architecture": v.tags.get(TAG_ARCH),
                        "seed": v.tags.get("petal:seed"),
                        "packages": v.tags.get("petal:packages"),
                        "size_gb": v.size_gb,
                        "created": v.start_time,
                        "sharing": shared[v.snapshot_id].to_json()
                        if v.snapshot_id in shared
                        else None,
                    }
                    for v in volumes
                ],
            }
        )
        return EXIT_OK
    now = datetime.now(UTC)
    print("Builds:" if builds else "Builds: none yet (start one with: petal build --seed FILE)")
    for record in builds:
        print(f"  {status_line(record, now)}")
    print("Software volumes:" if volumes else "Software volumes: none")
    for v in volumes:
        line = (
            f"  {v.snapshot_id}  {v.tags.get('petal:seed', '?')}  "
            f"{v.tags.get(TAG_OS)}/{v.tags.get(TAG_ARCH)}  {v.size_gb} GiB  "
            f"{v.tags.get(TAG_FINGERPRINT, '')[:19]}...  {v.tags.get('petal:packages', '')}"
        )
        if v.snapshot_id in shared:
            line += f"  shared: {shared[v.snapshot_id].summary()}"
        print(line)
    return EXIT_OK


def _logs(args: argparse.Namespace) -> int:
    pipeline = _pipeline(args)
    record = _find(pipeline, args.build_id)
    if record is None:
        return EXIT_FAILURE
    if not record.command_id:
        error(f"build {args.build_id} has no bootstrap log yet (step: {record.step})")
        return EXIT_FAILURE
    logs = pipeline.client("logs")
    group = record.log_group or pipeline.deployment.build_log_group
    seen: set[str] = set()
    while True:
        # Read before printing: lines written until the build finished are all printed.
        latest = pipeline.table.get_build(args.build_id) if args.follow else None
        kwargs: dict[str, Any] = {"logGroupName": group, "logStreamNamePrefix": record.command_id}
        for page in logs.get_paginator("filter_log_events").paginate(**kwargs):
            for event in page.get("events", []):
                if event["eventId"] not in seen:
                    seen.add(event["eventId"])
                    sys.stdout.write(event["message"].rstrip("\n") + "\n")
        sys.stdout.flush()
        if not args.follow or latest is None or latest.status in FINISHED:
            return EXIT_OK
        try:
            time.sleep(_poll_seconds())
        except KeyboardInterrupt:
            return EXIT_INTERRUPTED


def _cancel(args: argparse.Namespace) -> int:
    pipeline = _pipeline(args)
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
