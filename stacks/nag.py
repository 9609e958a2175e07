"""Acknowledging cdk-nag findings, always on one resource and always with a reason."""

from __future__ import annotations

import json

from aws_cdk import Acknowledgment, Stack, Validations
from aws_cdk import aws_iam as iam
from constructs import IConstruct


def acknowledge(resource: IConstruct, rule: str, reason: str) -> None:
    """Acknowledge `rule` (e.g. `AwsSolutions-IAM5[Resource::*]`) on `resource` only."""
    Validations.of(resource).acknowledge(Acknowledgment(id=rule, reason=reason))


def flatten_reference(value: object) -> str:
    """A resolved CloudFormation value as cdk-nag prints it in a finding id.

    Mirrors cdk-nag's `flattenCfnReference`: Fn::Join is joined, Fn::GetAtt becomes
    `<Logical.Attr>`, Ref becomes `<Logical>` (pseudo parameters `<AWS::Region>`).
    """
    if value is None:
        return ""
    if isinstance(value, str):
        return value.replace("${", "<").replace("}", ">")
    if isinstance(value, dict):
        if "Fn::Join" in value:
            delimiter, items = value["Fn::Join"]
            return str(delimiter).join(flatten_reference(item) for item in items)
        if "Fn::Sub" in value:
            return flatten_reference(value["Fn::Sub"])
        if "Fn::GetAtt" in value:
            resource, attribute = value["Fn::GetAtt"]
            return f"<{flatten_reference(resource)}.{flatten_reference(attribute)}>"
        if "Fn::ImportValue" in value:
            return flatten_reference(value["Fn::ImportValue"])
        if "Ref" in value:
            return f"<{flatten_reference(value['Ref'])}>"
    return json.dumps(value, separators=(",", ":"))


def acknowledge_wildcard_resource(resource: IConstruct, arn: str, reason: str) -> None:
    """Acknowledge the IAM5 finding for one wildcard resource ARN of `resource`'s policy.

    The finding id is computed from the same token the policy uses, so it matches
    whether the account and region are concrete or CloudFormation pseudo parameters.
    """
    flat = flatten_reference(Stack.of(resource).resolve(arn))
    acknowledge(resource, f"AwsSolutions-IAM5[Resource::{flat}]", reason)


def acknowledge_managed_policy(
    resource: IConstruct, policy: iam.IManagedPolicy, reason: str
) -> None:
    flat = flatten_reference(Stack.of(resource).resolve(policy.managed_policy_arn))
    acknowledge(resource, f"AwsSolutions-IAM4[Policy::{flat}]", reason)


def wildcard_resources(policy: iam.Policy) -> list[str]:
    """Resources with a `*` in `policy`'s Allow statements, flattened as cdk-nag does."""
    document = Stack.of(policy).resolve(policy.document)
    found: list[str] = []
    for st in document.get("Statement", []):
        if st.get("Effect") != "Allow":
            continue
        resources = st.get("Resource", [])
        for resource in resources if isinstance(resources, list) else [resources]:
            flat = flatten_reference(resource)
            if "*" in flat and flat not in found:
                found.append(flat)
    return found


def acknowledge_wildcard_action(resource: IConstruct, action: str, reason: str) -> None:
    acknowledge(resource, f"AwsSolutions-IAM5[Action::{action}]", reason)
