"""The janitor's schedule: a sweep for builder instances, volumes and locks that
outlived the build timeout (a build stopped with StopExecution runs no Catch, so
nothing else would clean up after it)."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_lambda as lambda_
from constructs import Construct


class JanitorSchedule(Construct):
    def __init__(
        self, scope: Construct, construct_id: str, *, janitor: lambda_.IFunction, rate_minutes: int
    ) -> None:
        super().__init__(scope, construct_id)
        self.rule = events.Rule(
            self,
            "Schedule",
            description="Sweep for orphaned petal builds",
            schedule=events.Schedule.rate(Duration.minutes(rate_minutes)),
            targets=[targets.LambdaFunction(janitor)],
        )
