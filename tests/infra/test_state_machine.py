"""How the stack reads the definition: placeholders, and the role its tasks need."""

from __future__ import annotations

import json
from typing import Any

import pytest

from petal.build.definition import placeholders
from petal.deployment_contract import STEP_FUNCTIONS
from stacks.build_state_machine import iter_tasks, parse_with_placeholders, task_permission
from tests.infra.conftest import Synth


def test_placeholders_in_strings_and_bare_numbers() -> None:
    text = '{"A": "${PrepareFunctionArn}", "B": ${Wait}, "C": "x ${Other} y"}'
    assert placeholders(text) == {"PrepareFunctionArn", "Wait", "Other"}
    assert parse_with_placeholders(text) == {
        "A": "${PrepareFunctionArn}",
        "B": 1,
        "C": "x ${Other} y",
    }


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ({"Resource": "${PrepareFunctionArn}"}, ("lambda:InvokeFunction", "PrepareFunctionArn")),
        (
            {
                "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
                "Parameters": {"FunctionName": "${BootstrapFunctionArn}"},
            },
            ("lambda:InvokeFunction", "BootstrapFunctionArn"),
        ),
        ({"Resource": "arn:aws:states:::dynamodb:updateItem"}, ("dynamodb:UpdateItem", "table")),
        (
            {"Resource": "arn:aws:states:::aws-sdk:ec2:describeSnapshots"},
            ("ec2:DescribeSnapshots", "*"),
        ),
    ],
)
def test_task_permission(state: dict[str, Any], expected: tuple[str, str]) -> None:
    permission = task_permission("S", {"Type": "Task", **state})
    assert (permission.actions[0], permission.target) == expected


@pytest.mark.parametrize(
    "state",
    [
        {"Resource": "arn:aws:states:::sns:publish"},
        {"Resource": "arn:aws:states:::aws-sdk:ec2:terminateInstances"},
        {"Resource": "${BuildsTableName}"},
        {"Resource": "arn:aws:states:::lambda:invoke", "Parameters": {"FunctionName": "x"}},
    ],
)
def test_unknown_integrations_fail_the_synth(state: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="state S"):
        task_permission("S", {"Type": "Task", **state})


def test_tasks_inside_parallel_and_map_are_found() -> None:
    definition = {
        "States": {
            "P": {"Type": "Parallel", "Branches": [{"States": {"A": {"Type": "Task"}}}]},
            "M": {"Type": "Map", "ItemProcessor": {"States": {"B": {"Type": "Task"}}}},
        }
    }
    assert [name for name, _ in iter_tasks(definition)] == ["A", "B"]


def test_role_invokes_exactly_the_step_functions(synth: Synth) -> None:
    (sm,) = synth.of_type("AWS::StepFunctions::StateMachine").values()
    role = sm["Properties"]["RoleArn"]["Fn::GetAtt"][0]
    statements = [
        st
        for policy in synth.of_type("AWS::IAM::Policy").values()
        if {"Ref": role} in policy["Properties"]["Roles"]
        for st in policy["Properties"]["PolicyDocument"]["Statement"]
    ]
    (statement,) = [st for st in statements if st["Action"] == "lambda:InvokeFunction"]
    ids = synth.function_ids()
    expected = sorted(
        json.dumps({"Fn::GetAtt": [ids[module], "Arn"]}) for module in STEP_FUNCTIONS.values()
    )
    assert sorted(json.dumps(r) for r in statement["Resource"]) == expected
    actions = {
        a
        for st in statements
        for a in ([st["Action"]] if isinstance(st["Action"], str) else st["Action"])
    }
    assert not [a for a in actions if a.startswith(("ec2:", "ssm:", "s3:", "iam:"))]
