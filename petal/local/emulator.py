"""A petal deployment on moto: the workflow tests' harness and the CLI's local mode.

`LocalAws` creates what the CDK stack creates (builds table, seed bucket, bootstrap
document, build log group, builder instance profile and network, the build state
machine from the real statemachines/build.asl.json with the same substitutions, the
Lambda functions), runs every Lambda invocation through the real handler modules, and
stands in for the parts of AWS moto lacks:

- a builder whose SSM agent is Online (moto has no DescribeInstanceInformation);
- a SIMULATED BUILDER AGENT: when the bootstrap command is sent, it writes the marker
  lines a real bootstrap prints (PETAL-STEP, PETAL-PROGRESS, PETAL-HEARTBEAT) into the
  build log group, delivers them to log_heartbeat as a CloudWatch Logs subscription
  would, then delivers SSM's "EC2 Command Invocation Status-change Notification" to
  callback. It installs nothing, and says so in the log;
- EventBridge: EC2 "Instance State-change Notification" for petal builders that
  terminate, and S3 "Object Created" for seeds (`upload_seed`), to the real handlers;
- failure injection at any step (`LocalFailure`, `parse_failure("bootstrap:failed")`).

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

import base64
import contextlib
import importlib
import json
import logging
import os
import queue
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final, cast
from urllib.parse import urlsplit

import yaml
from botocore.config import Config
from botocore.exceptions import ClientError

from petal.aws.session import new_session
from petal.build.bootstrap_document import (
    PARAM_BUILD_ID,
    PARAM_SPACK_YAML,
    render_bootstrap_document,
)
from petal.build.definition import StateMachineSettings, definition_substitutions, render_definition
from petal.build.log_events import encode_subscription_event
from petal.build.records import BuildRecord
from petal.build.table import BuildTable, table_definition
from petal.deployment_contract import (
    CALLBACK_FUNCTION,
    ENV_BUILD_LOG_GROUP,
    ENV_BUILD_TIMEOUT_MINUTES,
    ENV_DOCUMENT,
    ENV_INSTANCE_PROFILE,
    ENV_SECURITY_GROUP,
    ENV_SEED_BUCKET,
    ENV_STATE_MACHINE,
    ENV_SUBNETS,
    ENV_TABLE,
    ENV_TRUSTED_ACCOUNTS,
    FAILURE_MARKER,
    HEARTBEAT_MARKER,
    INTAKE_FUNCTION,
    JANITOR_FUNCTION,
    LOG_HEARTBEAT_FUNCTION,
    OUTPUT_BUILD_LOG_GROUP,
    OUTPUT_DOCUMENT,
    OUTPUT_SEED_BUCKET,
    OUTPUT_STATE_MACHINE_ARN,
    OUTPUT_TABLE,
    PROGRESS_MARKER,
    ROLE_BUILDER,
    SSM_BOOTSTRAP_SCRIPT,
    STATE_MACHINE_FILE,
    STEP_FUNCTIONS,
    STEP_MARKER,
    TAG_BUILD_ID,
    TAG_MANAGED,
    TAG_ROLE,
)
from petal.platforms import ARCHITECTURES, OPERATING_SYSTEMS

ACCOUNT_ID: Final = "123456789012"
# Owner of the official ParallelCluster AMIs; DescribeImages(Owners=["amazon"]) matches
# its alias.
AMAZON_AMI_OWNER: Final = "247102896272"
STACK_NAME: Final = "petal-local"
MOTO_CONFIG: Final = {
    "stepfunctions": {"execute_state_machine": True},
    "lambda": {"use_docker": False},
}
HANDLER_MODULES: Final = (
    *STEP_FUNCTIONS.values(),
    CALLBACK_FUNCTION,
    LOG_HEARTBEAT_FUNCTION,
    INTAKE_FUNCTION,
    JANITOR_FUNCTION,
)
# Where a named step's failure is injected: the handler module of that step.
STEP_MODULES: Final[dict[str, tuple[str, ...]]] = {
    "prepare": ("prepare",),
    "launch": ("launch",),
    "ready": ("check_ready",),
    "bootstrap": ("bootstrap",),
    "snapshot": ("snapshot", "check_snapshot"),
    "cleanup": ("cleanup",),
}
FAILURE_MODES: Final[dict[str, tuple[str, ...]]] = {
    "prepare": ("exception",),
    "launch": ("exception", "capacity", "capacity-first-subnet", "throttle-once"),
    "ready": ("exception", "agent-offline"),
    "bootstrap": ("exception", "failed", "timed-out", "cancelled", "terminated", "hang"),
    "snapshot": ("exception", "error"),
    "cleanup": ("exception",),
}
# What the simulated agent reports for a failed/timed-out/cancelled command.
SSM_FAILURE_STATUS: Final = {"failed": "Failed", "timed-out": "TimedOut", "cancelled": "Cancelled"}
NOTHING_INSTALLED: Final = (
    "petal local mode: SIMULATED builder - nothing runs on any machine and NO SOFTWARE IS "
    "INSTALLED; these lines only imitate the real bootstrap's output"
)
_MISSING: Final = object()
# moto keeps every backend in plain dicts and lists and takes no lock: a scan of a
# DynamoDB table while another thread puts an item fails with "dictionary changed size
# during iteration". AWS serves concurrent requests safely, so the emulator serves one
# request at a time (in-process and in server mode), except Lambda's Invoke: the handler
# it runs makes requests of its own, from this thread or (server mode) over HTTP.
BACKEND_LOCK: Final = threading.RLock()
_LAMBDA_INVOKE_PATH: Final = re.compile(r"^/[0-9-]+/functions/[^?]+/invocations/?(\?|$)")
_BEGIN_STEP: Final = re.compile(r"^\s*begin_step\s+([a-z][a-z0-9_-]*)\s*$", re.MULTILINE)


class InjectedFailure(Exception):
    """Raised in place of a handler by local mode's failure injection."""


class LocalAwsError(RuntimeError):
    """Local mode could not do what was asked; the message says why."""


@dataclass(frozen=True)
class LocalFailure:
    """Make one step of a build fail. Modes per step are in FAILURE_MODES:

    exception            the step's handler raises (every step)
    capacity             launch: every subnet reports InsufficientInstanceCapacity
    capacity-first-subnet  launch: only the first subnet does (the next one is used)
    throttle-once        launch: the first attempt raises RetryableAwsError (retried)
    agent-offline        ready: the SSM agent never comes Online
    failed / timed-out / cancelled  bootstrap: the command ends with that SSM status
    terminated           bootstrap: the builder is terminated mid-install
    hang                 bootstrap: the install stops printing (heartbeat timeout)
    error                snapshot: EBS reports the snapshot in state error
    """

    step: str
    mode: str = "exception"

    def __post_init__(self) -> None:
        if self.step not in FAILURE_MODES:
            raise LocalAwsError(
                f"unknown step {self.step!r} to fail; use one of {', '.join(FAILURE_MODES)}"
            )
        if self.mode not in FAILURE_MODES[self.step]:
            raise LocalAwsError(
                f"step {self.step} cannot fail with {self.mode!r}; use one of "
                f"{', '.join(FAILURE_MODES[self.step])}"
            )


def parse_failure(text: str) -> LocalFailure:
    """`step` or `step:mode`, e.g. "snapshot" or "bootstrap:timed-out" (CLI --fail-at)."""
    step, _, mode = text.strip().partition(":")
    return LocalFailure(step, mode or "exception")


@dataclass(frozen=True)
class SimulatedInstall:
    """How the simulated bootstrap behaves. Time is simulated: log timestamps span
    `minutes`, with a heartbeat every `heartbeat_minutes`, but it runs in moments."""

    minutes: float = 1.0
    heartbeat_minutes: float = 5.0
    # Deliver the final status event twice, then a stale InProgress and a conflicting
    # Failed after it: what at-least-once, unordered EventBridge delivery may do.
    duplicate_events: bool = False
    # Real seconds spent on each root spec, so a person watching local mode sees the
    # install progress (tests keep 0).
    pace_seconds: float = 0.0


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


@dataclass(frozen=True)
class LocalDeployment:
    """The names and ids of the emulated deployment (what the stack's outputs give)."""

    region: str
    table_name: str
    seed_bucket: str
    document_name: str
    build_log_group: str
    state_machine_arn: str
    instance_profile_arn: str
    security_group_id: str
    subnet_ids: tuple[str, ...]
    function_arns: dict[str, str]
    image_ids: dict[str, str]  # "<version>/<os>/<arch>" -> ami id

    def outputs(self) -> dict[str, str]:
        """The stack's CloudFormation outputs, as `petal` discovers them."""
        return {
            OUTPUT_STATE_MACHINE_ARN: self.state_machine_arn,
            OUTPUT_SEED_BUCKET: self.seed_bucket,
            OUTPUT_TABLE: self.table_name,
            OUTPUT_BUILD_LOG_GROUP: self.build_log_group,
            OUTPUT_DOCUMENT: self.document_name,
        }

    def environment(self, build_timeout_minutes: int) -> dict[str, str]:
        return {
            ENV_TABLE: self.table_name,
            ENV_SEED_BUCKET: self.seed_bucket,
            ENV_DOCUMENT: self.document_name,
            ENV_INSTANCE_PROFILE: self.instance_profile_arn,
            ENV_SECURITY_GROUP: self.security_group_id,
            ENV_SUBNETS: ",".join(self.subnet_ids),
            ENV_BUILD_LOG_GROUP: self.build_log_group,
            ENV_STATE_MACHINE: self.state_machine_arn,
            ENV_TRUSTED_ACCOUNTS: "",
            ENV_BUILD_TIMEOUT_MINUTES: str(build_timeout_minutes),
        }


@dataclass
class _FakeLambdaContext:
    function_name: str
    invoked_function_arn: str
    memory_limit_in_mb: int = 256
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    log_group_name: str = "/aws/lambda/petal-local"
    log_stream_name: str = "local"
    function_version: str = "$LATEST"

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


def bootstrap_step_names(repo_root: Path) -> list[str]:
    """The steps the real bootstrap announces, in order (read from bootstrap.sh)."""
    script = (repo_root / SSM_BOOTSTRAP_SCRIPT).read_text(encoding="utf-8")
    return _BEGIN_STEP.findall(script)


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
        self.event_results: list[tuple[str, dict[str, Any], Any]] = []
        self._runtime = threading.RLock()
        self._events: queue.Queue[tuple[str, dict[str, Any]] | None] = queue.Queue()
        self._busy = threading.Semaphore(0)
        self._pending = 0
        self._pending_lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._undo: list[Callable[[], None]] = []
        self._saved_env: dict[str, str | None] = {}
        self._fired_once: set[tuple[str, str]] = set()
        self._launching: str | None = None
        self._mock: Any = None
        self._server: Any = None
        self._endpoint: str | None = None
        self._deployment: LocalDeployment | None = None
        self._stopped = threading.Event()
        self._session: Any = None
        self._clients: dict[str, Any] = {}
        self._clients_lock = threading.Lock()

    # --- lifecycle ------------------------------------------------------------------

    def __enter__(self) -> LocalAws:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> LocalAws:
        self._set_env(
            {
                "AWS_DEFAULT_REGION": self.region,
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_SECURITY_TOKEN": "testing",
                "AWS_SESSION_TOKEN": "testing",
                "POWERTOOLS_TRACE_DISABLED": "true",
                "POWERTOOLS_SERVICE_NAME": "petal",
                "POWERTOOLS_METRICS_NAMESPACE": "Petal",
                "POWERTOOLS_LOG_LEVEL": self.log_level,
                # Metrics reach `self.metrics` through a listener; the EMF lines
                # Powertools would print are CloudWatch's input, noise here.
                "POWERTOOLS_METRICS_DISABLED": "true",
                # Only petal's fake official AMIs: loading moto's hundreds is slow.
                "MOTO_EC2_LOAD_DEFAULT_AMIS": "false",
            }
        )
        if self.server:
            self._start_server()
        else:
            from moto import mock_aws

            self._mock = mock_aws(config=cast(Any, MOTO_CONFIG))
            self._mock.start()
        from lambdas import clients

        clients.reset()
        self._install_patches()
        worker = threading.Thread(target=self._event_worker, name="local-eventbridge", daemon=True)
        worker.start()
        self._threads.append(worker)
        try:
            self._deployment = self._deploy()
        except Exception:
            self.stop()
            raise
        environment = self._deployment.environment(self.build_timeout_minutes)
        environment[ENV_TRUSTED_ACCOUNTS] = ",".join(self.trusted_accounts)
        self._set_env(environment)
        from lambdas import observability

        self._undo.append(observability.add_metric_listener(self._record_metric))
        previous_level = observability.logger.log_level
        observability.logger.setLevel(self.log_level)
        self._undo.append(lambda: observability.logger.setLevel(previous_level))
        return self

    def stop(self) -> None:
        if self._stopped.is_set():
            return
        with contextlib.suppress(Exception):
            self._stop_running_executions()
        with contextlib.suppress(Exception):
            self.quiesce(timeout=10)
        self._stopped.set()
        self._events.put(None)
        for undo in reversed(self._undo):
            undo()
        self._undo.clear()
        if self._mock is not None:
            self._mock.stop()
            self._mock = None
        if self._server is not None:
            self._server.stop()
            self._server = None
        from lambdas import clients

        clients.reset()
        for name, value in self._saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved_env.clear()

    def _set_env(self, values: Mapping[str, str]) -> None:
        for name, value in values.items():
            self._saved_env.setdefault(name, os.environ.get(name))
            os.environ[name] = value

    def _start_server(self) -> None:
        from moto.server import ThreadedMotoServer

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        # werkzeug logs every request of the emulator at INFO.
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
        self._server.start()
        self._endpoint = f"http://127.0.0.1:{port}"
        # moto's state machine interpreter calls Lambda and the others on this port.
        self._set_env({"MOTO_PORT": str(port), "AWS_ENDPOINT_URL": self._endpoint})
        import urllib.request

        request = urllib.request.Request(  # noqa: S310 - the local emulator only
            f"{self._endpoint}/moto-api/config",
            data=json.dumps(MOTO_CONFIG).encode(),
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10):  # noqa: S310
            pass

    # --- clients and resources -------------------------------------------------------

    @property
    def deployment(self) -> LocalDeployment:
        if self._deployment is None:
            raise LocalAwsError("LocalAws is not started: use it as a context manager")
        return self._deployment

    @property
    def endpoint_url(self) -> str | None:
        """The emulator's URL in server mode (None in-process)."""
        return self._endpoint

    def client(self, service: str) -> Any:
        """A boto3 client of the emulator (cached: botocore loads each service model once
        per session, which is most of the cost of a client)."""
        with self._clients_lock:
            if service not in self._clients:
                if self._session is None:
                    self._session = _shared_session()
                kwargs: dict[str, Any] = {"region_name": self.region}
                if self._endpoint:
                    kwargs["endpoint_url"] = self._endpoint
                config = Config(retries={"mode": "standard", "max_attempts": 3})
                self._clients[service] = self._session.client(service, config=config, **kwargs)
            return self._clients[service]

    @property
    def table(self) -> BuildTable:
        return BuildTable(self.client("dynamodb"), self.deployment.table_name)

    def _deploy(self) -> LocalDeployment:
        iam, ec2 = self.client("iam"), self.client("ec2")
        trust = json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": "ec2.amazonaws.com"},
                        "Action": "sts:AssumeRole",
                    }
                ],
            }
        )
        iam.create_role(RoleName=f"{STACK_NAME}-builder", AssumeRolePolicyDocument=trust)
        profile = iam.create_instance_profile(InstanceProfileName=f"{STACK_NAME}-builder")
        iam.add_role_to_instance_profile(
            InstanceProfileName=f"{STACK_NAME}-builder", RoleName=f"{STACK_NAME}-builder"
        )
        service_role = iam.create_role(
            RoleName=f"{STACK_NAME}-service", AssumeRolePolicyDocument=trust
        )["Role"]["Arn"]

        vpc = ec2.create_vpc(CidrBlock="10.42.0.0/16")["Vpc"]["VpcId"]
        subnets = tuple(
            ec2.create_subnet(
                VpcId=vpc, CidrBlock=f"10.42.{index}.0/24", AvailabilityZone=f"{self.region}{az}"
            )["Subnet"]["SubnetId"]
            for index, az in enumerate(("a", "b"))
        )
        security_group = ec2.create_security_group(
            GroupName=f"{STACK_NAME}-builder", Description="petal builder", VpcId=vpc
        )["GroupId"]
        image_ids = self._register_official_images()

        table_name = f"{STACK_NAME}-builds"
        dynamodb = self.client("dynamodb")
        dynamodb.create_table(**table_definition(table_name))
        dynamodb.update_time_to_live(
            TableName=table_name,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": "ttl"},
        )

        bucket = f"{STACK_NAME}-seeds-{ACCOUNT_ID}"
        s3 = self.client("s3")
        if self.region == "us-east-1":
            s3.create_bucket(Bucket=bucket)
        else:
            s3.create_bucket(
                Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": self.region}
            )
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})

        document_name = f"{STACK_NAME}-bootstrap"
        self.client("ssm").create_document(
            Name=document_name,
            Content=json.dumps(render_bootstrap_document(self.repo_root)),
            DocumentType="Command",
            DocumentFormat="JSON",
        )
        log_group = f"/{STACK_NAME}/builds"
        self.client("logs").create_log_group(logGroupName=log_group)

        lambda_client = self.client("lambda")
        function_arns: dict[str, str] = {}
        for module in HANDLER_MODULES:
            function_arns[module] = lambda_client.create_function(
                FunctionName=f"{STACK_NAME}-{module}",
                Runtime="python3.12",
                Role=service_role,
                Handler=f"lambdas.{module}.handler",
                Code={"ZipFile": _placeholder_zip()},
            )["FunctionArn"]
        arns = {key: function_arns[module] for key, module in STEP_FUNCTIONS.items()}
        definition = render_definition(
            (self.repo_root / STATE_MACHINE_FILE).read_text(encoding="utf-8"),
            definition_substitutions(arns, self.settings),
        )
        state_machine_arn = self.client("stepfunctions").create_state_machine(
            name=f"{STACK_NAME}-build", definition=definition, roleArn=service_role, type="STANDARD"
        )["stateMachineArn"]
        return LocalDeployment(
            region=self.region,
            table_name=table_name,
            seed_bucket=bucket,
            document_name=document_name,
            build_log_group=log_group,
            state_machine_arn=state_machine_arn,
            instance_profile_arn=profile["InstanceProfile"]["Arn"],
            security_group_id=security_group,
            subnet_ids=subnets,
            function_arns=function_arns,
            image_ids=image_ids,
        )

    def _register_official_images(self) -> dict[str, str]:
        """Fake official ParallelCluster AMIs, owned by "amazon" as DescribeImages sees it.

        moto registers images only for the caller's account through its API, so they
        go straight into its EC2 backend with the owner alias ParallelCluster's AMIs have.
        """
        from moto.ec2.models import ec2_backends
        from moto.ec2.models.amis import Ami
        from moto.ec2.utils import random_ami_id

        from petal.platforms import official_ami_name_pattern

        backend = ec2_backends[ACCOUNT_ID][self.region]
        created = datetime(2025, 1, 1, tzinfo=UTC)
        ids: dict[str, str] = {}
        with BACKEND_LOCK:
            for version in self.pcluster_versions:
                for os_name in OPERATING_SYSTEMS:
                    for arch in ARCHITECTURES:
                        ami_id = random_ami_id()
                        prefix = official_ami_name_pattern(version, os_name, arch).rstrip("*")
                        backend.amis[ami_id] = Ami(
                            backend,
                            ami_id,
                            name=f"{prefix} 2025-01-01T00-00-00.000Z",
                            description=f"AWS ParallelCluster AMI {version} (petal local mode)",
                            owner_id=AMAZON_AMI_OWNER,
                            owner_alias="amazon",
                            public=True,
                            architecture=arch,
                            virtualization_type="hvm",
                            root_device_type="ebs",
                            root_device_name="/dev/xvda",
                            creation_date=created,
                            region_name=f"{self.region}a",
                        )
                        ids[f"{version}/{os_name}/{arch}"] = ami_id
        return ids

    # --- builds -----------------------------------------------------------------------

    def start_build(
        self,
        request: Mapping[str, Any],
        *,
        name: str | None = None,
        failure: LocalFailure | None = None,
    ) -> str:
        """Start an execution of the build state machine; returns its ARN."""
        name = name or str(request.get("build_id") or f"local-{uuid.uuid4().hex[:12]}")
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
        event = {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": "Object Created",
            "source": "aws.s3",
            "account": ACCOUNT_ID,
            "time": _now_text(),
            "region": self.region,
            "resources": [f"arn:aws:s3:::{bucket}"],
            "detail": {
                "version": "0",
                "bucket": {"name": bucket},
                "object": {
                    "key": key,
                    "size": len(data),
                    "etag": str(put.get("ETag", "")).strip('"'),
                    "version-id": put.get("VersionId"),
                    "sequencer": uuid.uuid4().hex[:18].upper(),
                },
                "request-id": uuid.uuid4().hex[:16].upper(),
                "requester": ACCOUNT_ID,
                "reason": "PutObject",
            },
        }
        if deliver:
            self.invoke(INTAKE_FUNCTION, event)
        return event

    def run_janitor(self, older_than_minutes: int | None = None) -> dict[str, Any]:
        event: dict[str, Any] = {"source": "aws.events", "detail-type": "Scheduled Event"}
        if older_than_minutes is not None:
            event["older_than_minutes"] = older_than_minutes
        return self.invoke(JANITOR_FUNCTION, event)

    def deliver_event(self, module: str, event: dict[str, Any]) -> None:
        """Queue an event for a function, as EventBridge would (asynchronously)."""
        with self._pending_lock:
            self._pending += 1
        self._events.put((module, event))

    def quiesce(self, timeout: float = 30.0) -> None:
        """Wait until simulated agents have finished and queued events are handled."""
        deadline = time.monotonic() + timeout
        while True:
            with self._pending_lock:
                idle = self._pending == 0
            agents = [t for t in self._threads if t.name.startswith("local-agent") and t.is_alive()]
            if idle and not agents:
                return
            if time.monotonic() > deadline:
                raise LocalAwsError("local mode did not settle: events or agents still running")
            time.sleep(0.02)

    def _event_worker(self) -> None:
        while True:
            item = self._events.get()
            if item is None:
                return
            module, event = item
            try:
                try:
                    outcome: Any = self.invoke(module, event)
                except Exception as error:
                    outcome = error
                self.event_results.append((module, event, outcome))
            finally:
                with self._pending_lock:
                    self._pending -= 1

    # --- invoking handlers ------------------------------------------------------------

    def invoke(self, module: str, event: Any) -> dict[str, Any]:
        """Run a real handler as Lambda would, one invocation at a time (one "runtime").
        Raises what the handler raises."""
        from petal.build.steps.event import build_id_hint

        build_id = build_id_hint(event) if isinstance(event, Mapping) else None
        with self._runtime:
            self.handler_calls.append((module, build_id))
            self._inject(module, build_id, event)
            handler = importlib.import_module(f"lambdas.{module}").handler
            context = _FakeLambdaContext(
                function_name=f"{STACK_NAME}-{module}",
                invoked_function_arn=(
                    f"arn:aws:lambda:{self.region}:{ACCOUNT_ID}:function:{STACK_NAME}-{module}"
                ),
            )
            self._launching = build_id if module == "launch" else None
            try:
                result: dict[str, Any] = handler(event, context)
            finally:
                self._launching = None
            return result

    def _lambda_invoke(
        self,
        function_name: str,
        qualifier: str | None,
        body: Any,
        headers: Any,
        response_headers: Any,
    ) -> bytes:
        """Replacement of moto's LambdaSimpleBackend.invoke: the real handler runs."""
        name = function_name.rsplit(":", 1)[-1] if ":function:" in function_name else function_name
        name = name.split(":function:")[-1]
        module = name.removeprefix(f"{STACK_NAME}-")
        if module not in HANDLER_MODULES:
            response_headers["x-amz-function-error"] = "Unhandled"
            return _error_payload("ResourceNotFoundException", f"no handler for {function_name}")
        event = json.loads(body) if body else {}
        try:
            return json.dumps(self.invoke(module, event), default=str).encode()
        except Exception as error:
            response_headers["x-amz-function-error"] = "Unhandled"
            return _error_payload(type(error).__name__, str(error))

    def _record_metric(self, name: str, value: float, unit: str) -> None:
        self.metrics.append((name, value, unit))

    # --- failure injection ------------------------------------------------------------

    def failure_for(self, build_id: str | None) -> LocalFailure | None:
        if build_id and build_id in self.failures:
            return self.failures[build_id]
        return self.default_failure

    def _inject(self, module: str, build_id: str | None, event: Any) -> None:
        failure = self.failure_for(build_id)
        if failure is None or module not in STEP_MODULES[failure.step]:
            return
        if failure.mode == "exception":
            raise InjectedFailure(
                f"failure injected into the {failure.step} step by local mode ({module})"
            )
        if failure.mode == "throttle-once" and (build_id or "", module) not in self._fired_once:
            from petal.aws.errors import RetryableAwsError

            self._fired_once.add((build_id or "", module))
            raise RetryableAwsError(
                "EC2 RunInstances failed: RequestLimitExceeded: Request limit exceeded. "
                "(injected once by local mode)"
            )
        if failure.mode == "error" and module == "check_snapshot":
            snapshot_id = (event.get("snapshot") or {}).get("snapshot_id")
            self._set_snapshot_state(str(snapshot_id), "error")

    def _set_snapshot_state(self, snapshot_id: str, state: str) -> None:
        from moto.ec2.models import ec2_backends

        with BACKEND_LOCK:
            snapshot = ec2_backends[ACCOUNT_ID][self.region].snapshots.get(snapshot_id)
            if snapshot is not None:
                snapshot.status = state

    # --- patches: what moto lacks ---------------------------------------------------

    def _install_patches(self) -> None:
        from moto.awslambda_simple.models import LambdaSimpleBackend
        from moto.ec2.responses.instances import InstanceResponse
        from moto.ssm.models import SimpleSystemManagerBackend
        from moto.ssm.responses import SimpleSystemManagerResponse

        harness = self

        def lambda_invoke(
            backend: Any,
            function_name: str,
            qualifier: str | None,
            body: Any,
            headers: Any,
            response_headers: Any,
        ) -> bytes:
            return harness._lambda_invoke(function_name, qualifier, body, headers, response_headers)

        original_send = SimpleSystemManagerBackend.send_command

        def send_command(backend: Any, *args: Any, **kwargs: Any) -> Any:
            command = original_send(backend, *args, **kwargs)
            harness._on_command_sent(command)
            return command

        def describe_instance_information(response: Any) -> str:
            return json.dumps(harness._instance_information(response._get_param("Filters")))

        original_run = InstanceResponse.run_instances
        original_terminate = InstanceResponse.terminate_instances

        def run_instances(response: Any) -> Any:
            harness._maybe_no_capacity(response._get_param("SubnetId"))
            return original_run(response)

        def terminate_instances(response: Any) -> Any:
            ids = [str(i) for i in response._get_param("InstanceIds", [])]
            result = original_terminate(response)
            harness._on_terminated(ids)
            return result

        from moto.core.responses import EmptyResult
        from moto.stepfunctions.responses import StepFunctionResponse

        def send_task_failure(response: Any) -> Any:
            # moto 5.2.5 drops the cause of SendTaskFailure; AWS keeps it, and petal's
            # failure messages are in it.
            response.stepfunction_backend.send_task_failure(
                response._get_param("taskToken"),
                error=response._get_param("error"),
                cause=response._get_param("cause"),
            )
            return EmptyResult()

        from moto.stepfunctions.parser.api import HistoryEventType, TaskTimedOutEventDetails
        from moto.stepfunctions.parser.asl.component.common.error_name import (
            states_error_name_type,
        )
        from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import (
            FailureEvent,
        )
        from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import (
            StatesErrorName,
        )
        from moto.stepfunctions.parser.asl.component.state.exec.state_task.state_task import (
            StateTask,
        )
        from moto.stepfunctions.parser.asl.eval.callback.callback import HeartbeatTimeoutError
        from moto.stepfunctions.parser.asl.eval.event import event_detail

        # A TypedDict of every event kind's details, all optional in practice.
        event_details: Any = event_detail.EventDetails

        original_from_error = StateTask._from_error

        def from_error(state: Any, env: Any, ex: Exception) -> Any:
            # moto 5.2.5 reports a missed heartbeat as States.Timeout; AWS reports
            # States.HeartbeatTimeout, which petal's failure message tells apart.
            if isinstance(ex, HeartbeatTimeoutError):
                return FailureEvent(
                    env=env,
                    error_name=StatesErrorName(
                        typ=states_error_name_type.StatesErrorNameType.StatesHeartbeatTimeout
                    ),
                    event_type=HistoryEventType.TaskTimedOut,
                    event_details=event_details(
                        taskTimedOutEventDetails=TaskTimedOutEventDetails(
                            error="States.HeartbeatTimeout"
                        )
                    ),
                )
            return original_from_error(state, env, ex)

        from moto.stepfunctions.parser.asl.eval.environment import Environment
        from moto.stepfunctions.parser.asl.eval.program_state import ProgramStopped

        original_set_error = Environment.set_error

        def set_error(env: Any, error: Any) -> None:
            # moto 5.2.5: a task interrupted by StopExecution then reports an error that
            # overwrites the stop, so the execution ends FAILED; AWS says ABORTED (and
            # the janitor tells a cancelled build from a failed one by it).
            if isinstance(env._program_state, ProgramStopped):
                return
            original_set_error(env, error)

        from moto.stepfunctions.parser.models import StepFunctionsParserBackend

        original_get_executions = StepFunctionsParserBackend._get_executions

        def get_executions(backend: Any, execution_status: Any = None) -> list[Any]:
            # moto 5.2.5: SendTaskSuccess/Failure/Heartbeat look through every
            # execution's worker environment, which an execution started a moment ago
            # does not have yet (AttributeError): a build starting while another
            # one's bootstrap reports lost that report, and the other build hung
            # until its heartbeat timeout. Only those lookups call this.
            return [
                execution
                for execution in original_get_executions(backend, execution_status)
                if execution.exec_worker is not None and execution.exec_worker.env is not None
            ]

        from moto.core.botocore_stubber import BotocoreStubber
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication

        original_process_request = BotocoreStubber.process_request
        original_dispatch = DomainDispatcherApplication.__call__

        def process_request(stubber: Any, request: Any) -> Any:
            if _LAMBDA_INVOKE_PATH.match(urlsplit(request.url).path):
                return original_process_request(stubber, request)
            with BACKEND_LOCK:
                return original_process_request(stubber, request)

        def dispatch(app: Any, environ: dict[str, Any], start_response: Any) -> Any:
            if _LAMBDA_INVOKE_PATH.match(str(environ.get("PATH_INFO", ""))):
                return original_dispatch(app, environ, start_response)
            with BACKEND_LOCK:
                return original_dispatch(app, environ, start_response)

        from moto.stepfunctions.parser.backend.execution import Execution

        original_stop = Execution.stop

        def stop_execution(execution: Any, *args: Any, **kwargs: Any) -> None:
            # moto 5.2.5 marks the execution stopped but leaves a task that waits for
            # its token waiting until the heartbeat runs out, and reports RUNNING all
            # that time; AWS aborts the execution at once.
            original_stop(execution, *args, **kwargs)
            worker = execution.exec_worker
            if worker is not None and worker.env is not None:
                pool = worker.env.callback_pool_manager._pool
                for endpoint in list(pool.values()):
                    endpoint.interrupt_all()

        patches: list[tuple[Any, str, Any]] = [
            (BotocoreStubber, "process_request", process_request),
            (DomainDispatcherApplication, "__call__", dispatch),
            (Execution, "stop", stop_execution),
            (StepFunctionsParserBackend, "_get_executions", get_executions),
            (StepFunctionResponse, "send_task_failure", send_task_failure),
            (Environment, "set_error", set_error),
            (StateTask, "_from_error", from_error),
            (LambdaSimpleBackend, "invoke", lambda_invoke),
            (SimpleSystemManagerBackend, "send_command", send_command),
            (
                SimpleSystemManagerResponse,
                "describe_instance_information",
                describe_instance_information,
            ),
            (InstanceResponse, "run_instances", run_instances),
            (InstanceResponse, "terminate_instances", terminate_instances),
        ]
        for owner, name, replacement in patches:
            previous = owner.__dict__.get(name, _MISSING)
            setattr(owner, name, replacement)

            def undo(owner: Any = owner, name: str = name, previous: Any = previous) -> None:
                if previous is _MISSING:
                    delattr(owner, name)
                else:
                    setattr(owner, name, previous)

            self._undo.append(undo)

    def _maybe_no_capacity(self, subnet_id: str | None) -> None:
        failure = self.failure_for(self._launching)
        if failure is None or failure.step != "launch":
            return
        first = self.deployment.subnet_ids[0]
        if failure.mode == "capacity" or (
            failure.mode == "capacity-first-subnet" and subnet_id == first
        ):
            from moto.ec2.exceptions import EC2ClientError

            raise EC2ClientError(
                "InsufficientInstanceCapacity",
                "We currently do not have sufficient capacity in the Availability Zone you "
                "requested (injected by petal local mode).",
            )

    def _instance_information(self, filters: Any) -> dict[str, Any]:
        from moto.ec2.models import ec2_backends

        wanted: set[str] = set()
        for item in filters or []:
            if item.get("Key") == "InstanceIds":
                wanted.update(item.get("Values", []))
        backend = ec2_backends[ACCOUNT_ID][self.region]
        found = []
        for reservation in backend.reservations.values():
            for instance in reservation.instances:
                if wanted and instance.id not in wanted:
                    continue
                tags = backend.describe_tags(filters={"resource-id": [instance.id]})
                tag_map = {t["key"]: t["value"] for t in tags}
                failure = self.failure_for(tag_map.get(TAG_BUILD_ID))
                offline = failure is not None and failure.mode == "agent-offline"
                if instance.state != "running" or offline:
                    continue
                found.append(
                    {
                        "InstanceId": instance.id,
                        "PingStatus": "Online",
                        "PlatformType": "Linux",
                        "AgentVersion": "3.3.0.0-petal-local",
                        "ResourceType": "EC2Instance",
                    }
                )
        return {"InstanceInformationList": found}

    def _on_terminated(self, instance_ids: list[str]) -> None:
        """EventBridge's EC2 state-change events, for petal builders, to callback."""
        from moto.ec2.models import ec2_backends

        backend = ec2_backends[ACCOUNT_ID][self.region]
        for instance_id in instance_ids:
            tags = backend.describe_tags(filters={"resource-id": [instance_id]})
            tag_map = {t["key"]: t["value"] for t in tags}
            if tag_map.get(TAG_MANAGED) != "true" or tag_map.get(TAG_ROLE) != ROLE_BUILDER:
                continue
            for state in ("shutting-down", "terminated"):
                self.deliver_event(
                    CALLBACK_FUNCTION, ec2_state_event(instance_id, state, self.region)
                )

    def _on_command_sent(self, command: Any) -> None:
        if command.document_name != self.deployment.document_name:
            return
        for instance_id in command.instance_ids:
            agent = threading.Thread(
                target=self._run_agent,
                args=(command.command_id, instance_id, dict(command.parameters)),
                name=f"local-agent-{command.command_id[:8]}",
                daemon=True,
            )
            self._threads.append(agent)
            agent.start()

    # --- the simulated builder agent --------------------------------------------------

    def _run_agent(self, command_id: str, instance_id: str, parameters: dict[str, Any]) -> None:
        try:
            self._simulate_bootstrap(command_id, instance_id, parameters)
        except Exception as error:  # a broken simulation must show, not hang a build
            self._write_log(
                command_id, instance_id, [(_ms(datetime.now(UTC)), f"agent error: {error}")]
            )
            raise

    def _simulate_bootstrap(
        self, command_id: str, instance_id: str, parameters: dict[str, Any]
    ) -> None:
        build_id = str(_first(parameters.get(PARAM_BUILD_ID)) or "")
        failure = self.failure_for(build_id)
        mode = failure.mode if failure is not None and failure.step == "bootstrap" else None
        if not self._wait_until_task_waits(command_id):
            return
        specs = _root_specs(str(_first(parameters.get(PARAM_SPACK_YAML)) or ""))
        steps = bootstrap_step_names(self.repo_root)
        minutes = max(self.install.minutes, 0.01)
        beat = max(self.install.heartbeat_minutes, 0.01)
        end = datetime.now(UTC)
        clock = end - timedelta(minutes=minutes)
        install_share = timedelta(minutes=minutes * 0.8)
        other_share = timedelta(minutes=minutes * 0.2) / max(len(steps), 1)
        batch: list[tuple[int, str]] = []
        next_beat = clock

        def emit(message: str) -> None:
            batch.append((_ms(clock), message))

        def heartbeat_due() -> None:
            nonlocal next_beat, batch
            while clock >= next_beat:
                batch.append((_ms(next_beat), f"{HEARTBEAT_MARKER} {int(next_beat.timestamp())}"))
                next_beat += timedelta(minutes=beat)
                # A delivery per heartbeat interval, as CloudWatch batches a stream.
                self._flush(command_id, instance_id, batch)
                batch = []

        emit(NOTHING_INSTALLED)
        heartbeat_due()
        for step in steps:
            emit(f"{STEP_MARKER} {step}")
            if step != "install":
                emit(f"petal local mode: step {step} simulated, nothing done")
                clock += other_share
                heartbeat_due()
                continue
            per_spec = install_share / max(len(specs), 1)
            for index, spec in enumerate(specs, start=1):
                emit(f"{PROGRESS_MARKER} {index}/{len(specs)} {spec}")
                emit(f"==> petal local mode: {spec} NOT installed (simulation)")
                if mode in SSM_FAILURE_STATUS or mode in ("terminated", "hang"):
                    self._flush(command_id, instance_id, batch)
                    self._end_bootstrap_early(command_id, instance_id, str(mode), step, spec)
                    return
                clock += per_spec
                heartbeat_due()
                if self.install.pace_seconds > 0:
                    self._flush(command_id, instance_id, batch)
                    batch = []
                    self._stopped.wait(self.install.pace_seconds)
        emit(f"{STEP_MARKER} done")
        self._flush(command_id, instance_id, batch)
        self._finish_command(command_id, instance_id, "Success")

    def _end_bootstrap_early(
        self, command_id: str, instance_id: str, mode: str, step: str, spec: str
    ) -> None:
        now = _ms(datetime.now(UTC))
        if mode == "hang":
            return  # silence: the task's HeartbeatSeconds runs out
        if mode == "terminated":
            self.client("ec2").terminate_instances(InstanceIds=[instance_id])
            # The command then fails too, but after the instance events: too late to matter.
            self._finish_command(command_id, instance_id, "Failed")
            return
        lines: list[tuple[int, str]] = []
        if mode == "failed":
            lines = [
                (now, f"==> Error: simulated failure while installing {spec}"),
                (now, f"{FAILURE_MARKER} {step}: spack install failed for {spec} (simulated)"),
            ]
        self._flush(command_id, instance_id, lines)
        self._finish_command(command_id, instance_id, SSM_FAILURE_STATUS[mode])

    def _wait_until_task_waits(self, command_id: str, timeout: float = 15.0) -> bool:
        """Harness plumbing, not the instance's: the bootstrap handler parks the token
        after SendCommand returns, and moto arms the task's heartbeat clock only after
        the handler returns. Wait for both, so no event arrives before a real one could."""
        table, sfn = self.table, self.client("stepfunctions")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self._stopped.is_set():
            token = table.get_token(command_id)
            if token is not None:
                try:
                    sfn.send_task_heartbeat(taskToken=token.task_token)
                    return True
                except ClientError as error:
                    code = error.response["Error"]["Code"]
                    if code in ("TaskTimedOut", "TaskDoesNotExist"):
                        return False
            time.sleep(0.01)
        return False

    def _flush(self, command_id: str, instance_id: str, batch: list[tuple[int, str]]) -> None:
        if not batch:
            return
        self._write_log(command_id, instance_id, batch)
        markers = [(t, m) for t, m in batch if m.lstrip().startswith("PETAL-")]
        if markers:
            self.deliver_event(
                LOG_HEARTBEAT_FUNCTION,
                encode_subscription_event(
                    log_group=self.deployment.build_log_group,
                    log_stream=_stdout_stream(command_id, instance_id),
                    messages=markers,
                    owner=ACCOUNT_ID,
                ),
            )

    def _write_log(self, command_id: str, instance_id: str, lines: list[tuple[int, str]]) -> None:
        logs = self.client("logs")
        stream = _stdout_stream(command_id, instance_id)
        with contextlib.suppress(ClientError):
            logs.create_log_stream(
                logGroupName=self.deployment.build_log_group, logStreamName=stream
            )
        logs.put_log_events(
            logGroupName=self.deployment.build_log_group,
            logStreamName=stream,
            # In time order; lines of the same millisecond stay in the order printed.
            logEvents=[
                {"timestamp": t, "message": m} for t, m in sorted(lines, key=lambda line: line[0])
            ],
        )

    def _finish_command(self, command_id: str, instance_id: str, status: str) -> None:
        self._set_command_status(command_id, status)
        events = [
            command_status_event(
                command_id, instance_id, self.deployment.document_name, status, self.region
            )
        ]
        if self.install.duplicate_events:
            events += [
                events[0],
                command_status_event(
                    command_id,
                    instance_id,
                    self.deployment.document_name,
                    "InProgress",
                    self.region,
                ),
                command_status_event(
                    command_id,
                    instance_id,
                    self.deployment.document_name,
                    "Failed" if status == "Success" else "Success",
                    self.region,
                ),
            ]
        for event in events:
            self.deliver_event(CALLBACK_FUNCTION, event)

    def _set_command_status(self, command_id: str, status: str) -> None:
        from moto.ssm.models import ssm_backends

        backend = ssm_backends[ACCOUNT_ID][self.region]
        with BACKEND_LOCK:
            for command in backend._commands:
                if command.command_id == command_id:
                    command.status = status
                    for invocation in command.invocations:
                        invocation.update(
                            Status=status,
                            StatusDetails=status,
                            ResponseCode=0 if status == "Success" else 1,
                        )


_SESSION: list[Any] = []
_SESSION_LOCK = threading.Lock()


def _shared_session() -> Any:
    """One boto3 session per process: its service models load once, not per LocalAws."""
    with _SESSION_LOCK:
        if not _SESSION:
            _SESSION.append(new_session())
        return _SESSION[0]


# --- event shapes ----------------------------------------------------------------------


def command_status_event(
    command_id: str, instance_id: str, document_name: str, status: str, region: str
) -> dict[str, Any]:
    """SSM's "EC2 Command Invocation Status-change Notification", as EventBridge sends it."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "EC2 Command Invocation Status-change Notification",
        "source": "aws.ssm",
        "account": ACCOUNT_ID,
        "time": _now_text(),
        "region": region,
        "resources": [f"arn:aws:ec2:{region}:{ACCOUNT_ID}:instance/{instance_id}"],
        "detail": {
            "command-id": command_id,
            "document-name": document_name,
            "instance-id": instance_id,
            "requested-date-time": _now_text(),
            "status": status,
        },
    }


def ec2_state_event(instance_id: str, state: str, region: str) -> dict[str, Any]:
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "EC2 Instance State-change Notification",
        "source": "aws.ec2",
        "account": ACCOUNT_ID,
        "time": _now_text(),
        "region": region,
        "resources": [f"arn:aws:ec2:{region}:{ACCOUNT_ID}:instance/{instance_id}"],
        "detail": {"instance-id": instance_id, "state": state},
    }


def _stdout_stream(command_id: str, instance_id: str) -> str:
    return f"{command_id}/{instance_id}/bootstrap/stdout"


def _root_specs(spack_yaml_base64: str) -> list[str]:
    """The root specs of the rendered spack.yaml, in the order the bootstrap installs."""
    try:
        document = yaml.safe_load(base64.b64decode(spack_yaml_base64))
        definitions = document["spack"]["definitions"]
    except (ValueError, TypeError, KeyError, yaml.YAMLError):
        return ["(unreadable spack.yaml)"]
    specs: list[str] = []
    for definition in definitions:
        for values in definition.values():
            specs.extend(str(v) for v in values)
    return specs or ["(no specs)"]


def _first(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return value[0] if value else None
    return value


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _now_text() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _error_payload(error_type: str, message: str) -> bytes:
    return json.dumps({"errorType": error_type, "errorMessage": message, "stackTrace": []}).encode()


def _placeholder_zip() -> bytes:
    """Code for create_function: moto only needs a zip; the real handlers run instead."""
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("README.txt", "petal local mode runs lambdas/ from the repository")
    return buffer.getvalue()
