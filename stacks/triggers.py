"""EventBridge rules that start and advance builds.

- A seed uploaded under seeds/ (.yaml or .yml) -> intake, which starts a build.
- The bootstrap command finishing (SSM Run Command status change) -> callback, which
  completes the parked task token.
- A builder instance stopping or disappearing -> callback, which fails the build
  instead of letting it wait for its heartbeat to time out.

Every target has a retry policy and a dead-letter queue (the function's own, from
stacks/dead_letters.py): an event EventBridge cannot deliver waits there for
`petal admin redrive` instead of being dropped.
"""

from __future__ import annotations

from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from petal.deployment_contract import SEED_PREFIX
from stacks.dead_letters import MAX_EVENT_AGE, TARGET_RETRY_ATTEMPTS
from stacks.seed_bucket import SEED_SUFFIXES

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
        intake_dead_letters: sqs.IQueue,
        callback_dead_letters: sqs.IQueue,
    ) -> None:
        super().__init__(scope, construct_id)

        def target(function: lambda_.IFunction, queue: sqs.IQueue) -> targets.LambdaFunction:
            # CDK adds the queue policy letting this rule (and only it) send to the queue.
            return targets.LambdaFunction(
                function,
                dead_letter_queue=queue,
                retry_attempts=TARGET_RETRY_ATTEMPTS,
                max_event_age=MAX_EVENT_AGE,
            )

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
            targets=[target(intake, intake_dead_letters)],
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
            targets=[target(callback, callback_dead_letters)],
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
            targets=[target(callback, callback_dead_letters)],
        )
