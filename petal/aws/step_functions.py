"""Step Functions adapter: complete, fail and keep alive parked tasks; start and look
at executions. Every function takes a boto3 Step Functions client."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

from botocore.exceptions import ClientError

from petal.aws.errors import aws_call, error_code, translate

# The token is no longer usable: the task ended (completed, timed out, or its
# execution stopped). Nothing to do then, which is what at-least-once delivery needs.
STALE_TOKEN_ERRORS: Final = frozenset({"TaskTimedOut", "InvalidToken", "TaskDoesNotExist"})
ERROR_LIMIT: Final = 256
CAUSE_LIMIT: Final = 32768


def _send(action: str, call: Any, **kwargs: Any) -> bool:
    try:
        call(**kwargs)
    except ClientError as error:
        if error_code(error) in STALE_TOKEN_ERRORS:
            return False
        raise translate(f"Step Functions {action}", error) from error
    return True


def send_success(sfn: Any, task_token: str, output: Mapping[str, Any]) -> bool:
    """False when the token was stale (logged by the caller, not an error)."""
    return _send(
        "SendTaskSuccess", sfn.send_task_success, taskToken=task_token, output=json.dumps(output)
    )


def send_failure(sfn: Any, task_token: str, error: str, cause: str) -> bool:
    return _send(
        "SendTaskFailure",
        sfn.send_task_failure,
        taskToken=task_token,
        error=error[:ERROR_LIMIT],
        cause=cause[:CAUSE_LIMIT],
    )


def send_heartbeat(sfn: Any, task_token: str) -> bool:
    return _send("SendTaskHeartbeat", sfn.send_task_heartbeat, taskToken=task_token)


def start_execution(
    sfn: Any, state_machine_arn: str, name: str, execution_input: Mapping[str, Any]
) -> tuple[str, bool]:
    """(execution ARN, started now). A name already used means the execution exists:
    StartExecution is idempotent for a running one with the same input, and
    ExecutionAlreadyExists otherwise, both of which are "already started" here."""
    try:
        response = sfn.start_execution(
            stateMachineArn=state_machine_arn, name=name, input=json.dumps(execution_input)
        )
    except ClientError as error:
        if error_code(error) == "ExecutionAlreadyExists":
            return execution_arn(state_machine_arn, name), False
        raise translate("Step Functions StartExecution", error) from error
    return str(response["executionArn"]), True


def execution_arn(state_machine_arn: str, name: str) -> str:
    prefix, _, machine = state_machine_arn.partition(":stateMachine:")
    return f"{prefix}:execution:{machine}:{name}"


def execution_status(sfn: Any, arn: str) -> str | None:
    """RUNNING, SUCCEEDED, FAILED, TIMED_OUT, ABORTED...; None if there is no such
    execution."""
    try:
        response = sfn.describe_execution(executionArn=arn)
    except ClientError as error:
        if error_code(error) in ("ExecutionDoesNotExist", "InvalidArn"):
            return None
        raise translate("Step Functions DescribeExecution", error) from error
    return str(response["status"])


def ended_executions(sfn: Any, state_machine_arn: str, since: datetime) -> list[dict[str, Any]]:
    """The executions that failed, timed out or were aborted since `since` (newest first
    per status), each as DescribeExecution answers (with its input, error and cause)."""
    ended: list[dict[str, Any]] = []
    for status in ("FAILED", "TIMED_OUT", "ABORTED"):
        with aws_call("Step Functions ListExecutions"):
            pages = sfn.get_paginator("list_executions").paginate(
                stateMachineArn=state_machine_arn, statusFilter=status
            )
            for page in pages:
                recent = [e for e in page.get("executions", []) if _stopped_since(e, since)]
                for execution in recent:
                    ended.append(sfn.describe_execution(executionArn=execution["executionArn"]))
                if len(recent) < len(page.get("executions", [])):
                    break  # listed newest first: the rest stopped before `since`
    return ended


def _stopped_since(execution: dict[str, Any], since: datetime) -> bool:
    stopped = execution.get("stopDate")
    return isinstance(stopped, datetime) and stopped >= since
