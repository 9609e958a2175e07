"""`petal --local admin redrive`: the dead-letter queues of the emulated stack."""

from __future__ import annotations

import json

from petal.deployment_contract import OUTPUT_DEAD_LETTER_QUEUES
from petal.local.emulator import STACK_NAME, command_status_event
from tests.cli.local_session import Demo


def test_redrive_replays_a_dead_letter_through_the_callback(demo: Demo) -> None:
    empty = demo.run("--local", "admin", "redrive")
    assert empty.returncode == 0, empty.stderr
    assert "are empty" in empty.stdout

    stack = demo.client("cloudformation").describe_stacks(StackName=STACK_NAME)["Stacks"][0]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}
    url = outputs[OUTPUT_DEAD_LETTER_QUEUES["callback"]]
    # What EventBridge dead-letters: the event itself, the error as message attributes.
    event = command_status_event(
        "c-lost", "i-0123456789abcdef0", "petal-local-bootstrap", "Success", "us-east-1"
    )
    demo.client("sqs").send_message(
        QueueUrl=url,
        MessageBody=json.dumps(event),
        MessageAttributes={
            "ERROR_CODE": {"DataType": "String", "StringValue": "SDK_CLIENT_ERROR"},
            "ERROR_MESSAGE": {"DataType": "String", "StringValue": "throttled"},
        },
    )

    preview = demo.run("--local", "admin", "redrive", "--dry-run", "--queue", "callback")
    assert preview.returncode == 0, preview.stderr
    assert "callback: would replay: EC2 Command Invocation" in preview.stdout
    assert "not delivered: SDK_CLIENT_ERROR: throttled" in preview.stdout

    replay = demo.run("--local", "admin", "redrive", "--json")
    assert replay.returncode == 0, replay.stderr
    report = json.loads(replay.stdout)
    assert (report["replayed"], report["failed"]) == (1, 0)
    [done] = report["messages"]
    # No build waits for that command: applied, it changes nothing.
    assert done["result"]["action"] == "ignored"
    assert "are empty" in demo.run("--local", "admin", "redrive").stdout
