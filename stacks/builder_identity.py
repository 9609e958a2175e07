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

from petal.build.build_cache import CACHE_PREFIX
from stacks.build_cache import SECRET_VALUE_ACTIONS, BuildCache
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
# the build record, and believes only marker lines tagged with the build's log key,
# which only that build's instance receives (an SSM command parameter; no builder can
# read the builds table): a builder can append lines to another build's raw log, which
# `petal build logs` shows terminal-safe and marks UNVERIFIED, but cannot change its
# state, heartbeat, progress or failure cause (petal.build.log_markers,
# docs/ARCHITECTURE.md "Security: trust boundaries").
BUILD_LOG_ACTIONS: Final = (
    "logs:CreateLogStream",
    "logs:PutLogEvents",
    "logs:DescribeLogStreams",
)
# Spack reads an s3:// mirror with boto3: objects, and listings of the bucket.
MIRROR_OBJECT_ACTIONS: Final = ("s3:GetObject",)
MIRROR_BUCKET_ACTIONS: Final = ("s3:ListBucket",)
# The build cache: read (a missing key is a 404, not a 403, only with ListBucket) and
# push, in multipart uploads for large binaries; nothing is ever deleted by a builder.
CACHE_OBJECT_ACTIONS: Final = ("s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload")
# The manifest's copy (petal.build.manifest): written once, read by the CLI only.
MANIFEST_ACTIONS: Final = ("s3:PutObject",)


class BuilderIdentity(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        build_log_group: logs.ILogGroup,
        mirror_buckets: Sequence[str] = (),
        manifest_objects: str | None = None,
        build_cache: BuildCache | None = None,
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
        if manifest_objects is not None:
            self.role.add_to_policy(
                iam.PolicyStatement(actions=list(MANIFEST_ACTIONS), resources=[manifest_objects])
            )
            acknowledge_wildcard_resource(
                self.role,
                manifest_objects,
                "Builders upload their manifest under manifests/ of the seed bucket, named "
                "by a build id unknown at deploy time; each copy is checked against the "
                "SHA-256 its build reported, so another builder cannot pass one off.",
            )
        if build_cache is not None:
            self._use_build_cache(build_cache)
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

    def _use_build_cache(self, cache: BuildCache) -> None:
        """Read and push the cache's prefix only, and read and set its signing key."""
        objects = cache.bucket.arn_for_objects(f"{CACHE_PREFIX}/*")
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=list(MIRROR_BUCKET_ACTIONS),
                resources=[cache.bucket.bucket_arn],
                conditions={"StringLike": {"s3:prefix": [CACHE_PREFIX, f"{CACHE_PREFIX}/*"]}},
            )
        )
        self.role.add_to_policy(
            iam.PolicyStatement(actions=list(CACHE_OBJECT_ACTIONS), resources=[objects])
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=list(SECRET_VALUE_ACTIONS), resources=[cache.secret.secret_arn]
            )
        )
        cache.allow_only(self.role)
        acknowledge_wildcard_resource(
            self.role,
            objects,
            "The build cache's objects are Spack's binaries, named by hashes only Spack "
            "knows; the builder may use its build-cache/ prefix and nothing else there.",
        )
