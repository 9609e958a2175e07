"""The seed bucket: seeds uploaded under seeds/ start builds; node-setup/ holds the
script cluster nodes run. Its server access logs go to a bucket of their own."""

from __future__ import annotations

from typing import Any

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from constructs import Construct

from petal.deployment_contract import SEED_PREFIX
from stacks import checkov
from stacks.nag import acknowledge, acknowledge_managed_policy

# The id prefix of the singleton Lambda CDK adds to switch on EventBridge delivery.
_NOTIFICATIONS_HANDLER_PREFIX = "BucketNotificationsHandler"

SEED_SUFFIXES = (".yaml", ".yml")


def private_bucket(scope: Construct, construct_id: str, **props: Any) -> s3.Bucket:
    """A bucket only the account reaches: no public access, no ACLs, TLS only."""
    return s3.Bucket(
        scope,
        construct_id,
        # SSE-S3: server access log delivery supports nothing else on the access-log bucket.
        encryption=s3.BucketEncryption.S3_MANAGED,
        block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
        object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
        enforce_ssl=True,
        **props,
    )


class SeedBucket(Construct):
    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)

        self.access_logs = private_bucket(
            self,
            "AccessLogs",
            lifecycle_rules=[s3.LifecycleRule(expiration=Duration.days(365))],
            removal_policy=RemovalPolicy.RETAIN,
        )
        acknowledge(
            self.access_logs,
            "AwsSolutions-S1",
            "This bucket is the destination of the seed bucket's server access logs; "
            "logging it to itself would recurse, and a third bucket only moves the question.",
        )
        checkov.skip(
            self.access_logs,
            "CKV_AWS_18",
            "This bucket is the destination of the seed bucket's server access logs; "
            "logging it to itself would recurse, and a third bucket only moves the question.",
        )
        checkov.skip(
            self.access_logs,
            "CKV_AWS_21",
            "Access logs are written once by the S3 logging service and never overwritten; "
            "versions would only keep deleted logs past their one-year lifecycle, which "
            "is the retention chosen for them.",
        )

        self.bucket = private_bucket(
            self,
            "Bucket",
            versioned=True,
            # The intake trigger listens for "Object Created" on EventBridge.
            event_bridge_enabled=True,
            server_access_logs_bucket=self.access_logs,
            server_access_logs_prefix="seed-bucket/",
            lifecycle_rules=[
                # Old seed versions are kept for audit, but not forever.
                s3.LifecycleRule(noncurrent_version_expiration=Duration.days(90)),
                s3.LifecycleRule(abort_incomplete_multipart_upload_after=Duration.days(7)),
            ],
            # Seeds are user data: deleting the stack must not delete them.
            removal_policy=RemovalPolicy.RETAIN,
        )
        self._acknowledge_notifications_handler()

    def _acknowledge_notifications_handler(self) -> None:
        basic_execution = iam.ManagedPolicy.from_aws_managed_policy_name(
            "service-role/AWSLambdaBasicExecutionRole"
        )
        for child in Stack.of(self).node.children:
            if child.node.id.startswith(_NOTIFICATIONS_HANDLER_PREFIX):
                acknowledge_managed_policy(
                    child.node.find_child("Role"),
                    basic_execution,
                    "CDK's S3 notifications helper (event_bridge_enabled) runs once per "
                    "deployment as a custom resource; aws-cdk-lib creates its role with "
                    "this AWS policy (logs only) and offers no way to replace it.",
                )

    def seed_object_arns(self) -> list[str]:
        """ARNs of the seed objects, the only keys intake and prepare may read."""
        return [self.bucket.arn_for_objects(f"{SEED_PREFIX}*")]
