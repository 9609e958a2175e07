"""Acknowledging checkov findings, always on one resource and always with a reason.

checkov (tests/infra/test_checkov.py runs it on the synthesized template) reads
`Metadata: checkov: skip: [{id, comment}]` on a resource as an acknowledged finding;
`skip` writes exactly that, the way stacks/nag.py acknowledges cdk-nag's. Findings
on resources a construct of petal's own defines are acknowledged beside it (the seed
bucket, the table, the build log group, the dead-letter queues); those on resources
that come from constructs shared by many (the functions' common settings, CDK's own
helper functions, every log group) are acknowledged here, once, with one reason each.
"""

from __future__ import annotations

from aws_cdk import CfnResource, Stack
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import IConstruct

from petal.deployment_contract import (
    CALLBACK_FUNCTION,
    INTAKE_FUNCTION,
    JANITOR_FUNCTION,
    LOG_HEARTBEAT_FUNCTION,
    RESOLVER_FUNCTION,
)
from stacks.functions import PetalFunctions

METADATA_KEY = "checkov"
FUNCTION = "AWS::Lambda::Function"

# Checks acknowledged in this module (ids as checkov names them).
LAMBDA_DLQ = "CKV_AWS_116"
LAMBDA_VPC = "CKV_AWS_117"
LAMBDA_CONCURRENCY = "CKV_AWS_115"
LAMBDA_ENV_KMS = "CKV_AWS_173"
LOG_GROUP_KMS = "CKV_AWS_158"

VPC_REASON = (
    "The function calls AWS APIs only (EC2, SSM, Step Functions, DynamoDB, S3, Logs), "
    "over TLS with IAM authentication; it reaches nothing inside a VPC. Placing it in "
    "one would add a NAT gateway or an endpoint per service, and their cost, for no "
    "isolation gained."
)
ENV_KMS_REASON = (
    "Lambda encrypts environment variables at rest with an AWS managed key. Petal's "
    "are names and ARNs (the contract in petal/deployment_contract.py), never secrets, "
    "so a customer managed key would add key management and no protection."
)
LOG_KMS_REASON = (
    "CloudWatch Logs encrypts every log group at rest with a key it manages. petal "
    "has no key of its own to use (no stack key setting), and a customer managed key "
    "would need a key policy for the Logs service and for every writer; its logs hold "
    "build output and handler diagnostics, no secrets."
)
CDK_HELPER_REASON = (
    "A helper function aws-cdk-lib adds (S3 notifications, BucketDeployment): "
    "CloudFormation invokes it synchronously at deploy time, and aws-cdk-lib offers "
    "no settings for its VPC, concurrency, dead-letter queue or environment key."
)
# Why each petal function needs no function dead-letter queue (DeadLetterConfig).
DLQ_REASONS = {
    **dict.fromkeys(
        (CALLBACK_FUNCTION, INTAKE_FUNCTION, JANITOR_FUNCTION),
        "Invoked asynchronously (EventBridge), and its failed invocations go to its "
        "dead-letter queue through an on-failure destination (AWS::Lambda::"
        "EventInvokeConfig, stacks/dead_letters.py), which records the error along with "
        "the event; `petal admin redrive` replays them.",
    ),
    LOG_HEARTBEAT_FUNCTION: (
        "The build log subscription's function: a lost delivery costs one heartbeat, "
        "which the next marker line repeats, and the build's end never depends on it "
        "(the callback, or the janitor's reconciler when every event is lost, ends it)."
    ),
    RESOLVER_FUNCTION: (
        "Invoked synchronously by `petal create` and other callers, which receive its "
        "error; a dead-letter queue applies to asynchronous invocations only."
    ),
}
STEP_DLQ_REASON = (
    "A build step: Step Functions invokes it synchronously, and the state machine's "
    "Retry and Catch handle its errors (every failure ends in the cleanup); a "
    "dead-letter queue applies to asynchronous invocations only."
)
CONCURRENCY_REASON = (
    "Invoked a handful of times per build (or per schedule), and builds are limited by "
    "their locks, not by this function; reserving concurrency would take it from the "
    "account's pool for nothing. The event-driven functions have "
    "petal:callbackConcurrency / petal:intakeConcurrency."
)


def cfn_resource(resource: IConstruct) -> CfnResource:
    """The CloudFormation resource of `resource` (an L1, or an L2 wrapping one)."""
    if isinstance(resource, CfnResource):
        return resource
    child = resource.node.default_child
    if not isinstance(child, CfnResource):
        raise TypeError(f"{resource.node.path} is not a single CloudFormation resource")
    return child


def skip(resource: IConstruct, check: str, reason: str) -> None:
    """Acknowledge checkov's `check` on `resource` only, with `reason`."""
    cfn = cfn_resource(resource)
    metadata = cfn.get_metadata(METADATA_KEY) or {}
    skips = [s for s in metadata.get("skip", []) if s["id"] != check]
    cfn.add_metadata(METADATA_KEY, {"skip": [*skips, {"id": check, "comment": reason}]})


def skipped(resource: IConstruct) -> set[str]:
    metadata = cfn_resource(resource).get_metadata(METADATA_KEY) or {}
    return {s["id"] for s in metadata.get("skip", [])}


def acknowledge_shared_findings(stack: Stack, functions: PetalFunctions) -> None:
    """Acknowledge, with their reasons, the findings on resources that petal's
    constructs share or that aws-cdk-lib adds; call once the stack is complete."""
    petal_functions = {f.node.path: m for m, f in functions.functions.items()}
    for construct in stack.node.find_all():
        if isinstance(construct, lambda_.CfnFunction):
            scope = construct.node.scope
            _function(construct, petal_functions.get(scope.node.path) if scope else None)
        elif isinstance(construct, CfnResource) and construct.cfn_resource_type == FUNCTION:
            # aws-cdk-lib writes some helpers' functions as plain CfnResources.
            for check in (LAMBDA_DLQ, LAMBDA_VPC, LAMBDA_CONCURRENCY, LAMBDA_ENV_KMS):
                skip(construct, check, CDK_HELPER_REASON)
        elif isinstance(construct, logs.CfnLogGroup) and LOG_GROUP_KMS not in skipped(construct):
            skip(construct, LOG_GROUP_KMS, LOG_KMS_REASON)


def _function(function: lambda_.CfnFunction, module: str | None) -> None:
    if module is None:
        for check in (LAMBDA_DLQ, LAMBDA_VPC, LAMBDA_CONCURRENCY, LAMBDA_ENV_KMS):
            skip(function, check, CDK_HELPER_REASON)
        return
    skip(function, LAMBDA_VPC, VPC_REASON)
    skip(function, LAMBDA_ENV_KMS, ENV_KMS_REASON)
    skip(function, LAMBDA_DLQ, DLQ_REASONS.get(module, STEP_DLQ_REASON))
    if function.reserved_concurrent_executions is None:
        skip(function, LAMBDA_CONCURRENCY, CONCURRENCY_REASON)
