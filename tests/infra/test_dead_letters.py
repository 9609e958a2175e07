"""Every asynchronous path keeps what it cannot process (stacks/dead_letters.py)."""

from __future__ import annotations

from typing import Any

from petal.deployment_contract import (
    LOG_HEARTBEAT_FUNCTION,
    OUTPUT_DEAD_LETTER_ALARMS,
    OUTPUT_DEAD_LETTER_FUNCTIONS,
    OUTPUT_DEAD_LETTER_QUEUES,
)
from stacks.dead_letters import DEAD_LETTER_FUNCTIONS
from tests.infra.conftest import Synth


def queue_of(synth: Synth, module: str) -> str:
    [queue] = [
        q
        for q in synth.of_type("AWS::SQS::Queue")
        if q.startswith(f"DeadLetters{module.capitalize()}Queue")
    ]
    return queue


def function_of(synth: Synth, target: dict[str, Any]) -> str:
    return {v: k for k, v in synth.function_ids().items()}[target["Arn"]["Fn::GetAtt"][0]]


def test_every_rule_target_retries_then_dead_letters_to_its_function_s_queue(
    synth: Synth,
) -> None:
    rules = synth.of_type("AWS::Events::Rule")
    assert len(rules) == 4  # seed upload, command status, builder state, janitor schedule
    for rule in rules.values():
        (target,) = rule["Properties"]["Targets"]
        module = function_of(synth, target)
        assert target["DeadLetterConfig"] == {
            "Arn": {"Fn::GetAtt": [queue_of(synth, module), "Arn"]}
        }
        assert target["RetryPolicy"] == {
            "MaximumRetryAttempts": 20,
            "MaximumEventAgeInSeconds": 6 * 3600,
        }


def test_failed_async_invocations_go_to_the_function_s_queue(synth: Synth) -> None:
    configs = {
        c["Properties"]["FunctionName"]["Ref"]: c["Properties"]
        for c in synth.of_type("AWS::Lambda::EventInvokeConfig").values()
    }
    ids = synth.function_ids()
    assert set(configs) == {ids[m] for m in DEAD_LETTER_FUNCTIONS}
    assert ids[LOG_HEARTBEAT_FUNCTION] not in configs
    for module in DEAD_LETTER_FUNCTIONS:
        props = configs[ids[module]]
        assert props["MaximumRetryAttempts"] == 2  # the callback's TaskTokenNotParked relies on it
        assert props["DestinationConfig"]["OnFailure"]["Destination"] == {
            "Fn::GetAtt": [queue_of(synth, module), "Arn"]
        }


def test_queues_are_encrypted_tls_only_and_only_their_rules_may_send(synth: Synth) -> None:
    policies = {
        p["Properties"]["Queues"][0]["Ref"]: p["Properties"]["PolicyDocument"]["Statement"]
        for p in synth.of_type("AWS::SQS::QueuePolicy").values()
    }
    for module in DEAD_LETTER_FUNCTIONS:
        queue = queue_of(synth, module)
        props = synth.resources[queue]["Properties"]
        assert props["SqsManagedSseEnabled"] is True
        assert props["MessageRetentionPeriod"] == 14 * 24 * 3600
        statements = policies[queue]
        assert any(
            s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
            for s in statements
        )
        for allow in (s for s in statements if s["Effect"] == "Allow"):
            assert allow["Principal"] == {"Service": "events.amazonaws.com"}
            assert allow["Action"] == "sqs:SendMessage"
            assert "aws:SourceArn" in allow["Condition"]["ArnEquals"]


def test_an_alarm_watches_each_queue_and_the_outputs_name_them(synth: Synth) -> None:
    alarms = synth.of_type("AWS::CloudWatch::Alarm")
    outputs = synth.template["Outputs"]
    for module in DEAD_LETTER_FUNCTIONS:
        queue = queue_of(synth, module)
        [alarm_id] = [
            a
            for a, props in alarms.items()
            if props["Properties"]["Dimensions"][0]["Value"] == {"Fn::GetAtt": [queue, "QueueName"]}
        ]
        alarm = alarms[alarm_id]["Properties"]
        assert alarm["MetricName"] == "ApproximateNumberOfMessagesVisible"
        assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (0, "GreaterThanThreshold")
        assert f"petal admin redrive --queue {module}" in alarm["AlarmDescription"]
        assert outputs[OUTPUT_DEAD_LETTER_QUEUES[module]]["Value"] == {"Ref": queue}
        assert outputs[OUTPUT_DEAD_LETTER_ALARMS[module]]["Value"] == {"Ref": alarm_id}
        assert outputs[OUTPUT_DEAD_LETTER_FUNCTIONS[module]]["Value"] == {
            "Ref": synth.function_ids()[module]
        }
