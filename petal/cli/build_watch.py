"""The deployed build pipeline, and watching its builds until they finish: `petal build
--seed` without --detach, `petal build status ID --watch` and `petal build logs ID --follow`.

The watcher polls the builds table the pipeline writes, and the execution of a build
still RUNNING: a build whose execution ended before it had a record, or with its record
still RUNNING (its cleanup failed), is read from Step Functions instead.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from botocore.exceptions import ClientError
from rich.console import Console
from rich.live import Live

from petal.aws import session as aws_session
from petal.aws.deployment import Deployment, DeploymentNotFound, discover_deployment
from petal.aws.session import region_problem
from petal.build.log_markers import check_line
from petal.build.records import (
    FINISHED,
    SUCCESSFUL,
    BuildFailure,
    BuildRecord,
    iso,
    record_of_ended_execution,
)
from petal.build.table import BuildTable
from petal.cli import hints
from petal.cli.build_progress import BuildRegions, new_lines, rich_view, summary_lines
from petal.cli.output import is_terminal, print_json, terminal_safe
from petal.errors import EXIT_FAILURE, EXIT_OK, InvalidInput
from petal.local import mode as local_mode
from petal.seed.model import Seed
from petal.user_config import load_user_config

POLL_SECONDS: Final = 5.0
# Before a line of the build log that looks like a marker but is not the builder's.
UNVERIFIED: Final = "[UNVERIFIED]"
LOCAL_POLL_SECONDS: Final = 0.3
EXIT_INTERRUPTED: Final = 130


@dataclass
class Pipeline:
    """The deployed pipeline and a client factory for its region."""

    deployment: Deployment
    client: Callable[[str], Any]

    @property
    def table(self) -> BuildTable:
        return BuildTable(self.client("dynamodb"), self.deployment.table_name)


def configured_region() -> str | None:
    """The region a command uses unless told otherwise: ~/.petal/config.yaml's
    deployment.region (or PETAL_REGION), else AWS_REGION, AWS_DEFAULT_REGION or the
    AWS profile's."""
    return load_user_config().deployment.region or aws_session.default_region()


def build_regions(pipeline: Pipeline) -> BuildRegions:
    return BuildRegions(built_in=pipeline.deployment.region, create_default=configured_region())


def find_pipeline(region: str | None, stack_name: str | None) -> Pipeline:
    """The pipeline deployed in the region and stack given, else the user's defaults."""
    config = load_user_config()
    problem = region_problem(region, "--region") if region else None
    if problem:
        raise InvalidInput(problem)
    region = region or configured_region()
    if region is None:
        raise DeploymentNotFound(f"no AWS region: {aws_session.REGION_SOURCES}")
    stack = stack_name or config.deployment.stack_name

    def client(service: str) -> Any:
        return aws_session.client(service, region)

    return Pipeline(discover_deployment(client("cloudformation"), stack, region), client)


class Speaker:
    """Progress lines for people: quiet under --json, where one document is printed."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet

    def __call__(self, text: str) -> None:
        if not self.quiet:
            print(text, flush=True)


def poll_seconds() -> float:
    return LOCAL_POLL_SECONDS if local_mode.is_active() else POLL_SECONDS


def watch(
    pipeline: Pipeline,
    build_ids: Sequence[str],
    seed: Seed | None,
    seed_file: str | None,
    *,
    as_json: bool = False,
    json_list: bool = True,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Follow the builds until all have finished, then print how they ended."""
    watched = _Watched(pipeline, pipeline.table, build_ids)
    try:
        if is_terminal() and not as_json:
            _follow_live(watched, sleep)
        else:
            _follow_plain(watched, sleep, quiet=as_json)
    except KeyboardInterrupt:
        return interrupted(build_ids)
    if as_json:
        _print_json_records(watched, json_list)
    else:
        _print_summaries(watched, seed, seed_file, build_regions(pipeline))
    return EXIT_OK if watched.all_succeeded() else EXIT_FAILURE


@dataclass
class _Watched:
    """The builds being watched and the latest record of each."""

    pipeline: Pipeline
    table: BuildTable
    build_ids: Sequence[str]
    records: dict[str, BuildRecord] = field(default_factory=dict)

    def poll(self) -> bool:
        """Read every build's record; True once all have one and all have finished."""
        for build_id in self.build_ids:
            record = self.table.get_build(build_id)
            if record is None and build_id not in self.records:
                record = _ended_without_record(self.pipeline, self.table, build_id)
            elif record is not None and record.status == "RUNNING":
                record = _execution_ended(self.pipeline, self.table, record)
            if record is not None:
                self.records[build_id] = record
        return len(self.records) == len(self.build_ids) and all(
            r.status in FINISHED for r in self.records.values()
        )

    def recorded(self) -> list[BuildRecord]:
        """The records in the order the builds were named."""
        return [self.records[b] for b in self.build_ids if b in self.records]

    def all_succeeded(self) -> bool:
        ok = all(r.status in SUCCESSFUL for r in self.recorded())
        return ok and len(self.records) == len(self.build_ids)


def _follow_live(watched: _Watched, sleep: Callable[[float], None]) -> None:
    with Live(console=Console(), refresh_per_second=2, transient=False) as live:
        while not watched.poll():
            live.update(rich_view(list(watched.records.values()), datetime.now(UTC)))
            sleep(poll_seconds())
        live.update(rich_view(list(watched.records.values()), datetime.now(UTC)))


def _follow_plain(watched: _Watched, sleep: Callable[[float], None], *, quiet: bool) -> None:
    """One line per change, for pipes and logs; `quiet` (--json) prints nothing."""
    printed: dict[str, list[str]] = {b: [] for b in watched.build_ids}
    prefix_id = len(watched.build_ids) > 1
    while True:
        done = watched.poll()
        if not quiet:
            for build_id, record in watched.records.items():
                for line in new_lines(printed[build_id], record, prefix_id):
                    print(line, flush=True)
        if done:
            return
        sleep(poll_seconds())


def _print_json_records(watched: _Watched, json_list: bool) -> None:
    documents = [record.to_json() for record in watched.recorded()]
    # `petal build status ID --json` prints one record, watched or not.
    print_json(documents if json_list or len(documents) != 1 else documents[0])


def interrupted(build_ids: Sequence[str]) -> int:
    """Ctrl-C while builds run: they go on; say which, and how to follow them again."""
    if not build_ids:
        sys.stderr.write("\nInterrupted before any build started.\n")
        return EXIT_INTERRUPTED
    sys.stderr.write("\nStopped watching; the build goes on. Resume with:\n")
    for build_id in build_ids:
        sys.stderr.write(f"  {hints.petal(f'build status {build_id} --watch')}\n")
    return EXIT_INTERRUPTED


def _print_summaries(
    watched: _Watched, seed: Seed | None, seed_file: str | None, regions: BuildRegions
) -> None:
    for record in watched.recorded():
        print()
        print("\n".join(summary_lines(record, seed, seed_file or "SEED", regions=regions)))


def _ended_without_record(
    pipeline: Pipeline, table: BuildTable, build_id: str
) -> BuildRecord | None:
    """A build whose execution ended before Prepare wrote its record (Prepare rejected
    the request, or failed): no record will come, so the execution says what happened."""
    execution = build_execution(pipeline, build_id)
    if execution is None or execution["status"] == "RUNNING":
        return None
    record = table.get_build(build_id)  # written just before the execution ended
    if record is not None:
        return record
    return record_of_ended_execution(build_id, execution, now=datetime.now(UTC))


def _execution_ended(pipeline: Pipeline, table: BuildTable, record: BuildRecord) -> BuildRecord:
    """The record, or how the build ended if its execution has ended while the record
    still says RUNNING (the cleanup failed before it could record the outcome; the
    execution was stopped): the watcher follows the execution too, not only the record,
    so it never waits on a record nothing will update. Not written back: the janitor
    closes the record."""
    execution = build_execution(pipeline, record.build_id)
    if execution is None or execution["status"] == "RUNNING":
        return record
    if execution.get("executionArn") != record.execution_arn and record.execution_arn:
        return record  # another execution's build under this id
    latest = table.get_build(record.build_id)  # written just before the execution ended
    if latest is not None and latest.status != "RUNNING":
        return latest
    status = execution["status"]
    step = record.error.step if record.error else (record.step or "unknown")
    cause = str(execution.get("cause") or f"the build's execution ended {status}")
    if record.error is not None:
        cause = f"{record.error.cause} {cause}"
    return BuildRecord(
        **{
            **(latest or record).__dict__,
            "status": "CANCELLED" if status == "ABORTED" else "FAILED",
            "finished_at": iso(execution.get("stopDate") or datetime.now(UTC)),
            "step": step,
            "error": BuildFailure(
                step=step,
                error=str(execution.get("error") or status),
                cause=cause,
            ),
        }
    )


def build_execution(pipeline: Pipeline, build_id: str) -> dict[str, Any] | None:
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


def print_log(
    pipeline: Pipeline, build_id: str, group: str, command_id: str, *, follow: bool
) -> int:
    """Print the build's bootstrap log; with `follow`, until the build has finished.

    Any builder may write into the build's stream: a line that claims to be a marker
    but whose tag does not verify with the build's log key is printed after
    UNVERIFIED, and the builder's own markers without their tags (the key itself is
    never printed)."""
    logs = pipeline.client("logs")
    _, key = pipeline.table.get_build_and_log_key(build_id)
    seen: set[str] = set()
    while True:
        # Read before printing: lines written until the build finished are all printed.
        latest = pipeline.table.get_build(build_id) if follow else None
        _print_new_events(logs, group, command_id, seen, _LogLines(build_id, key))
        if not follow or latest is None or latest.status in FINISHED:
            return EXIT_OK
        try:
            time.sleep(poll_seconds())
        except KeyboardInterrupt:
            return EXIT_INTERRUPTED


@dataclass(frozen=True)
class _LogLines:
    """How a line of one build's log is printed."""

    build_id: str
    key: str | None

    def shown(self, line: str) -> str:
        if line.lstrip().startswith("PETAL-"):
            text, verified = check_line(line, key=self.key, build_id=self.build_id)
            line = text if verified else f"{UNVERIFIED} {line}"
        # A builder wrote it: no escape sequence reaches the terminal.
        return terminal_safe(line)


def _print_new_events(
    logs: Any, group: str, command_id: str, seen: set[str], lines: _LogLines
) -> None:
    """The log lines not in `seen` yet; `seen` is updated."""
    kwargs: dict[str, Any] = {"logGroupName": group, "logStreamNamePrefix": command_id}
    for page in logs.get_paginator("filter_log_events").paginate(**kwargs):
        for event in page.get("events", []):
            if event["eventId"] not in seen:
                seen.add(event["eventId"])
                for line in str(event["message"]).rstrip("\n").split("\n"):
                    sys.stdout.write(lines.shown(line) + "\n")
    sys.stdout.flush()
