"""The node-setup script, deployed to s3://<seed bucket>/node-setup/ for
ParallelCluster's OnNodeConfigured action (the resolver hands out its URI).

BucketDeployment rather than a plain S3 asset: an asset lands in the CDK bootstrap
bucket under a hash name, while clusters need a stable key in a bucket petal owns
(their `Iam: S3Access` names that bucket). Everything in stacks/assets/ is copied.

The deployment's Lambda (CDK's, run by CloudFormation only) gets a role of its own,
so no AWS managed policy is attached, and an explicit Deny keeps its bucket-wide
write grant out of everything but node-setup/ - the seeds in particular.
"""

from __future__ import annotations

from aws_cdk import RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_deployment as s3deploy
from constructs import Construct

from stacks.nag import acknowledge, acknowledge_wildcard_action, wildcard_resources
from stacks.paths import ASSETS_DIR

NODE_SETUP_PREFIX = "node-setup/"
NODE_SETUP_SCRIPT = "petal-node-setup.sh"
NODE_SETUP_KEY = NODE_SETUP_PREFIX + NODE_SETUP_SCRIPT
# The id prefix of CDK's singleton copy function in the stack.
_DEPLOYMENT_HANDLER_PREFIX = "Custom::CDKBucketDeployment"
# What BucketDeployment grants its handler; acknowledged below, one by one.
_DEPLOYMENT_WILDCARD_ACTIONS = (
    "s3:GetObject*",
    "s3:GetBucket*",
    "s3:List*",
    "s3:DeleteObject*",
    "s3:Abort*",
)


class NodeSetupScript(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        bucket: s3.IBucket,
        retention: logs.RetentionDays,
    ) -> None:
        super().__init__(scope, construct_id)
        self.uri = f"s3://{bucket.bucket_name}/{NODE_SETUP_KEY}"
        self.object_arn = bucket.arn_for_objects(NODE_SETUP_KEY)
        log_group = logs.LogGroup(
            self,
            "DeploymentLogs",
            retention=retention,
            removal_policy=RemovalPolicy.DESTROY,
        )
        self.role = iam.Role(
            self,
            "DeploymentRole",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description="petal: copies the node-setup script into the seed bucket",
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[log_group.log_group_arn],
            )
        )
        self.deployment = s3deploy.BucketDeployment(
            self,
            "Deployment",
            sources=[s3deploy.Source.asset(str(ASSETS_DIR))],
            destination_bucket=bucket,
            destination_key_prefix=NODE_SETUP_PREFIX,
            # The prefix holds only what this deployment puts there; a sync must never
            # delete anything else in the seed bucket.
            prune=False,
            role=self.role,
            log_group=log_group,
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                effect=iam.Effect.DENY,
                actions=["s3:PutObject*", "s3:DeleteObject*", "s3:Abort*"],
                not_resources=[bucket.arn_for_objects(f"{NODE_SETUP_PREFIX}*")],
            )
        )
        self._acknowledge()

    def _acknowledge(self) -> None:
        policy = self.role.node.find_child("DefaultPolicy")
        assert isinstance(policy, iam.Policy)
        why = (
            "CDK's BucketDeployment grants its copy function these on the CDK asset "
            "bucket (read the zip) and the seed bucket (write the script); it runs only "
            "as a CloudFormation custom resource, and an explicit Deny in the same "
            "policy stops writes outside node-setup/."
        )
        for action in _DEPLOYMENT_WILDCARD_ACTIONS:
            acknowledge_wildcard_action(policy, action, why)
        for resource in wildcard_resources(policy):
            acknowledge(policy, f"AwsSolutions-IAM5[Resource::{resource}]", why)
        for child in Stack.of(self).node.children:
            if child.node.id.startswith(_DEPLOYMENT_HANDLER_PREFIX):
                acknowledge(
                    child,
                    "AwsSolutions-L1",
                    "CDK's BucketDeployment handler: aws-cdk-lib picks its runtime to match "
                    "the AWS CLI layer it bundles; it is not configurable and runs only at "
                    "deploy time.",
                )
