"""The builder instance's identity: a role the SSM agent can work with, able to write
the bootstrap output to the build log group, and nothing more."""

from __future__ import annotations

from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from constructs import Construct

from stacks.nag import acknowledge, acknowledge_managed_policy


class BuilderIdentity(Construct):
    def __init__(
        self, scope: Construct, construct_id: str, *, build_log_group: logs.ILogGroup
    ) -> None:
        super().__init__(scope, construct_id)
        ssm_core = iam.ManagedPolicy.from_aws_managed_policy_name("AmazonSSMManagedInstanceCore")
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("ec2.amazonaws.com"),
            description="petal builder instance: SSM agent and build log output only",
            managed_policies=[ssm_core],
        )
        # The SSM agent streams command output with CloudWatchOutputConfig: it checks
        # that the group exists, then creates a stream per command and writes to it.
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
                resources=[build_log_group.log_group_arn],
            )
        )
        # DescribeLogGroups has no resource-level permissions: AWS requires "*".
        self.role.add_to_policy(
            iam.PolicyStatement(actions=["logs:DescribeLogGroups"], resources=["*"])
        )
        self.instance_profile = iam.InstanceProfile(self, "InstanceProfile", role=self.role)

        acknowledge_managed_policy(
            self.role,
            ssm_core,
            "AWS's minimal policy for the SSM agent (Run Command, Session Manager), kept "
            "current by AWS as the agent changes; the builder is driven only through SSM.",
        )
        acknowledge(
            self.role,
            "AwsSolutions-IAM5[Resource::*]",
            "logs:DescribeLogGroups has no resource-level permissions (AWS requires '*'); "
            "the SSM agent calls it to check that the command output group exists.",
        )
