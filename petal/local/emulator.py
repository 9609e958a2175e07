"""A petal deployment on moto: the workflow tests' harness and the CLI's local mode.

`LocalAws` creates what the CDK stack creates (petal/local/deploy.py), runs every
Lambda invocation through the real handler modules (petal/local/handlers.py), and
stands in for the parts of AWS moto lacks:

- a builder whose SSM agent is Online, and a SIMULATED BUILDER AGENT that acts out
  the bootstrap and installs nothing (petal/local/simulated_builder.py);
- EventBridge: EC2 "Instance State-change Notification" for petal builders that
  terminate, and S3 "Object Created" for seeds (`upload_seed`), to the real handlers
  (petal/local/event_bus.py), with Lambda's retries and the functions' dead-letter
  queues for what they keep failing on;
- failure injection at any step (`LocalFailure`, `parse_failure("bootstrap:failed")`,
  petal/local/failures.py);
- where moto differs from AWS, patches (petal/local/moto_fixes.py).

In-process (the default, for tests) it runs under `moto.mock_aws`; with `server=True`
it starts `moto.server.ThreadedMotoServer` on a local port and points the handlers and
`client()` at it (AWS_ENDPOINT_URL), so another process (the AWS CLI) can look too.
One LocalAws at a time per process: handlers read their settings from os.environ.

    with LocalAws(repo_root) as aws:
        arn = aws.start_build({"seed": seed.to_document()}, failure=None)
        result = aws.wait(arn)
        record = aws.table.get_build(result.build_id)
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from petal.build.definition import StateMachineSettings
from petal.build.records import BuildRecord
from petal.build.steps.event import build_id_hint
from petal.build.table import BuildTable
from petal.deployment_contract import ENV_TRUSTED_ACCOUNTS, INTAKE_FUNCTION, JANITOR_FUNCTION
from petal.identifiers import BUILD_ID
from petal.local import handlers, moto_fixes
from petal.local.deploy import ACCOUNT_ID, STACK_NAME, LocalDeployment, deploy
from petal.local.event_bus import (
    EventBus,
    EventResult,
    builders_terminated,
    command_status_event,
    ec2_state_event,
    on_failure_record,
    seed_created_event,
)
from petal.local.failures import (
    FAILURE_MODES,
    FailureInjector,
    InjectedFailure,
    LocalAwsError,
    LocalFailure,
    parse_failure,
)
from petal.local.moto_backend import MotoBackend, sdk_environment
from petal.local.moto_fixes import BACKEND_LOCK
from petal.local.simulated_builder import (
    NOTHING_INSTALLED,
    SimulatedBuilders,
    SimulatedInstall,
    bootstrap_step_names,
)

__all__ = [
    "ACCOUNT_ID",
    "BACKEND_LOCK",
    "FAILURE_MODES",
    "NOTHING_INSTALLED",
    "STACK_NAME",
    "ExecutionResult",
    "InjectedFailure",
    "LocalAws",
    "LocalAwsError",
    "LocalDeployment",
    "LocalFailure",
    "SimulatedInstall",
    "bootstrap_step_names",
    "command_status_event",
    "ec2_state_event",
    "parse_failure",
]


@dataclass(frozen=True)
class ExecutionResult:
    execution_arn: str
    status: str  # SUCCEEDED, FAILED, TIMED_OUT, ABORTED
    output: dict[str, Any] | None
    error: str | None
    cause: str | None

    @property
    def build_id(self) -> str | None:
        if self.output and isinstance(self.output.get("build_id"), str):
            return str(self.output["build_id"])
        return self.execution_arn.rsplit(":", 1)[-1]


class LocalAws:
    def __init__(
        self,
        repo_root: Path,
        *,
        settings: StateMachineSettings | None = None,
        install: SimulatedInstall | None = None,
        region: str = "us-east-1",
        server: bool = False,
        build_timeout_minutes: int = 360,
        pcluster_versions: Sequence[str] = ("3.16.1",),
        trusted_accounts: Sequence[str] = (),
        log_level: str = "WARNING",
    ) -> None:
        self.repo_root = repo_root
        self.settings = settings or StateMachineSettings.fast()
        self.install = install or SimulatedInstall()
        self.region = region
        self.server = server
        self.build_timeout_minutes = build_timeout_minutes
        self.pcluster_versions = tuple(pcluster_versions)
        self.trusted_accounts = tuple(trusted_accounts)
        self.log_level = log_level
        self.metrics: list[tuple[str, float, str]] = []
        self.failures: dict[str, LocalFailure] = {}
        self.default_failure: LocalFailure | None = None
        self.handler_calls: list[tuple[str, str | None]] = []  # (module, build id)
        # What each asynchronously delivered event led to: the handler's result, or
        # the exception it raised (EventBridge would retry it).
        self.event_results: list[EventResult] = []
        # Lambda runs one invocation at a time per execution environment; so does this.
        self._runtime = threading.RLock()
        self._stopped = threading.Event()
        self._bus = EventBus(self.invoke, self.event_results, self._dead_letter)
        self._builders = SimulatedBuilders(self, self._stopped)
        self._injector = FailureInjector(self.failure_for, region)
        self._undo: list[Callable[[], None]] = []
        self._saved_env: dict[str, str | None] = {}
        self._moto = MotoBackend(server, region)
        self._deployment: LocalDeployment | None = None

    # --- lifecycle ------------------------------------------------------------------

    def __enter__(self) -> LocalAws:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> LocalAws:
        self._set_env(sdk_environment(self.region))
        self._set_env(handlers.environment(self.log_level))
        self._set_env(self._moto.start())
        handlers.reset_clients()
        self._undo.append(moto_fixes.install(self._hooks()))
        self._bus.start()
        try:
            self._deployment = deploy(
                self.client,
                region=self.region,
                repo_root=self.repo_root,
                settings=self.settings,
                pcluster_versions=self.pcluster_versions,
            )
        except Exception:
            self.stop()
            raise
        environment = self._deployment.environment(self.build_timeout_minutes)
        environment[ENV_TRUSTED_ACCOUNTS] = ",".join(self.trusted_accounts)
        self._set_env(environment)
        self._undo.append(handlers.observe(self._record_metric, self.log_level))
        return self

    def stop(self) -> None:
        if self._stopped.is_set():
            return
        with contextlib.suppress(Exception):
            self._stop_running_executions()
        with contextlib.suppress(Exception):
            self.quiesce(timeout=10)
        self._stopped.set()
        self._bus.close()
        for undo in reversed(self._undo):
            undo()
        self._undo.clear()
        self._moto.stop()
        handlers.reset_clients()
        for name, value in self._saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved_env.clear()

    def _hooks(self) -> moto_fixes.Hooks:
        return moto_fixes.Hooks(
            lambda_invoke=lambda name, body, headers: handlers.invoke_payload(
                self.invoke, name, body, headers
            ),
            command_sent=self._command_sent,
            instance_information=self._builders.instance_information,
            before_run_instances=lambda subnet_id: self._injector.check_capacity(
                subnet_id, self.deployment.subnet_ids
            ),
            instances_terminated=self._instances_terminated,
        )

    def _instances_terminated(self, instance_ids: list[str]) -> None:
        builders_terminated(self.deliver_event, instance_ids, self.region)
        # After the events: the instances are gone whatever the call then answers.
        self._injector.after_terminate(instance_ids)

    def _command_sent(self, command: Any) -> None:
        """moto reports a new command Success at once; SSM reports InProgress until the
        agent ends it, and the janitor's reconciler reads that (GetCommandInvocation)
        to tell a running install from a finished one. Then the agents start."""
        if command.document_name == self.deployment.document_name:
            command.status = "InProgress"
            for invocation in command.invocations:
                invocation.update(Status="InProgress", StatusDetails="InProgress")
        self._builders.command_sent(command)

    def _set_env(self, values: Mapping[str, str]) -> None:
        for name, value in values.items():
            self._saved_env.setdefault(name, os.environ.get(name))
            os.environ[name] = value

    # --- clients and resources -------------------------------------------------------

    @property
    def deployment(self) -> LocalDeployment:
        if self._deployment is None:
            raise LocalAwsError("LocalAws is not started: use it as a context manager")
        return self._deployment

    @property
    def endpoint_url(self) -> str | None:
        """The emulator's URL in server mode (None in-process)."""
        return self._moto.endpoint

    def client(self, service: str) -> Any:
        """A boto3 client of the emulator."""
        return self._moto.client(service)

    @property
    def table(self) -> BuildTable:
        return BuildTable(self.client("dynamodb"), self.deployment.table_name)

    # --- builds -----------------------------------------------------------------------

    def start_build(
        self,
        request: Mapping[str, Any],
        *,
        name: str | None = None,
        failure: LocalFailure | None = None,
    ) -> str:
        """Start an execution of the build state machine; returns its ARN."""
        # Named after the build id when it is one (AWS refuses names with spaces and the
        # like, which a bad build_id may hold); the build id is the execution name then.
        wanted = request.get("build_id")
        if name is None:
            name = wanted if isinstance(wanted, str) and BUILD_ID.match(wanted) else None
        name = name or f"local-{uuid.uuid4().hex[:12]}"
        if failure is not None:
            self.failures[str(request.get("build_id") or name)] = failure
        response = self.client("stepfunctions").start_execution(
            stateMachineArn=self.deployment.state_machine_arn,
            name=name,
            input=json.dumps(dict(request)),
        )
        return str(response["executionArn"])

    def wait(self, execution_arn: str, timeout: float = 120.0) -> ExecutionResult:
        """Wait for an execution to end, then for every event it caused to be handled."""
        sfn = self.client("stepfunctions")
        deadline = time.monotonic() + timeout
        while True:
            described = sfn.describe_execution(executionArn=execution_arn)
            if described["status"] != "RUNNING":
                break
            if time.monotonic() > deadline:
                raise LocalAwsError(f"{execution_arn} still RUNNING after {timeout} s")
            time.sleep(0.02)
        self.quiesce()
        output = json.loads(described["output"]) if described.get("output") else None
        return ExecutionResult(
            execution_arn=execution_arn,
            status=str(described["status"]),
            output=output,
            error=described.get("error"),
            cause=described.get("cause"),
        )

    def build(
        self,
        request: Mapping[str, Any],
        *,
        failure: LocalFailure | None = None,
        timeout: float = 120,
    ) -> ExecutionResult:
        return self.wait(self.start_build(request, failure=failure), timeout=timeout)

    def watch(self, build_id: str, interval: float = 0.2) -> Iterator[BuildRecord]:
        """Each new state of a build record until the build finishes (the CLI's view)."""
        last: dict[str, Any] | None = None
        while True:
            record = self.table.get_build(build_id)
            if record is not None and record.to_json() != last:
                last = record.to_json()
                yield record
                if record.status != "RUNNING":
                    return
            time.sleep(interval)

    def wait_for_record(
        self, build_id: str, predicate: Callable[[BuildRecord], bool], timeout: float = 30.0
    ) -> BuildRecord:
        """Poll a build record until `predicate` holds (e.g. the install has begun)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            record = self.table.get_build(build_id)
            if record is not None and predicate(record):
                return record
            time.sleep(0.02)
        raise LocalAwsError(f"build {build_id} did not reach the expected state in {timeout} s")

    def history(self, execution_arn: str) -> list[dict[str, Any]]:
        sfn = self.client("stepfunctions")
        events: list[dict[str, Any]] = []
        for page in sfn.get_paginator("get_execution_history").paginate(executionArn=execution_arn):
            events.extend(page["events"])
        return events

    def states_entered(self, execution_arn: str) -> list[str]:
        return [
            str(event["stateEnteredEventDetails"]["name"])
            for event in self.history(execution_arn)
            if event["type"].endswith("StateEntered")
        ]

    def stop_execution(self, execution_arn: str, cause: str = "stopped in local mode") -> None:
        """StopExecution, as `petal build cancel` does: no Catch runs (the janitor cleans)."""
        self.client("stepfunctions").stop_execution(executionArn=execution_arn, cause=cause)

    def _stop_running_executions(self) -> None:
        if self._deployment is None:
            return
        sfn = self.client("stepfunctions")
        for execution in sfn.list_executions(
            stateMachineArn=self._deployment.state_machine_arn, statusFilter="RUNNING"
        )["executions"]:
            sfn.stop_execution(executionArn=execution["executionArn"])

    # --- other entry points ---------------------------------------------------------

    def upload_seed(self, key: str, body: bytes | str, *, deliver: bool = True) -> dict[str, Any]:
        """Put a seed into the seed bucket; returns the S3 "Object Created" EventBridge
        event, which is also handed to the intake function unless deliver=False."""
        data = body.encode() if isinstance(body, str) else body
        bucket = self.deployment.seed_bucket
        put = self.client("s3").put_object(Bucket=bucket, Key=key, Body=data)
        event = seed_created_event(bucket, key, len(data), put, self.region)
        if deliver:
            # At once on this thread, but as EventBridge's asynchronous invocation: a
            # failure is retried and then dead-lettered, never raised to the uploader.
            self._bus.invoke_now(INTAKE_FUNCTION, event)
        return event

    def run_janitor(self, older_than_minutes: int | None = None) -> dict[str, Any]:
        event: dict[str, Any] = {"source": "aws.events", "detail-type": "Scheduled Event"}
        if older_than_minutes is not None:
            event["older_than_minutes"] = older_than_minutes
        return self.invoke(JANITOR_FUNCTION, event)

    def deliver_event(self, module: str, event: dict[str, Any]) -> None:
        """Queue an event for a function, as EventBridge would (asynchronously)."""
        self._bus.deliver(module, event)

    def lose_events(self, module: str) -> None:
        """From now on, every event for `module` is lost before it reaches the function
        (what the janitor's reconciler must cope with)."""
        self._bus.drop(module)

    def _dead_letter(
        self, module: str, event: dict[str, Any], error: BaseException, attempts: int
    ) -> None:
        """Lambda's on-failure destination: the function's dead-letter queue, if any."""
        url = self.deployment.dead_letter_queues.get(module)
        if url is None:
            return
        record = on_failure_record(self.deployment.function_arns[module], event, error, attempts)
        self.client("sqs").send_message(QueueUrl=url, MessageBody=json.dumps(record, default=str))

    def quiesce(self, timeout: float = 30.0) -> None:
        """Wait until simulated agents have finished and queued events are handled."""
        deadline = time.monotonic() + timeout
        # Agents first: an agent may queue its last event just before it ends.
        while not (self._builders.idle() and self._bus.idle()):
            if time.monotonic() > deadline:
                raise LocalAwsError("local mode did not settle: events or agents still running")
            time.sleep(0.02)

    # --- invoking handlers ------------------------------------------------------------

    def invoke(self, module: str, event: Any) -> dict[str, Any]:
        """Run a real handler as Lambda would, one invocation at a time (one "runtime").
        Raises what the handler raises."""
        build_id = build_id_hint(event) if isinstance(event, Mapping) else None
        with self._runtime:
            self.handler_calls.append((module, build_id))
            with self._injector.invocation(module, build_id, event):
                return handlers.run_handler(module, event, self.region)

    def _record_metric(self, name: str, value: float, unit: str) -> None:
        self.metrics.append((name, value, unit))

    def failure_for(self, build_id: str | None) -> LocalFailure | None:
        """The failure injected into a build: its own, else `default_failure`."""
        if build_id and build_id in self.failures:
            return self.failures[build_id]
        return self.default_failure
