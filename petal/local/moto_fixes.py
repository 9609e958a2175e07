"""Patches to moto 5.2.5: where it differs from AWS in a way petal can see, and the
hooks through which the emulator stands in for what moto lacks.

Each patch is one function returning (class, attribute, replacement); `install` applies
them all and returns the undo. The emulator's stand-ins are reached through `Hooks`,
so this module depends on no other part of the emulator.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

# moto keeps every backend in plain dicts and lists and takes no lock: a scan of a
# DynamoDB table while another thread puts an item fails with "dictionary changed size
# during iteration". AWS serves concurrent requests safely, so the emulator serves one
# request at a time (in-process and in server mode), except Lambda's Invoke: the handler
# it runs makes requests of its own, from this thread or (server mode) over HTTP.
BACKEND_LOCK: Final = threading.RLock()
_LAMBDA_INVOKE_PATH: Final = re.compile(r"^/[0-9-]+/functions/[^?]+/invocations/?(\?|$)")
_MISSING: Final = object()

Patch = tuple[Any, str, Callable[..., Any]]


@dataclass(frozen=True)
class Hooks:
    """What patched moto hands to the emulator."""

    # (function name or ARN, request body, response headers) -> response payload
    lambda_invoke: Callable[[str, Any, Any], bytes]
    # A moto SSM Command, just sent.
    command_sent: Callable[[Any], None]
    # DescribeInstanceInformation's Filters -> its response.
    instance_information: Callable[[Any], dict[str, Any]]
    # RunInstances' SubnetId, before the instance is made: may raise EC2's error.
    before_run_instances: Callable[[str | None], None]
    # The ids TerminateInstances was given, after it terminated them.
    instances_terminated: Callable[[list[str]], None]


def install(hooks: Hooks) -> Callable[[], None]:
    """Apply every patch; returns the function that restores moto as it was."""
    patches = [
        _serialise_sdk_requests(),
        _serialise_server_requests(),
        _abort_token_waits_on_stop(),
        _skip_executions_not_started(),
        _keep_task_failure_cause(),
        _keep_aborted_after_stop(),
        _report_heartbeat_timeout(),
        _run_real_handlers(hooks.lambda_invoke),
        _hook_send_command(hooks.command_sent),
        _answer_instance_information(hooks.instance_information),
        _hook_run_instances(hooks.before_run_instances),
        _hook_terminate_instances(hooks.instances_terminated),
        _answer_snapshot_block_public_access(),
        _answer_ebs_default_kms_key_id(),
        _aws_managed_ebs_key(),
        _snapshots_keep_their_volumes_key(),
        _copies_keep_a_key(),
        _registered_images_keep_their_architecture(),
        _commands_run_on_their_instances_only(),
    ]
    undos = [_apply(owner, name, replacement) for owner, name, replacement in patches]

    def undo_all() -> None:
        for undo in reversed(undos):
            undo()

    return undo_all


def _apply(owner: Any, name: str, replacement: Callable[..., Any]) -> Callable[[], None]:
    # What the class itself defines, so an inherited attribute is uncovered, not copied.
    previous = owner.__dict__.get(name, _MISSING)
    setattr(owner, name, replacement)

    def undo() -> None:
        if previous is _MISSING:
            delattr(owner, name)
        else:
            setattr(owner, name, previous)

    return undo


def _serialise_sdk_requests() -> Patch:
    """In-process, every request but Lambda's Invoke holds BACKEND_LOCK (see there)."""
    from moto.core.botocore_stubber import BotocoreStubber

    original = BotocoreStubber.process_request

    def process_request(stubber: Any, request: Any) -> Any:
        if _LAMBDA_INVOKE_PATH.match(urlsplit(request.url).path):
            return original(stubber, request)
        with BACKEND_LOCK:
            return original(stubber, request)

    return BotocoreStubber, "process_request", process_request


def _serialise_server_requests() -> Patch:
    """In server mode, every request but Lambda's Invoke holds BACKEND_LOCK (see there)."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    original = DomainDispatcherApplication.__call__

    def dispatch(app: Any, environ: dict[str, Any], start_response: Any) -> Any:
        if _LAMBDA_INVOKE_PATH.match(str(environ.get("PATH_INFO", ""))):
            return original(app, environ, start_response)
        with BACKEND_LOCK:
            return original(app, environ, start_response)

    return DomainDispatcherApplication, "__call__", dispatch


def _abort_token_waits_on_stop() -> Patch:
    """moto 5.2.5 marks a stopped execution stopped but leaves a task that waits for its
    token waiting until the heartbeat runs out, and reports RUNNING all that time; AWS
    aborts the execution at once."""
    from moto.stepfunctions.parser.backend.execution import Execution

    original = Execution.stop

    def stop(execution: Any, *args: Any, **kwargs: Any) -> None:
        original(execution, *args, **kwargs)
        worker = execution.exec_worker
        if worker is not None and worker.env is not None:
            pool = worker.env.callback_pool_manager._pool
            for endpoint in list(pool.values()):
                endpoint.interrupt_all()

    return Execution, "stop", stop


def _skip_executions_not_started() -> Patch:
    """moto 5.2.5: SendTaskSuccess/Failure/Heartbeat look through every execution's
    worker environment, which an execution started a moment ago does not have yet
    (AttributeError): a build starting while another one's bootstrap reports lost that
    report, and the other build hung until its heartbeat timeout. Only those lookups
    call the patched method."""
    from moto.stepfunctions.parser.models import StepFunctionsParserBackend

    original = StepFunctionsParserBackend._get_executions

    def get_executions(backend: Any, execution_status: Any = None) -> list[Any]:
        return [
            execution
            for execution in original(backend, execution_status)
            if execution.exec_worker is not None and execution.exec_worker.env is not None
        ]

    return StepFunctionsParserBackend, "_get_executions", get_executions


def _keep_task_failure_cause() -> Patch:
    """moto 5.2.5 drops the cause of SendTaskFailure; AWS keeps it, and petal's failure
    messages are in it."""
    from moto.core.responses import EmptyResult
    from moto.stepfunctions.responses import StepFunctionResponse

    def send_task_failure(response: Any) -> Any:
        response.stepfunction_backend.send_task_failure(
            response._get_param("taskToken"),
            error=response._get_param("error"),
            cause=response._get_param("cause"),
        )
        return EmptyResult()

    return StepFunctionResponse, "send_task_failure", send_task_failure


def _keep_aborted_after_stop() -> Patch:
    """moto 5.2.5: a task interrupted by StopExecution then reports an error that
    overwrites the stop, so the execution ends FAILED; AWS says ABORTED (and the janitor
    tells a cancelled build from a failed one by it)."""
    from moto.stepfunctions.parser.asl.eval.environment import Environment
    from moto.stepfunctions.parser.asl.eval.program_state import ProgramStopped

    original = Environment.set_error

    def set_error(env: Any, error: Any) -> None:
        if isinstance(env._program_state, ProgramStopped):
            return
        original(env, error)

    return Environment, "set_error", set_error


def _report_heartbeat_timeout() -> Patch:
    """moto 5.2.5 reports a missed heartbeat as States.Timeout; AWS reports
    States.HeartbeatTimeout, which petal's failure message tells apart."""
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
    original = StateTask._from_error

    def from_error(state: Any, env: Any, ex: Exception) -> Any:
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
        return original(state, env, ex)

    return StateTask, "_from_error", from_error


def _run_real_handlers(lambda_invoke: Callable[[str, Any, Any], bytes]) -> Patch:
    """moto's Lambda without Docker answers Invoke with a canned reply; the emulator runs
    the repository's handler instead (petal/local/handlers.py)."""
    from moto.awslambda_simple.models import LambdaSimpleBackend

    def invoke(
        backend: Any,
        function_name: str,
        qualifier: str | None,
        body: Any,
        headers: Any,
        response_headers: Any,
    ) -> bytes:
        return lambda_invoke(function_name, body, response_headers)

    return LambdaSimpleBackend, "invoke", invoke


def _hook_send_command(command_sent: Callable[[Any], None]) -> Patch:
    """moto records an SSM command and runs nothing; the simulated builder agent runs
    the bootstrap document's commands (petal/local/simulated_builder.py)."""
    from moto.ssm.models import SimpleSystemManagerBackend

    original = SimpleSystemManagerBackend.send_command

    def send_command(backend: Any, *args: Any, **kwargs: Any) -> Any:
        command = original(backend, *args, **kwargs)
        command_sent(command)
        return command

    return SimpleSystemManagerBackend, "send_command", send_command


def _answer_instance_information(instance_information: Callable[[Any], dict[str, Any]]) -> Patch:
    """moto has no DescribeInstanceInformation; the ready step asks it whether the
    builder's SSM agent is Online."""
    from moto.ssm.responses import SimpleSystemManagerResponse

    def describe_instance_information(response: Any) -> str:
        return json.dumps(instance_information(response._get_param("Filters")))

    return (
        SimpleSystemManagerResponse,
        "describe_instance_information",
        describe_instance_information,
    )


def _hook_run_instances(before_run_instances: Callable[[str | None], None]) -> Patch:
    """moto always has capacity; failure injection makes RunInstances report
    InsufficientInstanceCapacity, per subnet, as EC2 does."""
    from moto.ec2.responses.instances import InstanceResponse

    original = InstanceResponse.run_instances

    def run_instances(response: Any) -> Any:
        before_run_instances(response._get_param("SubnetId"))
        return original(response)

    return InstanceResponse, "run_instances", run_instances


def _hook_terminate_instances(instances_terminated: Callable[[list[str]], None]) -> Patch:
    """moto sends no EventBridge events; a terminated builder's state-change events are
    what tell callback an install has lost its machine."""
    from moto.ec2.responses.instances import InstanceResponse

    original = InstanceResponse.terminate_instances

    def terminate_instances(response: Any) -> Any:
        ids = [str(i) for i in response._get_param("InstanceIds", [])]
        result = original(response)
        instances_terminated(ids)
        return result

    return InstanceResponse, "terminate_instances", terminate_instances


def _answer_snapshot_block_public_access() -> Patch:
    """moto 5.2.5 has no GetSnapshotBlockPublicAccessState (a 500 in server mode); an
    account that never changed the setting reads "unblocked" in AWS, and so does the
    emulator."""
    from moto.ec2.responses import EC2Response

    def get_snapshot_block_public_access_state(response: Any) -> str:
        return (
            '<GetSnapshotBlockPublicAccessStateResponse xmlns="http://ec2.amazonaws.com/doc/'
            '2016-11-15/"><requestId>petal-local</requestId><state>unblocked</state>'
            "</GetSnapshotBlockPublicAccessStateResponse>"
        )

    return (
        EC2Response,
        "get_snapshot_block_public_access_state",
        get_snapshot_block_public_access_state,
    )


def _answer_ebs_default_kms_key_id() -> Patch:
    """moto 5.2.5 has ModifyEbsDefaultKmsKeyId but no GetEbsDefaultKmsKeyId (a 500 in
    server mode). AWS answers alias/aws/ebs until the account chooses a key, then that
    key's ARN; moto records the AWS managed key's ARN once it first uses it, which
    is still the AWS managed key, so that reads alias/aws/ebs too."""
    from moto.ec2.responses import EC2Response
    from moto.kms.models import kms_backends

    managed_alias = "alias/aws/ebs"

    def get_ebs_default_kms_key_id(response: Any) -> str:
        backend = response.ec2_backend
        key = str(backend.default_kms_key_id or "")
        kms = kms_backends[backend.account_id][backend.region_name]
        if not key or (
            kms.alias_exists(managed_alias) and kms.describe_key(managed_alias).arn == key
        ):
            key = managed_alias
        return (
            '<GetEbsDefaultKmsKeyIdResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">'
            f"<requestId>petal-local</requestId><kmsKeyId>{key}</kmsKeyId>"
            "</GetEbsDefaultKmsKeyIdResponse>"
        )

    return EC2Response, "get_ebs_default_kms_key_id", get_ebs_default_kms_key_id


def _aws_managed_ebs_key() -> Patch:
    """moto creates the account's aws/ebs key as a customer managed key; in AWS it is an
    AWS managed key (KeyManager "AWS"), whose policy no account can change: snapshots
    encrypted with it can be neither shared nor made public."""
    from moto.ec2.models.elastic_block_store import EBSBackend
    from moto.kms.models import kms_backends

    original = EBSBackend._create_default_encryption_key

    def create_default_encryption_key(backend: Any) -> str:
        arn = str(original(backend))
        kms = kms_backends[backend.account_id][backend.region_name]
        kms.describe_key(arn).key_manager = "AWS"
        return arn

    return EBSBackend, "_create_default_encryption_key", create_default_encryption_key


def _snapshots_keep_their_volumes_key() -> Patch:
    """moto's CreateSnapshot drops the volume's KMS key (DescribeSnapshots then shows an
    encrypted snapshot without KmsKeyId); AWS encrypts a snapshot with its volume's key."""
    from moto.ec2.models.elastic_block_store import EBSBackend

    original = EBSBackend.create_snapshot

    def create_snapshot(backend: Any, volume_id: str, *args: Any, **kwargs: Any) -> Any:
        snapshot = original(backend, volume_id, *args, **kwargs)
        if snapshot.encrypted and snapshot.kms_key_id is None:
            snapshot.kms_key_id = backend.get_volume(volume_id).kms_key_id
        return snapshot

    return EBSBackend, "create_snapshot", create_snapshot


def _copies_keep_a_key() -> Patch:
    """A copy of an encrypted snapshot without KmsKeyId: AWS keeps the source's key in
    its own region and uses the destination's default EBS key in another; moto leaves
    the copy without a key."""
    from moto.ec2.models.elastic_block_store import EBSBackend

    original = EBSBackend.copy_snapshot

    def copy_snapshot(
        backend: Any,
        source_snapshot_id: str,
        source_region: str,
        description: str,
        kms_key_id: str | None,
    ) -> Any:
        copy = original(backend, source_snapshot_id, source_region, description, kms_key_id)
        if copy.encrypted and copy.kms_key_id is None:
            if source_region == backend.region_name:
                source = backend.describe_snapshots(snapshot_ids=[source_snapshot_id])[0]
                copy.kms_key_id = source.kms_key_id
            else:
                copy.kms_key_id = (
                    backend.default_kms_key_id or backend._create_default_encryption_key()
                )
        return copy

    return EBSBackend, "copy_snapshot", copy_snapshot


def _registered_images_keep_their_architecture() -> Patch:
    """moto's RegisterImage drops Architecture (the image then has none, and petal's
    architecture check cannot pass); AWS keeps it, and takes i386 when none is given."""
    from moto.ec2.responses import EC2Response
    from moto.ec2.responses.amis import AmisResponse

    original = AmisResponse.register_image

    def register_image(response: Any) -> Any:
        result = original(response)
        image = response.ec2_backend.amis[result.result["ImageId"]]  # type: ignore[index]
        image.architecture = response._get_param("Architecture") or "i386"
        return result

    return EC2Response, "register_image", register_image


def _commands_run_on_their_instances_only() -> Patch:
    """moto's SendCommand without Targets adds every instance of the account to the
    InstanceIds it was given (an empty filter matches all); AWS runs the command on the
    instances named, and only there."""
    from moto.ssm.models import Command

    original = Command._get_instance_ids_from_targets

    def instance_ids_from_targets(command: Any) -> list[str]:
        return list(original(command)) if command.targets else []

    return Command, "_get_instance_ids_from_targets", instance_ids_from_targets
