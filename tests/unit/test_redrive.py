"""Reading dead-letter messages: Lambda's on-failure records and EventBridge's DLQ
messages (petal/build/redrive.py)."""

from __future__ import annotations

import json

import pytest

from petal.aws.dead_letter_queues import QueuedMessage
from petal.aws.deployment import DeadLetterQueue, dead_letter_queues
from petal.build.redrive import (
    RedriveReport,
    Replay,
    UnknownQueue,
    UnreadableLetter,
    describe_event,
    read_letter,
    select_queues,
)

EVENT = {
    "detail-type": "EC2 Command Invocation Status-change Notification",
    "source": "aws.ssm",
    "detail": {"command-id": "c-1", "instance-id": "i-1", "status": "Success"},
}


def message(body: object, **attributes: str) -> QueuedMessage:
    text = body if isinstance(body, str) else json.dumps(body)
    return QueuedMessage("m-1", "r-1", text, dict(attributes))


def test_a_lambda_on_failure_record_gives_back_the_event_and_the_error() -> None:
    record = {
        "version": "1.0",
        "requestContext": {"condition": "RetriesExhausted", "approximateInvokeCount": 3},
        "requestPayload": EVENT,
        "responsePayload": {"errorType": "TaskTokenNotParked", "errorMessage": "too early"},
    }
    letter = read_letter(message(record))
    assert letter.event == EVENT
    assert letter.why == "RetriesExhausted after 3 attempt(s): TaskTokenNotParked: too early"


def test_an_eventbridge_dead_letter_is_the_event_itself() -> None:
    letter = read_letter(
        message(EVENT, ERROR_CODE="SDK_CLIENT_ERROR", ERROR_MESSAGE="Lambda throttled")
    )
    assert letter.event == EVENT
    assert letter.why == "not delivered: SDK_CLIENT_ERROR: Lambda throttled"


@pytest.mark.parametrize(
    "body", ["not json", "[1, 2]", {"requestContext": {}, "requestPayload": 3}]
)
def test_a_message_petal_did_not_send_is_unreadable(body: object) -> None:
    with pytest.raises(UnreadableLetter):
        read_letter(message(body))


def test_events_are_named_by_what_they_are_about() -> None:
    assert describe_event(EVENT) == (
        "EC2 Command Invocation Status-change Notification (command c-1: Success)"
    )
    upload = {
        "detail-type": "Object Created",
        "detail": {"bucket": {"name": "b"}, "object": {"key": "seeds/x.yaml"}},
    }
    assert describe_event(upload) == "Object Created (s3://b/seeds/x.yaml)"
    assert describe_event({"detail-type": "Scheduled Event"}) == "Scheduled Event"


def test_queues_come_from_the_outputs_and_an_unknown_name_is_refused() -> None:
    outputs = {
        "CallbackDeadLetterQueueUrl": "https://sqs/q1",
        "CallbackFunctionName": "petal-callback",
        "CallbackDeadLetterAlarmName": "petal-callback-dead-letters",
        # An older stack: no intake outputs at all; a queue without its function is left out.
        "JanitorDeadLetterQueueUrl": "https://sqs/q3",
    }
    found = dead_letter_queues(outputs)
    assert found == (
        DeadLetterQueue(
            "callback", "https://sqs/q1", "petal-callback", "petal-callback-dead-letters"
        ),
    )
    assert select_queues(found, None) == list(found)
    with pytest.raises(UnknownQueue, match="the stack has: callback"):
        select_queues(found, "intake")


def test_the_report_says_what_stays_in_the_queues() -> None:
    report = RedriveReport(dry_run=False, queues=["callback"])
    assert report.lines() == ["The dead-letter queues (callback) are empty."]
    report.replays += [
        Replay("callback", "m-1", "replayed", "an event", "succeeded: command Success"),
        Replay("callback", "m-2", "failed", "an event", "broken again"),
    ]
    assert report.failed
    assert report.lines()[-1] == (
        "Replayed 1; 1 failed again and 0 could not be read: those stay in their queue."
    )
    assert report.to_json()["replayed"] == 1
