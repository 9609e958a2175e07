"""EventBridge rules that start and advance builds.

- A seed uploaded under seeds/ (.yaml or .yml) -> intake, which starts a build.
- The bootstrap command finishing (SSM Run Command status change) -> callback, which
  completes the parked task token.
- A builder instance stopping or disappearing -> callback, which fails the build
  instead of letting it wait for its heartbeat to time out.
"""

from __future__ import annotations

from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from constructs import Construct

from stacks.seed_bucket import SEED_PREFIX, SEED_SUFFIXES

SSM_STATUS_DETAIL_TYPE = "EC2 Command Invocation Status-change Notification"
EC2_STATE_DETAIL_TYPE = "EC2 Instance State-change Notification"
# Any of these means the builder will not finish its command.
BUILDER_GONE_STATES = ("stopping", "shutting-down", "terminated", "stopped")


class Triggers(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        seed_bucket: s3.IBucket,
        document_name: str,
        intake: lambda_.IFunction,
        callback: lambda_.IFunction,
    ) -> None:
        super().__init__(scope, construct_id)
        self.seed_uploaded = events.Rule(
            self,
            "SeedUploaded",
            description="Seed uploaded to the seed bucket: start a petal build",
            event_pattern=events.EventPattern(
                source=["aws.s3"],
                detail_type=["Object Created"],
                detail={
                    "bucket": {"name": [seed_bucket.bucket_name]},
                    # Entries of one array are OR-ed; a wildcard is the only way to
                    # require a prefix AND a suffix in one entry.
                    "object": {"key": [{"wildcard": f"{SEED_PREFIX}*{s}"} for s in SEED_SUFFIXES]},
                },
            ),
            targets=[targets.LambdaFunction(intake)],
        )
        self.command_status = events.Rule(
            self,
            "BootstrapCommandStatus",
            description="petal bootstrap command changed status: complete the build task",
            event_pattern=events.EventPattern(
                source=["aws.ssm"],
                detail_type=[SSM_STATUS_DETAIL_TYPE],
                detail={"document-name": [document_name]},
            ),
            targets=[targets.LambdaFunction(callback)],
        )
        # EventBridge cannot filter EC2 state-change events by tag (the event carries
        # only the instance id and state), so this matches every instance in the
        # account and region; the callback ignores instances that are not petal
        # builds (no task token parked for them).
        self.builder_state = events.Rule(
            self,
            "BuilderStateChange",
            description="An EC2 instance stopped or terminated: fail its petal build, if any",
            event_pattern=events.EventPattern(
                source=["aws.ec2"],
                detail_type=[EC2_STATE_DETAIL_TYPE],
                detail={"state": list(BUILDER_GONE_STATES)},
            ),
            targets=[targets.LambdaFunction(callback)],
        )
