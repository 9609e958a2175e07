"""The builder instance's identity: a role the SSM agent can work with, able to write
the bootstrap output to the build log group and to read the configured Spack mirror
buckets, and nothing more.

Not `AmazonSSMManagedInstanceCore`: besides the agent's own calls it grants
`ssm:GetParameter(s)`, `ssm:GetDocument` and more on `*`, so a build (whose seed
chooses what runs) could read the account's Parameter Store.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from aws_cdk import Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from constructs import Construct

from stacks.nag import acknowledge, acknowledge_wildcard_resource

# What the SSM agent calls to run a Run Command document and report on it, taken from
# AmazonSSMManagedInstanceCore (checked against amazon-ssm-agent); everything else in
# that policy (parameters, documents, inventory, compliance, patching, associations'
# status) serves features petal does not use.
AGENT_INSTANCE_ACTIONS: Final = (
    # The agent's heartbeat: registers the instance and keeps it "Online", which
    # check_ready waits for (DescribeInstanceInformation).
    "ssm:UpdateInstanceInformation",
    # Polled by the agent's association processor every few minutes whatever runs;
    # denied, it fills the agent log and CloudTrail with failures. It lists only
    # associations that target this instance.
    "ssm:ListInstanceAssociations",
)
# Message channels without resource-level permissions (AWS requires "*"). Current
# agents receive Run Command messages over the ssmmessages control channel, older ones
# (and the fallback when that channel is unavailable) over ec2messages.
AGENT_CHANNEL_ACTIONS: Final = (
    "ssmmessages:CreateControlChannel",
    "ssmmessages:CreateDataChannel",
    "ssmmessages:OpenControlChannel",
    "ssmmessages:OpenDataChannel",
    "ec2messages:AcknowledgeMessage",
    "ec2messages:DeleteMessage",
    "ec2messages:FailMessage",
    "ec2messages:GetEndpoint",
    "ec2messages:GetMessages",
    "ec2messages:SendReply",
)
# The command output (CloudWatchOutputConfig): the agent checks that the group exists,
# then creates a stream per command and writes to it. This lets every builder write
# every stream of the group, another build's included, and IAM offers no narrower
# grant for one shared role: the stream is <command>/<instance>/<plugin>/stdout, but
# the only per-instance policy variable, ${ec2:SourceInstanceARN}, is a whole ARN (a
# stream name cannot hold its ':'), and CloudWatch Logs has no condition key for the
# stream's name. So the log consumer checks each stream's command and instance against
# the build record instead (petal.build.callbacks, docs/ARCHITECTURE.md "Trust
# boundaries"); a group and role per build would be the IAM-enforced alternative.
BUILD_LOG_ACTIONS: Final = (
    "logs:CreateLogStream",
    "logs:PutLogEvents",
    "logs:DescribeLogStreams",
)
# Spack reads an s3:// mirror with boto3: objects, and listings of the bucket.
MIRROR_OBJECT_ACTIONS: Final = ("s3:GetObject",)
MIRROR_BUCKET_ACTIONS: Final = ("s3:ListBucket",)


class BuilderIdentity(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        build_log_group: logs.ILogGroup,
        mirror_buckets: Sequence[str] = (),
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("ec2.amazonaws.com"),
            description="petal builder instance: SSM agent and build log output only",
        )
        # Any instance of the account and region: the builder's id does not exist
        # before launch, and only builders are given this role (launch may pass it
        # to EC2 only, and only for instances tagged as petal's).
        instances = stack.format_arn(service="ec2", resource="instance", resource_name="*")
        self.role.add_to_policy(
            iam.PolicyStatement(actions=list(AGENT_INSTANCE_ACTIONS), resources=[instances])
        )
        self.role.add_to_policy(
            iam.PolicyStatement(actions=list(AGENT_CHANNEL_ACTIONS), resources=["*"])
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=list(BUILD_LOG_ACTIONS), resources=[build_log_group.log_group_arn]
            )
        )
        # DescribeLogGroups has no resource-level permissions: AWS requires "*".
        self.role.add_to_policy(
            iam.PolicyStatement(actions=["logs:DescribeLogGroups"], resources=["*"])
        )
        mirror_objects: list[str] = []
        if mirror_buckets:
            buckets = [
                stack.format_arn(service="s3", region="", account="", resource=name)
                for name in mirror_buckets
            ]
            mirror_objects = [f"{bucket}/*" for bucket in buckets]
            self.role.add_to_policy(
                iam.PolicyStatement(actions=list(MIRROR_BUCKET_ACTIONS), resources=buckets)
            )
            self.role.add_to_policy(
                iam.PolicyStatement(actions=list(MIRROR_OBJECT_ACTIONS), resources=mirror_objects)
            )
        self.instance_profile = iam.InstanceProfile(self, "InstanceProfile", role=self.role)

        acknowledge(
            self.role,
            "AwsSolutions-IAM5[Resource::*]",
            "Only actions AWS offers without resource-level permissions: the SSM agent's "
            "message channels (ssmmessages:*, ec2messages:* as listed) and "
            "logs:DescribeLogGroups, which the agent calls to check that the command "
            "output group exists.",
        )
        acknowledge_wildcard_resource(
            self.role,
            instances,
            "ssm:UpdateInstanceInformation and ssm:ListInstanceAssociations on the "
            "calling instance: its id is unknown before launch, and only petal builders "
            "run with this role.",
        )
        for arn in mirror_objects:
            acknowledge_wildcard_resource(
                self.role,
                arn,
                "Read-only access to the objects of a Spack mirror bucket the operator "
                "listed in petal:mirrorBuckets; a mirror's keys are Spack's to choose.",
            )
