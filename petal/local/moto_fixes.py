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
from datetime import datetime
from typing import Any, Final
from urllib.parse import urlsplit

from petal.local import moto_dynamodb_query

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
        _volumes_hold_their_snapshot(),
        _ec2_times_keep_their_milliseconds(),
        _copies_keep_a_key(),
        _registered_images_keep_their_architecture(),
        _commands_run_on_their_instances_only(),
        *volume_patches(),
        *moto_dynamodb_query.patches(),
    ]
    undos = [_apply(owner, name, replacement) for owner, name, replacement in patches]

    def undo_all() -> None:
        for undo in reversed(undos):
            undo()

    return undo_all


def volume_patches() -> list[Patch]:
    """The patches for warm volumes and Fast Snapshot Restore (petal create --initialize,
    petal cluster volume-status, petal build fast-restore), which tests of those
    commands apply to plain moto too."""
    return [
        _volume_initialization_rate(),
        _answer_volume_status(),
        _enable_fast_snapshot_restores(),
        _disable_fast_snapshot_restores(),
        _describe_fast_snapshot_restores(),
        _deleted_snapshots_lose_fast_restores(),
    ]


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
        _check_command_parameters(backend, kwargs["document_name"], kwargs["parameters"])
        command = original(backend, *args, **kwargs)
        command_sent(command)
        return command

    return SimpleSystemManagerBackend, "send_command", send_command


def _check_command_parameters(
    backend: Any, document_name: str | None, parameters: dict[str, list[str]] | None
) -> None:
    """moto sends a command whatever its parameters; AWS refuses (InvalidParameters) one
    that names a parameter its document does not declare, leaves out one without a
    default, or gives a value outside its allowedPattern or allowedValues."""
    import yaml
    from moto.ssm.exceptions import SSMException

    documents = backend._documents.get(document_name or "")
    if documents is None:  # AWS's own documents, which moto does not hold
        return
    document = documents.find(None, None)
    content = (
        json.loads(document.content)
        if document.document_format == "JSON"
        else yaml.safe_load(document.content)
    )
    declared: dict[str, Any] = content.get("parameters") or {}
    given = parameters or {}
    problems = [
        f"{name} is not a parameter of the document" for name in given if name not in declared
    ]
    for name, spec in declared.items():
        if name not in given:
            if "default" not in spec:
                problems.append(f"{name} is required")
            continue
        for value in given[name]:
            pattern = spec.get("allowedPattern")
            if pattern is not None and re.search(pattern, value) is None:
                problems.append(f"{name} does not match its allowedPattern")
            if "allowedValues" in spec and value not in spec["allowedValues"]:
                problems.append(f"{name} is not one of its allowedValues")
    if problems:
        raise SSMException("InvalidParameters", "; ".join(problems))


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


def _volumes_hold_their_snapshot() -> Patch:
    """moto creates a volume smaller than the snapshot it is created from; AWS refuses
    (InvalidParameterValue), so a parent-based build that sized its volume from the
    seed alone fails here as it would in AWS."""
    from moto.ec2.exceptions import EC2ClientError
    from moto.ec2.models.elastic_block_store import EBSBackend

    original = EBSBackend.create_volume

    def create_volume(
        backend: Any,
        size: Any,
        zone_name: str,
        snapshot_id: str | None = None,
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        if snapshot_id and size is not None:
            minimum = int(backend.get_snapshot(snapshot_id).volume.size)
            if int(size) < minimum:
                raise EC2ClientError(
                    "InvalidParameterValue",
                    f"Volume of {size}GiB is smaller than snapshot '{snapshot_id}', "
                    f"expect size >= {minimum}GiB",
                )
        return original(backend, size, zone_name, snapshot_id, *args, **kwargs)

    return EBSBackend, "create_volume", create_volume


def _ec2_times_keep_their_milliseconds() -> Patch:
    """moto writes every EC2 time with ".000" milliseconds, so snapshots taken in the same
    second tie and "the newest" (`--from auto`, resolution) picks one at random; EC2
    reports real milliseconds ("2021-03-05T13:52:38.877Z")."""
    from moto.core.serialize import TimestampSerializer

    def iso8601_with_milliseconds(serializer: Any, value: datetime) -> str:
        return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"

    return TimestampSerializer, "_timestamp_iso8601_zeroed", iso8601_with_milliseconds


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


# EBS Provisioned Rate for Volume Initialization, MiB/s.
_INITIALIZATION_RATES: Final = range(100, 301)


def _volume_initialization_rate() -> Patch:
    """moto 5.2.5 ignores CreateVolume's VolumeInitializationRate. AWS accepts it only
    for a volume created from a snapshot and only from 100 to 300 MiB/s, and reports it
    on the volume (DescribeVolumes)."""
    from moto.ec2.exceptions import EC2ClientError, InvalidParameterCombination
    from moto.ec2.responses.elastic_block_store import ElasticBlockStore

    original = ElasticBlockStore.create_volume

    def create_volume(response: Any) -> Any:
        rate = response._get_param("VolumeInitializationRate")
        if rate is not None:
            if not response._get_param("SnapshotId"):
                raise InvalidParameterCombination(
                    "VolumeInitializationRate is supported only for volumes created from a snapshot"
                )
            if int(rate) not in _INITIALIZATION_RATES:
                raise EC2ClientError(
                    "InvalidParameterValue",
                    f"The volume initialization rate {rate} MiB/s is not valid: specify "
                    "100 to 300 MiB/s",
                )
        result = original(response)
        if rate is not None:
            volume: Any = result.result
            volume.volume_initialization_rate = int(rate)
        return result

    return ElasticBlockStore, "create_volume", create_volume


def _answer_volume_status() -> Patch:
    """moto 5.2.5 has no DescribeVolumeStatus. The emulator answers for the volumes
    asked for (InvalidVolume.NotFound for an unknown one, as AWS): status ok and, for a
    volume created from a snapshot, InitializationStatusDetails. At a provisioned rate
    the progress is the time since creation over the snapshot's size at that rate, as
    AWS estimates it; at the default rate AWS's pace is unknown, so only the type."""
    from moto.core import utils as moto_utils  # its utcnow read at each call: tests set it
    from moto.core.responses import ActionResult
    from moto.ec2.responses.elastic_block_store import ElasticBlockStore

    def describe_volume_status(response: Any) -> Any:
        backend = response.ec2_backend
        volume_ids = response._get_param("VolumeIds", [])
        statuses = []
        for volume in backend.describe_volumes(volume_ids=volume_ids or None):
            status: dict[str, Any] = {
                "VolumeId": volume.id,
                "AvailabilityZone": volume.zone.name,
                "VolumeStatus": {
                    "Status": "ok",
                    "Details": [
                        {"Name": "io-enabled", "Status": "passed"},
                        {"Name": "io-performance", "Status": "not-applicable"},
                    ],
                },
                "Actions": [],
                "Events": [],
            }
            rate = getattr(volume, "volume_initialization_rate", None)
            if rate is not None:
                snapshot = backend.snapshots.get(volume.snapshot_id)
                size = snapshot.volume.size if snapshot is not None else volume.size
                total = int(size) * 1024 / rate
                elapsed = (moto_utils.utcnow() - volume.create_time).total_seconds()
                status["InitializationStatusDetails"] = {
                    "InitializationType": "provisioned-rate",
                    "Progress": min(100, int(100 * elapsed / total)),
                    "EstimatedTimeToCompleteInSeconds": max(0, round(total - elapsed)),
                }
            elif volume.snapshot_id:
                status["InitializationStatusDetails"] = {"InitializationType": "default"}
            statuses.append(status)
        return ActionResult({"VolumeStatuses": statuses})

    return ElasticBlockStore, "describe_volume_status", describe_volume_status


# Fast Snapshot Restore, which moto 5.2.5 lacks: per EC2 backend (account and region),
# (snapshot id, zone) -> the restore's description, from enabling until disabled.
_FAST_RESTORES_PER_REGION: Final = 5


def _fast_restores(backend: Any) -> dict[tuple[str, str], dict[str, Any]]:
    restores: dict[tuple[str, str], dict[str, Any]] | None = getattr(
        backend, "petal_fast_restores", None
    )
    if restores is None:
        restores = {}
        backend.petal_fast_restores = restores
    return restores


def _fast_restore_zones(response: Any) -> list[str]:
    """The zones asked for; InvalidParameterValue for one the region does not have."""
    from moto.ec2.exceptions import EC2ClientError

    backend = response.ec2_backend
    known = {zone.name for zone in backend.describe_availability_zones()}
    zones = [str(z) for z in response._get_param("AvailabilityZones", [])]
    for zone in zones:
        if zone not in known:
            raise EC2ClientError(
                "InvalidParameterValue",
                f"The Availability Zone {zone} is not valid in {backend.region_name}",
            )
    return zones


def _fast_restore_error(snapshot_id: str, zone: str, code: str, message: str) -> dict[str, Any]:
    return {
        "SnapshotId": snapshot_id,
        "FastSnapshotRestoreStateErrors": [
            {"AvailabilityZone": zone, "Error": {"Code": code, "Message": message}}
        ],
    }


def _enable_fast_snapshot_restores() -> Patch:
    """EnableFastSnapshotRestores: per snapshot and zone, enabling (the emulator's
    DescribeFastSnapshotRestores then says enabled); refused, in Unsuccessful, for a
    snapshot this account cannot see or past the region's limit of 5 snapshots."""
    from moto.core.responses import ActionResult
    from moto.core.utils import utcnow
    from moto.ec2.responses import EC2Response

    def enable_fast_snapshot_restores(response: Any) -> Any:
        backend = response.ec2_backend
        restores = _fast_restores(backend)
        zones = _fast_restore_zones(response)
        successful: list[dict[str, Any]] = []
        unsuccessful: list[dict[str, Any]] = []
        for snapshot_id in [str(s) for s in response._get_param("SourceSnapshotIds", [])]:
            snapshot = backend.snapshots.get(snapshot_id)
            for zone in zones:
                with_restores = {sid for sid, _ in restores}
                if snapshot is None:
                    unsuccessful.append(
                        _fast_restore_error(
                            snapshot_id,
                            zone,
                            "InvalidSnapshot.NotFound",
                            f"The snapshot '{snapshot_id}' does not exist.",
                        )
                    )
                elif (
                    snapshot_id not in with_restores
                    and len(with_restores) >= _FAST_RESTORES_PER_REGION
                ):
                    unsuccessful.append(
                        _fast_restore_error(
                            snapshot_id,
                            zone,
                            "FastSnapshotRestoreLimitExceeded",
                            f"At most {_FAST_RESTORES_PER_REGION} snapshots per region can "
                            "have fast snapshot restores enabled",
                        )
                    )
                else:
                    restore = restores.setdefault(
                        (snapshot_id, zone),
                        {
                            "SnapshotId": snapshot_id,
                            "AvailabilityZone": zone,
                            "State": "enabling",
                            "StateTransitionReason": "Client.UserInitiated",
                            "OwnerId": snapshot.owner_id,
                            "EnablingTime": utcnow(),
                        },
                    )
                    successful.append(dict(restore))
        return ActionResult({"Successful": successful, "Unsuccessful": unsuccessful})

    return EC2Response, "enable_fast_snapshot_restores", enable_fast_snapshot_restores


def _disable_fast_snapshot_restores() -> Patch:
    """DisableFastSnapshotRestores: disabling, and gone from the emulator's
    DescribeFastSnapshotRestores; a restore that was never enabled is reported
    disabled, as AWS does."""
    from moto.core.responses import ActionResult
    from moto.core.utils import utcnow
    from moto.ec2.responses import EC2Response

    def disable_fast_snapshot_restores(response: Any) -> Any:
        restores = _fast_restores(response.ec2_backend)
        zones = _fast_restore_zones(response)
        successful = []
        for snapshot_id in [str(s) for s in response._get_param("SourceSnapshotIds", [])]:
            for zone in zones:
                restore = restores.pop((snapshot_id, zone), None)
                state = "disabling" if restore is not None else "disabled"
                successful.append(
                    {
                        "SnapshotId": snapshot_id,
                        "AvailabilityZone": zone,
                        "State": state,
                        "StateTransitionReason": "Client.UserInitiated",
                        "DisablingTime": utcnow(),
                    }
                )
        return ActionResult({"Successful": successful, "Unsuccessful": []})

    return EC2Response, "disable_fast_snapshot_restores", disable_fast_snapshot_restores


def _describe_fast_snapshot_restores() -> Patch:
    """DescribeFastSnapshotRestores with the snapshot-id, availability-zone and state
    filters; every enabled restore reads enabled (AWS takes minutes to hours)."""
    from moto.core.responses import ActionResult
    from moto.ec2.responses import EC2Response

    def describe_fast_snapshot_restores(response: Any) -> Any:
        filters = response._filters_from_querystring()
        found = []
        for restore in _fast_restores(response.ec2_backend).values():
            restore["State"] = "enabled"
            fields = {
                "snapshot-id": restore["SnapshotId"],
                "availability-zone": restore["AvailabilityZone"],
                "state": restore["State"],
                "owner-id": restore["OwnerId"],
            }
            if all(fields.get(name) in values for name, values in filters.items()):
                found.append(dict(restore))
        return ActionResult({"FastSnapshotRestores": found})

    return EC2Response, "describe_fast_snapshot_restores", describe_fast_snapshot_restores


def _deleted_snapshots_lose_fast_restores() -> Patch:
    """Deleting a snapshot disables its fast snapshot restores in AWS (it is not
    refused); moto knows no restores to disable."""
    from moto.ec2.models.elastic_block_store import EBSBackend

    original = EBSBackend.delete_snapshot

    def delete_snapshot(backend: Any, snapshot_id: str) -> Any:
        deleted = original(backend, snapshot_id)
        restores = _fast_restores(backend)
        for key in [key for key in restores if key[0] == snapshot_id]:
            del restores[key]
        return deleted

    return EBSBackend, "delete_snapshot", delete_snapshot
