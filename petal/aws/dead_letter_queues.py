"""SQS and Lambda adapter of `petal admin redrive`: read a dead-letter queue, hand a
message's event to its function, delete or release the message.

Every function takes a boto3 client (moto's in tests).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final

from petal.aws.errors import aws_call

# A received message stays invisible to other readers while the redrive handles it.
VISIBILITY_SECONDS: Final = 120
BATCH: Final = 10
# Long polling asks every SQS server, so an empty answer means an empty queue.
WAIT_SECONDS: Final = 1


@dataclass(frozen=True)
class QueuedMessage:
    message_id: str
    receipt_handle: str
    body: str
    attributes: dict[str, str]  # message attributes (EventBridge's ERROR_CODE, RULE_ARN, ...)


@dataclass(frozen=True)
class Invocation:
    ok: bool
    payload: Any  # the handler's result, or Lambda's error document


def visible_messages(sqs: Any, queue_url: str) -> int:
    with aws_call("SQS GetQueueAttributes"):
        response = sqs.get_queue_attributes(
            QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages"]
        )
    return int(response.get("Attributes", {}).get("ApproximateNumberOfMessages", 0))


def receive(sqs: Any, queue_url: str) -> list[QueuedMessage]:
    with aws_call("SQS ReceiveMessage"):
        response = sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=BATCH,
            VisibilityTimeout=VISIBILITY_SECONDS,
            WaitTimeSeconds=WAIT_SECONDS,
            MessageAttributeNames=["All"],
        )
    return [
        QueuedMessage(
            message_id=str(m["MessageId"]),
            receipt_handle=str(m["ReceiptHandle"]),
            body=str(m.get("Body", "")),
            attributes={
                name: str(value.get("StringValue", ""))
                for name, value in (m.get("MessageAttributes") or {}).items()
            },
        )
        for m in response.get("Messages", [])
    ]


def delete(sqs: Any, queue_url: str, message: QueuedMessage) -> None:
    with aws_call("SQS DeleteMessage"):
        sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message.receipt_handle)


def release(sqs: Any, queue_url: str, message: QueuedMessage) -> None:
    """Make a message visible again at once, for the next redrive."""
    with aws_call("SQS ChangeMessageVisibility"):
        sqs.change_message_visibility(
            QueueUrl=queue_url, ReceiptHandle=message.receipt_handle, VisibilityTimeout=0
        )


def invoke(lambda_client: Any, function_name: str, event: Any) -> Invocation:
    """Run the function on `event` and wait for its answer (RequestResponse)."""
    with aws_call(f"Lambda Invoke {function_name}"):
        response = lambda_client.invoke(
            FunctionName=function_name,
            InvocationType="RequestResponse",
            Payload=json.dumps(event).encode(),
        )
    raw = response["Payload"].read() if response.get("Payload") is not None else b""
    try:
        payload = json.loads(raw) if raw else None
    except ValueError:
        payload = raw.decode(errors="replace")
    return Invocation(ok=not response.get("FunctionError"), payload=payload)
