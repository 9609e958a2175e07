"""The builds table: one DynamoDB table for builds, locks, task tokens and intake
de-duplication (item shapes in petal/deployment_contract.py)."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from constructs import Construct

from petal.deployment_contract import (
    INDEX_KEYS,
    TABLE_PARTITION_KEY,
    TABLE_SORT_KEY,
    TABLE_TTL_ATTRIBUTE,
)
from stacks import checkov


class BuildsTable(Construct):
    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        string = dynamodb.AttributeType.STRING
        self.table = dynamodb.Table(
            self,
            "Table",
            partition_key=dynamodb.Attribute(name=TABLE_PARTITION_KEY, type=string),
            sort_key=dynamodb.Attribute(name=TABLE_SORT_KEY, type=string),
            # Traffic is a few writes per build: on-demand costs nothing when idle.
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            encryption=dynamodb.TableEncryption.AWS_MANAGED,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            # Tokens, intake markers and expired locks carry a ttl so they vanish.
            time_to_live_attribute=TABLE_TTL_ATTRIBUTE,
            # Build history outlives the stack; `cdk destroy` leaves the table.
            removal_policy=RemovalPolicy.RETAIN,
        )
        checkov.skip(
            self.table,
            "CKV_AWS_119",
            "Encrypted at rest with the AWS managed DynamoDB key. The table holds build "
            "records, locks and task tokens that never leave AWS, and petal has no key of "
            "its own to use; a customer managed key would add key management and a key "
            "policy for every function, for no reader that IAM does not already stop.",
        )
        for index_name, (pk, sk) in INDEX_KEYS.items():
            self.table.add_global_secondary_index(
                index_name=index_name,
                partition_key=dynamodb.Attribute(name=pk, type=string),
                sort_key=dynamodb.Attribute(name=sk, type=string),
                projection_type=dynamodb.ProjectionType.ALL,
            )

    def index_arns(self) -> list[str]:
        return [f"{self.table.table_arn}/index/{name}" for name in INDEX_KEYS]
