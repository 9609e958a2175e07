"""The SIMULATED builder: an SSM agent that acts out the bootstrap and installs nothing.

When the bootstrap command is sent, an agent thread writes the marker lines a real
bootstrap prints (PETAL-STEP, PETAL-PROGRESS, PETAL-HEARTBEAT) into the build log
group the way the real agent uploads output (several lines per event, split wherever
the output stood), delivers the events with a marker to log_heartbeat as a CloudWatch
Logs subscription would, then delivers SSM's "EC2 Command Invocation Status-change
Notification" to callback. It says in the log that nothing is installed. It also
answers DescribeInstanceInformation (moto has none) with the builders' agents Online,
and acts out the bootstrap's injected failures. Like bootstrap.sh, it tags every marker
line with the build's log key, which it finds among the command's parameters (LogKey),
and repeats its last lines (PETAL-TAIL) before a PETAL-FAILED.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Protocol

import yaml
from botocore.exceptions import ClientError

from petal.build.bootstrap_document import (
    PARAM_BUILD_ID,
    PARAM_PARENT_SNAPSHOT,
    PARAM_SPACK_YAML,
    PARAM_VOLUME_ID,
)
from petal.build.build_cache import PARAM_BUILD_CACHE_URL, PARAM_MANIFEST_URL
from petal.build.log_events import encode_subscription_event
from petal.build.log_markers import LOG_KEY_PATTERN, sign_line
from petal.build.manifest import MANIFEST_MARKER
from petal.deployment_contract import (
    CALLBACK_FUNCTION,
    FAILURE_MARKER,
    HEARTBEAT_MARKER,
    LOG_HEARTBEAT_FUNCTION,
    PARAM_LOG_KEY,
    PROGRESS_MARKER,
    SSM_BOOTSTRAP_SCRIPT,
    STEP_MARKER,
    TAG_BUILD_ID,
    TAIL_MARKER,
)
from petal.local.deploy import ACCOUNT_ID
from petal.local.event_bus import EventResult, command_status_event
from petal.local.failures import SSM_FAILURE_STATUS
from petal.local.moto_fixes import BACKEND_LOCK
from petal.local.simulated_cache import SimulatedStack, spec_hash
from petal.local.simulated_volumes import InstallPlan, SimulatedVolumes, packages_of

if TYPE_CHECKING:
    from petal.build.table import BuildTable
    from petal.local.deploy import LocalDeployment
    from petal.local.failures import LocalFailure

NOTHING_INSTALLED: Final = (
    "petal local mode: SIMULATED builder - nothing runs on any machine and NO SOFTWARE IS "
    "INSTALLED; these lines only imitate the real bootstrap's output"
)
_BEGIN_STEP: Final = re.compile(r"^\s*begin_step\s+([a-z][a-z0-9_-]*)\s*$", re.MULTILINE)

LogLine = tuple[int, str]  # (milliseconds since the epoch, message)

# How the SSM agent uploads a command's output (amazon-ssm-agent,
# cloudwatchlogsservice.go): once a second, every whole line printed since, each ending
# in a newline, joined into one event of at most 200,000 bytes; at most 4 events per
# PutLogEvents. A line still being written waits for the next upload.
AGENT_EVENT_BYTES: Final = 200_000
AGENT_EVENTS_PER_CALL: Final = 4
# How many lines the simulated bootstrap gets out in each second, in turn: an upload
# takes what is there, so a marker may open an event, close it or sit inside it.
_LINES_PER_UPLOAD: Final = (3, 1, 4, 2, 5)
# The build log's subscription filter: any of these terms (stacks/build_logs.py).
SUBSCRIPTION_TERMS: Final = (
    PROGRESS_MARKER,
    STEP_MARKER,
    HEARTBEAT_MARKER,
    FAILURE_MARKER,
    MANIFEST_MARKER,
)
# GetCommandInvocation's StatusDetails of each final status the agent reports.
_STATUS_DETAILS: Final = {"TimedOut": "ExecutionTimedOut"}


class Harness(Protocol):
    """What the simulated builder uses of the emulator (petal.local.emulator.Harness)."""

    region: str
    repo_root: Path
    install: SimulatedInstall

    @property
    def deployment(self) -> LocalDeployment: ...

    @property
    def table(self) -> BuildTable: ...

    def client(self, service: str) -> Any: ...

    def failure_for(self, build_id: str | None) -> LocalFailure | None: ...

    def deliver_event(self, module: str, event: dict[str, Any]) -> None: ...

    def invoke(self, module: str, event: Any) -> dict[str, Any]: ...

    @property
    def event_results(self) -> list[EventResult]: ...


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
    # The command ends at once, and SSM's status event reaches callback while
    # SendCommand is still answering the bootstrap function: before its token is
    # parked. In-process only (it runs inside the SendCommand request).
    finish_before_parked: bool = False
    # The agent drops off once the builder is ready: SSM never delivers the bootstrap
    # and reports TimedOut (StatusDetails DeliveryTimedOut); nothing is printed.
    agent_unreachable: bool = False


def bootstrap_step_names(repo_root: Path) -> list[str]:
    """The steps the real bootstrap announces, in order (read from bootstrap.sh)."""
    script = (repo_root / SSM_BOOTSTRAP_SCRIPT).read_text(encoding="utf-8")
    return _BEGIN_STEP.findall(script)


class SimulatedBuilders:
    """The SSM agents of every builder: one thread per bootstrap command sent."""

    def __init__(self, harness: Harness, stopped: threading.Event) -> None:
        self._harness = harness
        self._stopped = stopped
        self._agents: list[threading.Thread] = []
        self._volumes = SimulatedVolumes()

    def command_sent(self, command: Any) -> None:
        """SendCommand returned: each instance's agent starts on the bootstrap."""
        if command.document_name != self._harness.deployment.document_name:
            return
        for instance_id in command.instance_ids:
            run = _BootstrapRun(
                self._harness,
                self._stopped,
                command.command_id,
                instance_id,
                command.parameters,
                self._volumes,
            )
            if self._harness.install.finish_before_parked:
                run.run()
                continue
            agent = threading.Thread(
                target=run.run, name=f"local-agent-{command.command_id[:8]}", daemon=True
            )
            self._agents.append(agent)
            agent.start()

    def idle(self) -> bool:
        """No agent is acting out a bootstrap."""
        return not any(agent.is_alive() for agent in self._agents)

    def instance_information(self, filters: Any) -> dict[str, Any]:
        """DescribeInstanceInformation: running builders are Online, unless the build
        asked for agent-offline."""
        from moto.ec2.models import ec2_backends

        wanted: set[str] = set()
        for item in filters or []:
            if item.get("Key") == "InstanceIds":
                wanted.update(item.get("Values", []))
        backend = ec2_backends[ACCOUNT_ID][self._harness.region]
        found = []
        for reservation in backend.reservations.values():
            for instance in reservation.instances:
                if wanted and instance.id not in wanted:
                    continue
                tags = backend.describe_tags(filters={"resource-id": [instance.id]})
                tag_map = {t["key"]: t["value"] for t in tags}
                failure = self._harness.failure_for(tag_map.get(TAG_BUILD_ID))
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


class _Transcript:
    """The bootstrap's output on a simulated clock, handed to `flush` a batch per
    heartbeat interval, as CloudWatch Logs delivers a stream to a subscription."""

    def __init__(
        self, start: datetime, beat: timedelta, flush: Callable[[list[LogLine]], None]
    ) -> None:
        self.clock = start
        self._next_beat = start
        self._beat = beat
        self._flush = flush
        self._batch: list[LogLine] = []

    def emit(self, message: str) -> None:
        self._batch.append((_ms(self.clock), message))

    def advance(self, by: timedelta) -> None:
        self.clock += by
        self.heartbeats_due()

    def heartbeats_due(self) -> None:
        while self.clock >= self._next_beat:
            beat_line = f"{HEARTBEAT_MARKER} {int(self._next_beat.timestamp())}"
            self._batch.append((_ms(self._next_beat), beat_line))
            self._next_beat += self._beat
            self.flush()

    def flush(self) -> None:
        self._flush(self._batch)
        self._batch = []


class _BootstrapRun:
    """One bootstrap command on one builder, acted out by its agent thread."""

    def __init__(
        self,
        harness: Harness,
        stopped: threading.Event,
        command_id: str,
        instance_id: str,
        parameters: dict[str, Any],
        volumes: SimulatedVolumes,
    ) -> None:
        self._harness = harness
        self._volumes = volumes
        self._stopped = stopped
        self._command_id = command_id
        self._instance_id = instance_id
        self._parameters = dict(parameters)
        self._stream = f"{command_id}/{instance_id}/bootstrap/stdout"
        self._before_parked = harness.install.finish_before_parked
        self._uploads = itertools.cycle(_LINES_PER_UPLOAD)

    def run(self) -> None:
        try:
            self._simulate()
        except Exception as error:  # a broken simulation must show, not hang a build
            events = self._agent_events([(_ms(datetime.now(UTC)), f"agent error: {error}")])
            _write_log(self._harness, self._stream, events)
            raise

    def _simulate(self) -> None:
        harness = self._harness
        build_id = str(_first(self._parameters.get(PARAM_BUILD_ID)) or "")
        failure = harness.failure_for(build_id)
        mode = failure.mode if failure is not None and failure.step == "bootstrap" else None
        if not self._before_parked and not self._wait_until_task_waits():
            return
        if harness.install.agent_unreachable:
            self._finish_command("TimedOut", details="DeliveryTimedOut")
            return
        spack_yaml = str(_first(self._parameters.get(PARAM_SPACK_YAML)) or "")
        specs = _root_specs(spack_yaml)
        steps = bootstrap_step_names(harness.repo_root)
        minutes = max(harness.install.minutes, 0.01)
        beat = max(harness.install.heartbeat_minutes, 0.01)
        volume_id = str(_first(self._parameters.get(PARAM_VOLUME_ID)) or "")
        plan = InstallPlan(packages_of(spack_yaml), self._volume_at_start(volume_id))
        # A fresh build's install step; an incremental one takes the share of what it installs.
        fresh_install = timedelta(minutes=minutes * 0.8)
        installing = sum(plan.share(p) for p in plan.packages if plan.installs(p))
        transcript = _Transcript(
            datetime.now(UTC) - timedelta(minutes=minutes * 0.2) - fresh_install * installing,
            timedelta(minutes=beat),
            self._flush,
        )
        other_share = timedelta(minutes=minutes * 0.2) / max(len(steps), 1)
        transcript.emit(NOTHING_INSTALLED)
        transcript.heartbeats_due()
        cache_url = str(_first(self._parameters.get(PARAM_BUILD_CACHE_URL)) or "")
        stack = SimulatedStack(harness.client("s3"), cache_url, specs)
        for step in steps:
            transcript.emit(f"{STEP_MARKER} {step}")
            if step in ("push", "manifest"):
                self._record(transcript, stack, step)
            elif step == "prune":
                for identity in plan.removed:
                    transcript.emit(f"==> petal local mode: removed {identity} (simulated)")
            elif step != "install":
                transcript.emit(f"petal local mode: step {step} simulated, nothing done")
            else:
                if not self._install(transcript, stack, plan, fresh_install, mode):
                    return
                transcript.emit(plan.report(fresh_install.total_seconds() / 60))
                continue
            transcript.advance(other_share)
        self._volumes.finished(volume_id, plan.identities)
        transcript.emit(f"{STEP_MARKER} done")
        transcript.flush()
        self._finish_command("Success")

    def _record(self, transcript: _Transcript, stack: SimulatedStack, step: str) -> None:
        """The push and manifest steps: what they leave in the emulated buckets."""
        if step == "push":
            for spec in stack.push():
                transcript.emit(f"petal local mode: {spec} pushed to the build cache (simulated)")
            return
        url = str(_first(self._parameters.get(PARAM_MANIFEST_URL)) or "")
        if url:
            parameters = {k: str(_first(v) or "") for k, v in self._parameters.items()}
            transcript.emit(f"{MANIFEST_MARKER} {stack.upload_manifest(url, parameters)}")

    def _volume_at_start(self, volume_id: str) -> frozenset[str]:
        from moto.ec2.models import ec2_backends

        with BACKEND_LOCK:
            backend = ec2_backends[ACCOUNT_ID][self._harness.region]
            return self._volumes.at_start(backend, volume_id)

    def _install(
        self,
        transcript: _Transcript,
        stack: SimulatedStack,
        plan: InstallPlan,
        fresh_install: timedelta,
        mode: str | None,
    ) -> bool:
        """The install step, spec by spec, each taking its share of a fresh build's
        install (petal.local.simulated_volumes) unless the volume has it already; False
        if `mode` ended the bootstrap in it."""
        specs = stack.specs
        packages = {p.spec: p for p in plan.packages}
        parent = str(_first(self._parameters.get(PARAM_PARENT_SNAPSHOT)) or "")
        for index, spec in enumerate(specs, start=1):
            transcript.emit(f"{PROGRESS_MARKER} {index}/{len(specs)} {spec}")
            package = packages.get(spec)
            if package is not None and not plan.installs(package):
                stack.sources[spec_hash(spec)] = "parent"
                transcript.emit(f"[+] petal local mode: {spec} is on the volume ({parent})")
            elif stack.install(spec) == "cache":
                transcript.emit(f"==> petal local mode: {spec} from the build cache (simulated)")
            else:
                transcript.emit(f"==> petal local mode: {spec} NOT installed (simulation)")
            if mode in SSM_FAILURE_STATUS or mode in ("terminated", "hang"):
                transcript.flush()
                self._end_early(str(mode), "install", spec)
                return False
            if package is not None and plan.installs(package):
                transcript.advance(fresh_install * plan.share(package))
            if self._harness.install.pace_seconds > 0:
                transcript.flush()
                self._stopped.wait(self._harness.install.pace_seconds)
        return True

    def _end_early(self, mode: str, step: str, spec: str) -> None:
        now = _ms(datetime.now(UTC))
        if mode == "hang":
            return  # silence: the task's HeartbeatSeconds runs out
        if mode == "terminated":
            self._harness.client("ec2").terminate_instances(InstanceIds=[self._instance_id])
            # The command then fails too, but after the instance events: too late to matter.
            self._finish_command("Failed")
            return
        lines: list[LogLine] = []
        if mode == "failed":
            error = f"==> Error: simulated failure while installing {spec}"
            lines = [
                (now, error),
                (now, f"{TAIL_MARKER} {error}"),
                (now, f"{FAILURE_MARKER} {step}: spack install failed for {spec} (simulated)"),
            ]
        self._flush(lines)
        self._finish_command(SSM_FAILURE_STATUS[mode])

    def _wait_until_task_waits(self, timeout: float = 15.0) -> bool:
        """Harness plumbing, not the instance's: the bootstrap handler parks the token
        after SendCommand returns, and moto arms the task's heartbeat clock only after
        the handler returns. Wait for both, so no event arrives before a real one could."""
        table, sfn = self._harness.table, self._harness.client("stepfunctions")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self._stopped.is_set():
            token = table.get_token(self._command_id)
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

    def _flush(self, batch: list[LogLine]) -> None:
        """Upload lines as the agent does, and deliver the events that hold a marker to
        log_heartbeat as the subscription does: several events in one invocation. The
        markers go out tagged, as bootstrap.sh's `marker` prints them."""
        if not batch:
            return
        events = self._agent_events([(t, self._tagged(line)) for t, line in batch])
        _publish(self._harness, self._stream, events)

    def _tagged(self, line: str) -> str:
        key = str(_first(self._parameters.get(PARAM_LOG_KEY)) or "")
        if not line.startswith("PETAL-") or LOG_KEY_PATTERN.fullmatch(key) is None:
            return line  # output, or no valid key: untagged, as bootstrap.sh prints it
        return sign_line(key, str(_first(self._parameters.get(PARAM_BUILD_ID)) or ""), line)

    def _agent_events(self, lines: list[LogLine]) -> list[LogLine]:
        """The log events the agent makes of `lines` (in the order printed): each
        upload's lines joined, each ending in a newline; stamped with the upload's time
        (its last line's), never earlier than the event before."""
        events: list[LogLine] = []
        pending = list(lines)
        stamp = 0
        while pending:
            take = next(self._uploads)
            upload, pending = pending[:take], pending[take:]
            message = ""
            for moment, line in upload:
                stamp = max(stamp, moment)
                text = line + "\n"
                if message and len((message + text).encode()) > AGENT_EVENT_BYTES:
                    events.append((stamp, message))
                    message = ""
                message += text
            events.append((stamp, message))
        return events

    def _finish_command(self, status: str, details: str | None = None) -> None:
        """The command ends with `status` (GetCommandInvocation's StatusDetails:
        `details`, else what the agent reports for it): in SSM, and as status events to
        callback. The event names the status only, as SSM's does."""
        harness = self._harness
        _set_command_status(
            harness.region,
            self._command_id,
            status,
            details or _STATUS_DETAILS.get(status, status),
        )
        document = harness.deployment.document_name

        def event(reported: str) -> dict[str, Any]:
            return command_status_event(
                self._command_id, self._instance_id, document, reported, harness.region
            )

        events = [event(status)]
        if harness.install.duplicate_events:
            events += [
                events[0],
                event("InProgress"),
                event("Failed" if status == "Success" else "Success"),
            ]
        for each in events:
            self._deliver_status(each)

    def _deliver_status(self, event: dict[str, Any]) -> None:
        if not self._before_parked:
            self._harness.deliver_event(CALLBACK_FUNCTION, event)
            return
        # EventBridge may hand the event to callback before SendCommand has answered the
        # bootstrap function: run callback here, inside SendCommand. Lambda runs a
        # failed asynchronous invocation again later; a delivery through the bus stands
        # for that retry (it runs once the bootstrap function has returned).
        try:
            outcome: Any = self._harness.invoke(CALLBACK_FUNCTION, event)
        except Exception as error:
            self._harness.event_results.append((CALLBACK_FUNCTION, event, error))
            self._harness.deliver_event(CALLBACK_FUNCTION, event)
        else:
            self._harness.event_results.append((CALLBACK_FUNCTION, event, outcome))


def write_builder_output(harness: Harness, log_stream: str, lines: list[str]) -> None:
    """What any builder can do: write `lines` (one event) into any stream of the build
    log group, and have the subscription deliver them to log_heartbeat. The builder
    role may write every stream of the group (IAM cannot tie a stream name to the
    calling instance), so the workflow tests use this to show that a build heeds only
    its own builder's output."""
    _publish(
        harness, log_stream, [(_ms(datetime.now(UTC)), "".join(f"{line}\n" for line in lines))]
    )


def _publish(harness: Harness, log_stream: str, events: list[LogLine]) -> None:
    """Write `events` into a stream of the build log group, and deliver those that hold
    a marker to log_heartbeat as the subscription does: several events in one invocation."""
    _write_log(harness, log_stream, events)
    matching = [(t, m) for t, m in events if any(term in m for term in SUBSCRIPTION_TERMS)]
    if matching:
        harness.deliver_event(
            LOG_HEARTBEAT_FUNCTION,
            encode_subscription_event(
                log_group=harness.deployment.build_log_group,
                log_stream=log_stream,
                messages=matching,
                owner=ACCOUNT_ID,
            ),
        )


def _write_log(harness: Harness, log_stream: str, events: list[LogLine]) -> None:
    logs = harness.client("logs")
    log_group = harness.deployment.build_log_group
    with contextlib.suppress(ClientError):
        logs.create_log_stream(logGroupName=log_group, logStreamName=log_stream)
    for start in range(0, len(events), AGENT_EVENTS_PER_CALL):
        logs.put_log_events(
            logGroupName=log_group,
            logStreamName=log_stream,
            logEvents=[
                {"timestamp": t, "message": m}
                for t, m in events[start : start + AGENT_EVENTS_PER_CALL]
            ],
        )


def _set_command_status(region: str, command_id: str, status: str, details: str) -> None:
    from moto.ssm.models import ssm_backends

    backend = ssm_backends[ACCOUNT_ID][region]
    with BACKEND_LOCK:
        for command in backend._commands:
            if command.command_id == command_id:
                command.status = status
                for invocation in command.invocations:
                    invocation.update(
                        Status=status,
                        StatusDetails=details,
                        ResponseCode=0 if status == "Success" else 1,
                    )


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
    # SSM parameters are lists of strings.
    if isinstance(value, list | tuple):
        return value[0] if value else None
    return value


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)
