"""The petal stack: one construct per concern, wired together here."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Environment, Stack
from constructs import Construct

from petal.aws.session import partition_of
from petal.build.build_cache import ENV_BUILD_CACHE_URL, ENV_SIGNING_KEY_SECRET
from petal.build.config import (
    ENV_BUILDER_HTTP_EGRESS,
    ENV_EBS_DEFAULT_KMS_KEY,
    ENV_MIRROR_BUCKETS,
)
from petal.build.manifest import MANIFEST_PREFIX
from petal.deployment_contract import (
    CALLBACK_FUNCTION,
    ENV_BUILD_LOG_GROUP,
    ENV_BUILD_TIMEOUT_MINUTES,
    ENV_DOCUMENT,
    ENV_INSTANCE_PROFILE,
    ENV_NODE_SETUP_URI,
    ENV_REGISTRY_URL,
    ENV_SECURITY_GROUP,
    ENV_SEED_BUCKET,
    ENV_STATE_MACHINE,
    ENV_SUBNETS,
    ENV_TABLE,
    ENV_TRUSTED_ACCOUNTS,
    INTAKE_FUNCTION,
    JANITOR_FUNCTION,
    LOG_HEARTBEAT_FUNCTION,
    OUTPUT_BUILD_LOG_GROUP,
    OUTPUT_DEAD_LETTER_ALARMS,
    OUTPUT_DEAD_LETTER_FUNCTIONS,
    OUTPUT_DEAD_LETTER_QUEUES,
    OUTPUT_DOCUMENT,
    OUTPUT_NODE_SETUP_URI,
    OUTPUT_RESOLVER,
    OUTPUT_SEED_BUCKET,
    OUTPUT_STATE_MACHINE_ARN,
    OUTPUT_TABLE,
    RESOLVER_FUNCTION,
)
from stacks.bootstrap_document import BootstrapDocument
from stacks.build_cache import BuildCache
from stacks.build_logs import BuildLogs
from stacks.build_state_machine import (
    BuildStateMachine,
    state_machine_arn,
    state_machine_settings,
)
from stacks.builder_identity import BuilderIdentity
from stacks.builder_network import BuilderNetwork
from stacks.builds_table import BuildsTable
from stacks.checkov import acknowledge_shared_findings
from stacks.dead_letters import DeadLetters
from stacks.function_permissions import grant_function_permissions
from stacks.functions import PetalFunctions
from stacks.janitor import JanitorSchedule
from stacks.node_setup import NodeSetupScript
from stacks.seed_bucket import SeedBucket
from stacks.settings import PREFIX, PetalSettings, SettingsError
from stacks.triggers import Triggers

COMMERCIAL_PARTITION = "aws"


def check_partition(region: str) -> None:
    """Refuse a region outside the commercial partition before anything is built.

    The China, GovCloud and ISO partitions are not supported: the Powertools layer
    petal uses is published under another account there (or not at all), and the state
    machine's service integrations are written `arn:aws:states:::...`, which Step
    Functions in those partitions rejects only when an execution starts. Better a clear
    refusal at synth than a stack that deploys and then fails.
    """
    partition = partition_of(region)
    if partition not in (None, COMMERCIAL_PARTITION):
        raise SettingsError(
            f"{PREFIX}region {region!r} is in the {partition} partition; petal deploys only "
            f"to the commercial partition ({COMMERCIAL_PARTITION}): the Powertools Lambda "
            "layer and the state machine's service integration ARNs it uses are those of "
            f"that partition. Choose a region such as us-east-1 (-c {PREFIX}region=us-east-1)."
        )


class PetalStack(Stack):
    def __init__(
        self, scope: Construct, construct_id: str, *, settings: PetalSettings, **kwargs: Any
    ) -> None:
        check_partition(settings.region)
        # Only the region is fixed: the account comes from the deploying credentials,
        # and nothing in the stack needs a context lookup.
        super().__init__(
            scope,
            construct_id,
            stack_name=settings.stack_name,
            env=Environment(region=settings.region),
            description="petal: builds Spack software stacks onto EBS snapshots",
            **kwargs,
        )
        self.settings = settings
        retention = settings.log_retention

        self.seeds = SeedBucket(self, "Seeds")
        self.builds = BuildsTable(self, "Builds")
        self.build_logs = BuildLogs(self, "BuildLogs", retention=retention)
        # petal:buildCache: "" none, "create" a bucket of petal's, else the bucket named.
        self.build_cache = (
            BuildCache(
                self,
                "BuildCache",
                setting=settings.build_cache,
                access_logs=self.seeds.access_logs,
            )
            if settings.build_cache
            else None
        )
        self.builder_identity = BuilderIdentity(
            self,
            "BuilderIdentity",
            build_log_group=self.build_logs.log_group,
            mirror_buckets=settings.mirror_buckets,
            manifest_objects=self.seeds.bucket.arn_for_objects(f"{MANIFEST_PREFIX}*"),
            build_cache=self.build_cache,
        )
        self.builder_network = BuilderNetwork(
            self,
            "BuilderNetwork",
            vpc_id=settings.vpc_id,
            subnet_ids=settings.subnet_ids,
            subnet_zones=settings.subnet_availability_zones,
            allow_http=settings.builder_http_egress,
            create_vpc_endpoints=settings.create_vpc_endpoints,
        )
        self.document = BootstrapDocument(self, "BootstrapDocument")
        self.node_setup = NodeSetupScript(
            self, "NodeSetup", bucket=self.seeds.bucket, retention=retention
        )

        # Every function gets the whole contract environment: values are not secrets,
        # and a handler reading a variable it was not given would fail only in AWS.
        environment = {
            ENV_TABLE: self.builds.table.table_name,
            ENV_SEED_BUCKET: self.seeds.bucket.bucket_name,
            ENV_DOCUMENT: self.document.document_ref,
            ENV_INSTANCE_PROFILE: self.builder_identity.instance_profile.instance_profile_arn,
            ENV_SECURITY_GROUP: self.builder_network.security_group.security_group_id,
            ENV_SUBNETS: ",".join(settings.subnet_ids),
            ENV_BUILD_LOG_GROUP: self.build_logs.log_group.log_group_name,
            ENV_STATE_MACHINE: state_machine_arn(self),
            ENV_REGISTRY_URL: settings.registry_url,
            ENV_TRUSTED_ACCOUNTS: ",".join(settings.trusted_accounts),
            ENV_NODE_SETUP_URI: self.node_setup.uri,
            ENV_BUILD_TIMEOUT_MINUTES: str(settings.build_timeout_minutes),
            # What the builder may reach and use, so Prepare can refuse a build that
            # would fail on it (an Ubuntu build without HTTP, an s3:// mirror the role
            # cannot read, a default EBS key the functions may not use).
            ENV_BUILDER_HTTP_EGRESS: "true" if settings.builder_http_egress else "false",
            ENV_MIRROR_BUCKETS: ",".join(settings.mirror_buckets),
            ENV_EBS_DEFAULT_KMS_KEY: settings.ebs_default_kms_key_arn,
            ENV_BUILD_CACHE_URL: self.build_cache.url if self.build_cache else "",
            ENV_SIGNING_KEY_SECRET: (
                self.build_cache.secret.secret_arn if self.build_cache else ""
            ),
        }
        self.functions = PetalFunctions(
            self,
            "Functions",
            environment=environment,
            retention=retention,
            powertools_layer_version=settings.powertools_layer_version,
            reserved_concurrency={
                CALLBACK_FUNCTION: settings.callback_concurrency,
                INTAKE_FUNCTION: settings.intake_concurrency,
            },
        )
        self.build_logs.forward_markers_to(self.functions[LOG_HEARTBEAT_FUNCTION])
        self.state_machine = BuildStateMachine(
            self,
            "BuildStateMachine",
            functions=self.functions.functions,
            table=self.builds.table,
            settings=state_machine_settings(settings, self.functions.step_timeout_seconds),
            retention=retention,
        )
        self.dead_letters = DeadLetters(self, "DeadLetters", stack_name=settings.stack_name)
        self.triggers = Triggers(
            self,
            "Triggers",
            seed_bucket=self.seeds.bucket,
            document_name=self.document.document_ref,
            intake=self.functions[INTAKE_FUNCTION],
            callback=self.functions[CALLBACK_FUNCTION],
            intake_dead_letters=self.dead_letters[INTAKE_FUNCTION],
            callback_dead_letters=self.dead_letters[CALLBACK_FUNCTION],
        )
        self.janitor = JanitorSchedule(
            self,
            "Janitor",
            janitor=self.functions[JANITOR_FUNCTION],
            rate_minutes=settings.janitor_rate_minutes,
        )
        self.dead_letters.on_undeliverable(self.janitor.rule, JANITOR_FUNCTION)
        self.dead_letters.on_failure(self.functions.functions)
        grant_function_permissions(self)
        acknowledge_shared_findings(self, self.functions)

        outputs = {
            OUTPUT_STATE_MACHINE_ARN: self.state_machine.state_machine.state_machine_arn,
            OUTPUT_SEED_BUCKET: self.seeds.bucket.bucket_name,
            OUTPUT_TABLE: self.builds.table.table_name,
            OUTPUT_RESOLVER: self.functions[RESOLVER_FUNCTION].function_name,
            OUTPUT_BUILD_LOG_GROUP: self.build_logs.log_group.log_group_name,
            OUTPUT_DOCUMENT: self.document.document_ref,
            OUTPUT_NODE_SETUP_URI: self.node_setup.uri,
        }
        for module, queue in self.dead_letters.queues.items():
            outputs[OUTPUT_DEAD_LETTER_QUEUES[module]] = queue.queue_url
            outputs[OUTPUT_DEAD_LETTER_ALARMS[module]] = self.dead_letters.alarms[module].alarm_name
            outputs[OUTPUT_DEAD_LETTER_FUNCTIONS[module]] = self.functions[module].function_name
        for name, value in outputs.items():
            CfnOutput(self, name, value=value)
