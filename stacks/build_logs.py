"""The build log group: the bootstrap command's output (SSM CloudWatchOutputConfig)
streams here, and a subscription filter forwards petal's marker lines to the
log_heartbeat function, which turns them into task heartbeats and progress."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_logs_destinations as destinations
from constructs import Construct

from petal.build.manifest import MANIFEST_MARKER
from petal.deployment_contract import (
    FAILURE_MARKER,
    HEARTBEAT_MARKER,
    PROGRESS_MARKER,
    STEP_MARKER,
)
from stacks import checkov

# Every marker the bootstrap prints; anything else (compiler output) never reaches
# Lambda, which keeps the heartbeat function's invocations to a handful per minute.
MARKERS = (PROGRESS_MARKER, STEP_MARKER, HEARTBEAT_MARKER, FAILURE_MARKER, MANIFEST_MARKER)


class BuildLogs(Construct):
    def __init__(
        self, scope: Construct, construct_id: str, *, retention: logs.RetentionDays
    ) -> None:
        super().__init__(scope, construct_id)
        self.log_group = logs.LogGroup(
            self,
            "BuildLogGroup",
            retention=retention,
            removal_policy=RemovalPolicy.DESTROY,
        )
        checkov.skip(
            self.log_group,
            "CKV_AWS_158",
            "CloudWatch Logs encrypts it at rest with a key it manages. petal has no key of "
            "its own to use, and a customer managed key would need a key policy for the "
            "Logs service and kms permissions for every builder; the log holds Spack's "
            "build output, no secrets.",
        )

    def forward_markers_to(self, function: lambda_.IFunction) -> logs.SubscriptionFilter:
        return logs.SubscriptionFilter(
            self,
            "MarkerSubscription",
            log_group=self.log_group,
            destination=destinations.LambdaDestination(function),
            filter_pattern=logs.FilterPattern.any_term(*MARKERS),
        )
