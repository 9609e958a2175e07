"""Dead-letter queues: nothing an asynchronous path cannot process is lost.

Three functions are invoked asynchronously and act on events nothing else repeats:
callback (SSM command status, EC2 builder state), intake (seed uploads) and janitor
(its schedule). Each has one queue, which receives both

- what EventBridge could not hand to the function (the rule target's dead-letter
  queue, after the target's retry policy), as the event itself, and
- what the function failed on after Lambda's own retries (its on-failure destination),
  as Lambda's invocation record with the event under `requestPayload`.

`petal admin redrive` (petal/build/redrive.py) hands either back to the same function.
The queues are encrypted (SSE-SQS), refuse plain HTTP, keep a message for the longest
SQS allows, and each has an alarm on its depth: a message there is a build (or a
sweep) that is waiting on an operator.

log_heartbeat, the build log subscription's function, has no queue: a lost delivery
costs one heartbeat, which the next marker line repeats (a third of the heartbeat window
later), and how the build ends never depends on it (the callback, or the janitor's
reconciler when every event is lost, ends it).
"""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import Duration, Names
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from petal.deployment_contract import OUTPUT_DEAD_LETTER_QUEUES
from stacks import checkov
from stacks.functions import construct_name
from stacks.nag import acknowledge

# The functions with a dead-letter queue (callback, intake, janitor), as the contract
# names their outputs.
DEAD_LETTER_FUNCTIONS = tuple(OUTPUT_DEAD_LETTER_QUEUES)
# SQS's longest retention: an operator on holiday still finds the event.
RETENTION = Duration.days(14)
# Lambda's own retries of a failed asynchronous invocation. The callback relies on them
# for a status event that arrives before its task token is parked (TaskTokenNotParked:
# the retries come about one and three minutes later).
ASYNC_RETRY_ATTEMPTS = 2
# How long an event may wait for a function, in Lambda's queue and in EventBridge's
# retries alike: Lambda's maximum. Older than that, a status event is still worth
# applying (builds run for hours), so it goes to the queue rather than nowhere.
MAX_EVENT_AGE = Duration.hours(6)
# EventBridge retries a target it could not invoke (throttling, Lambda unavailable)
# with back-off, within MAX_EVENT_AGE.
TARGET_RETRY_ATTEMPTS = 20
# The depth alarm looks at the queue every five minutes; one message is enough.
ALARM_PERIOD = Duration.minutes(5)


class DeadLetters(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, stack_name: str) -> None:
        super().__init__(scope, construct_id)
        self.queues: dict[str, sqs.Queue] = {}
        self.alarms: dict[str, cloudwatch.Alarm] = {}
        for module in DEAD_LETTER_FUNCTIONS:
            name = construct_name(module)
            queue = sqs.Queue(
                self,
                f"{name}Queue",
                # SSE-SQS: EventBridge and Lambda deliver to it without a key policy to
                # maintain, and nothing but petal's own events is stored in it.
                encryption=sqs.QueueEncryption.SQS_MANAGED,
                enforce_ssl=True,
                retention_period=RETENTION,
            )
            acknowledge(
                queue,
                "AwsSolutions-SQS3",
                "This queue is itself a dead-letter queue: the rule target's DeadLetterConfig "
                "and the function's on-failure destination (EventInvokeConfig) point at it, "
                "which cdk-nag does not recognise as dead-letter use.",
            )
            checkov.skip(
                queue,
                "CKV_AWS_27",
                "Encrypted at rest with SSE-SQS (SqsManagedSseEnabled), which this check "
                "does not read (it looks for KmsMasterKeyId only). A KMS key is not an "
                "option for the AWS managed alias/aws/sqs: EventBridge cannot send to a "
                "queue under a key whose policy cannot name it.",
            )
            self.queues[module] = queue
            self.alarms[module] = cloudwatch.Alarm(
                self,
                f"{name}Alarm",
                alarm_name=f"{stack_name}-{module}-dead-letters",
                alarm_description=(
                    f"petal's {module} function could not process an event: it waits in "
                    f"its dead-letter queue. `petal admin redrive --queue {module}` "
                    "replays it (docs/ARCHITECTURE.md, 'Failure and cleanup')."
                ),
                metric=queue.metric_approximate_number_of_messages_visible(
                    period=ALARM_PERIOD, statistic=cloudwatch.Stats.MAXIMUM
                ),
                threshold=0,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
                evaluation_periods=1,
                # An empty queue sends no datapoints at times; that is not a problem.
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            )

    def __getitem__(self, module: str) -> sqs.Queue:
        return self.queues[module]

    def on_failure(self, functions: Mapping[str, lambda_.Function]) -> None:
        """Each function's failed asynchronous invocations, after Lambda's retries, go
        to its queue (Lambda's on-failure destination, with the error and the event).

        Written as the L1 resource, with sqs:SendMessage alone on the function's role:
        CDK's `configure_async_invoke` would also grant GetQueueAttributes and
        GetQueueUrl, which Lambda's delivery does not use."""
        for module in DEAD_LETTER_FUNCTIONS:
            function = functions[module]
            queue = self.queues[module]
            config = lambda_.CfnEventInvokeConfig(
                self,
                f"{construct_name(module)}AsyncInvoke",
                function_name=function.function_name,
                qualifier="$LATEST",
                maximum_retry_attempts=ASYNC_RETRY_ATTEMPTS,
                maximum_event_age_in_seconds=int(MAX_EVENT_AGE.to_seconds()),
                destination_config=lambda_.CfnEventInvokeConfig.DestinationConfigProperty(
                    on_failure=lambda_.CfnEventInvokeConfig.OnFailureProperty(
                        destination=queue.queue_arn
                    )
                ),
            )
            # Lambda checks the role's permission when the configuration is created.
            policy = iam.Policy(
                self,
                f"{construct_name(module)}DestinationPolicy",
                statements=[
                    iam.PolicyStatement(actions=["sqs:SendMessage"], resources=[queue.queue_arn])
                ],
            )
            role = function.role
            assert role is not None, f"{module} has no role"
            policy.attach_to_role(role)
            config.node.add_dependency(policy)

    def on_undeliverable(self, rule: events.Rule, module: str) -> None:
        """For a rule whose target was created elsewhere (the janitor's schedule): what
        EventBridge cannot deliver to the function goes to `module`'s queue, after the
        same retry policy the other rules' targets have (stacks/triggers.py)."""
        queue = self.queues[module]
        cfn = rule.node.default_child
        assert isinstance(cfn, events.CfnRule)
        cfn.add_property_override("Targets.0.DeadLetterConfig.Arn", queue.queue_arn)
        cfn.add_property_override(
            "Targets.0.RetryPolicy",
            {
                "MaximumRetryAttempts": TARGET_RETRY_ATTEMPTS,
                "MaximumEventAgeInSeconds": int(MAX_EVENT_AGE.to_seconds()),
            },
        )
        allow_rule_to_send(queue, rule)


def allow_rule_to_send(queue: sqs.IQueue, rule: events.IRule) -> None:
    """The queue policy EventBridge needs to dead-letter this rule's events, and only
    this rule's (as CDK writes it for a target's dead_letter_queue)."""
    queue.add_to_resource_policy(
        iam.PolicyStatement(
            sid=f"AllowEventRule{Names.node_unique_id(rule.node)}",
            principals=[iam.ServicePrincipal("events.amazonaws.com")],
            actions=["sqs:SendMessage"],
            resources=[queue.queue_arn],
            conditions={"ArnEquals": {"aws:SourceArn": rule.rule_arn}},
        )
    )
