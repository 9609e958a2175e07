"""Names shared by the CDK stack, the state machine, the Lambda handlers and local mode.

One place for every name that crosses a boundary, so the stack, the emulator set-up in
local mode and the workflow tests cannot drift apart.
"""

from __future__ import annotations

from typing import Final

# Tag keys petal puts on what it creates. IAM conditions in the stack are written
# against these, so they must never change without a migration.
TAG_MANAGED: Final = "petal:managed"
# The value of TAG_MANAGED on everything petal creates.
MANAGED_VALUE: Final = "true"
TAG_BUILD_ID: Final = "petal:build-id"
TAG_ROLE: Final = "petal:role"  # "builder" on instances, "software-volume" on volumes
TAG_FINGERPRINT: Final = "petal:fingerprint"
TAG_OS: Final = "petal:os"
TAG_ARCH: Final = "petal:arch"
TAG_SPACK_VERSION: Final = "petal:spack-version"
TAG_SEED: Final = "petal:seed"
TAG_PACKAGES: Final = "petal:packages"
# On a snapshot built on a user-supplied image (build.image): clusters need that image
# as Image.CustomAmi (rocky8/rocky9 have no official ParallelCluster AMI).
TAG_BUILDER_IMAGE: Final = "petal:builder-image"
# On a snapshot built on a parent (`petal build --from`): the parent snapshot's id.
TAG_PARENT: Final = "petal:parent-snapshot"
# On a snapshot: where its volume was mounted when built (MOUNT_DIR). A build on a
# parent must mount it there too: Spack's paths are absolute. Snapshots from before the
# tag were all built at MOUNT_DIR.
TAG_MOUNT_DIR: Final = "petal:mount-dir"
ROLE_BUILDER: Final = "builder"
ROLE_VOLUME: Final = "software-volume"

# Lambda handler modules under lambdas/, keyed by the DefinitionSubstitutions name the
# state machine uses for the function's ARN. Every module exposes `handler`.
STEP_FUNCTIONS: Final[dict[str, str]] = {
    "PrepareFunctionArn": "prepare",
    "LaunchFunctionArn": "launch",
    "CheckReadyFunctionArn": "check_ready",
    "BootstrapFunctionArn": "bootstrap",
    "SnapshotFunctionArn": "snapshot",
    "CheckSnapshotFunctionArn": "check_snapshot",
    "CleanupFunctionArn": "cleanup",
}
# Functions that are not states of the build state machine.
CALLBACK_FUNCTION: Final = "callback"  # SSM / EC2 EventBridge events -> SendTask*
LOG_HEARTBEAT_FUNCTION: Final = "log_heartbeat"  # build-log subscription -> heartbeat
INTAKE_FUNCTION: Final = "intake"  # S3 seed upload -> StartExecution
JANITOR_FUNCTION: Final = "janitor"  # scheduled sweep of orphaned resources
RESOLVER_FUNCTION: Final = "resolver"  # fingerprint -> snapshot + ParallelCluster config

STATE_MACHINE_FILE: Final = "statemachines/build.asl.json"
SSM_DOCUMENT_FILE: Final = "ssm_documents/bootstrap.yaml"
SSM_BOOTSTRAP_SCRIPT: Final = "ssm_documents/bootstrap.sh"

# Environment variables the handlers read. The stack sets them; local mode sets them.
ENV_TABLE: Final = "PETAL_TABLE_NAME"
ENV_SEED_BUCKET: Final = "PETAL_SEED_BUCKET"
ENV_DOCUMENT: Final = "PETAL_DOCUMENT_NAME"
ENV_INSTANCE_PROFILE: Final = "PETAL_BUILDER_INSTANCE_PROFILE_ARN"
ENV_SECURITY_GROUP: Final = "PETAL_BUILDER_SECURITY_GROUP_ID"
ENV_SUBNETS: Final = "PETAL_BUILDER_SUBNET_IDS"  # comma-separated, tried in order
ENV_BUILD_LOG_GROUP: Final = "PETAL_BUILD_LOG_GROUP"
ENV_STATE_MACHINE: Final = "PETAL_STATE_MACHINE_ARN"
# Seeds petal builds from: this prefix of the seed bucket (the upload trigger, the
# roles that read seeds and the code that checks a seed_uri all use it).
SEED_PREFIX: Final = "seeds/"
ENV_REGISTRY_URL: Final = "PETAL_REGISTRY_URL"
ENV_TRUSTED_ACCOUNTS: Final = "PETAL_TRUSTED_ACCOUNTS"  # comma-separated account ids
ENV_NODE_SETUP_URI: Final = "PETAL_NODE_SETUP_URI"  # s3:// URI of the node setup script
ENV_BUILD_TIMEOUT_MINUTES: Final = "PETAL_BUILD_TIMEOUT_MINUTES"
# petal:builderImageOwners: accounts whose images a build may boot besides this one
# (comma-separated); the launch role's ec2:Owner condition allows the same.
ENV_BUILDER_IMAGE_OWNERS: Final = "PETAL_BUILDER_IMAGE_OWNERS"
# The cost guard rails Prepare holds a build to (petal:allowedInstanceTypes,
# petal:maxVolumeGb, petal:maxVolumeIops, petal:maxBuildHours); the launch role's
# ec2:InstanceType condition allows the same instance type patterns.
ENV_ALLOWED_INSTANCE_TYPES: Final = "PETAL_ALLOWED_INSTANCE_TYPES"  # comma-separated patterns
ENV_MAX_VOLUME_GB: Final = "PETAL_MAX_VOLUME_GB"
ENV_MAX_VOLUME_IOPS: Final = "PETAL_MAX_VOLUME_IOPS"
ENV_MAX_BUILD_HOURS: Final = "PETAL_MAX_BUILD_HOURS"

# DynamoDB single table. Items: BUILD#<id>/BUILD, LOCK#<fingerprint>#<os>#<arch>/LOCK,
# TOKEN#<command id>/TOKEN, INTAKE#<bucket>/<key>#<version>/INTAKE.
TABLE_PARTITION_KEY: Final = "pk"
TABLE_SORT_KEY: Final = "sk"
TABLE_TTL_ATTRIBUTE: Final = "ttl"
INDEX_BY_FINGERPRINT: Final = "by-fingerprint"  # gsi1pk = FP#<fingerprint>, gsi1sk = started_at
INDEX_BY_RECENCY: Final = "by-recency"  # gsi2pk = BUILDS, gsi2sk = started_at
INDEX_KEYS: Final[dict[str, tuple[str, str]]] = {
    INDEX_BY_FINGERPRINT: ("gsi1pk", "gsi1sk"),
    INDEX_BY_RECENCY: ("gsi2pk", "gsi2sk"),
}

# CloudFormation outputs the CLI discovers by stack name.
OUTPUT_STATE_MACHINE_ARN: Final = "StateMachineArn"
OUTPUT_SEED_BUCKET: Final = "SeedBucketName"
OUTPUT_TABLE: Final = "BuildsTableName"
OUTPUT_RESOLVER: Final = "ResolverFunctionName"
OUTPUT_BUILD_LOG_GROUP: Final = "BuildLogGroupName"
OUTPUT_DOCUMENT: Final = "BootstrapDocumentName"
OUTPUT_NODE_SETUP_URI: Final = "NodeSetupScriptUri"
# What an asynchronously invoked function could not process waits in a dead-letter
# queue of its own (`petal admin redrive` hands it back to that function): per handler
# module, the queue's URL, the alarm on its depth and the function's name. The logs
# subscription (log_heartbeat) has none: see docs/ARCHITECTURE.md, "Failure and cleanup".
OUTPUT_DEAD_LETTER_QUEUES: Final[dict[str, str]] = {
    CALLBACK_FUNCTION: "CallbackDeadLetterQueueUrl",
    INTAKE_FUNCTION: "IntakeDeadLetterQueueUrl",
    JANITOR_FUNCTION: "JanitorDeadLetterQueueUrl",
}
OUTPUT_DEAD_LETTER_ALARMS: Final[dict[str, str]] = {
    CALLBACK_FUNCTION: "CallbackDeadLetterAlarmName",
    INTAKE_FUNCTION: "IntakeDeadLetterAlarmName",
    JANITOR_FUNCTION: "JanitorDeadLetterAlarmName",
}
OUTPUT_DEAD_LETTER_FUNCTIONS: Final[dict[str, str]] = {
    CALLBACK_FUNCTION: "CallbackFunctionName",
    INTAKE_FUNCTION: "IntakeFunctionName",
    JANITOR_FUNCTION: "JanitorFunctionName",
}

# Where the software volume is mounted on the builder and on every cluster node.
# Spack writes absolute paths (RPATHs), so this can never differ between the two.
MOUNT_DIR: Final = "/shared"
SPACK_ROOT: Final = "/shared/spack"
PETAL_DIR: Final = "/shared/petal"  # profile.sh, manifest.json

# Progress and step markers the bootstrap prints; the log subscription, the CLI and
# local mode parse them.
PROGRESS_MARKER: Final = "PETAL-PROGRESS"  # PETAL-PROGRESS <k>/<n> <spec>
STEP_MARKER: Final = "PETAL-STEP"  # PETAL-STEP <name>
HEARTBEAT_MARKER: Final = "PETAL-HEARTBEAT"  # PETAL-HEARTBEAT <unix time>
FAILURE_MARKER: Final = "PETAL-FAILED"  # PETAL-FAILED <step>: <reason>
# On failure, before PETAL-FAILED: the bootstrap's own last lines, one per marker.
TAIL_MARKER: Final = "PETAL-TAIL"  # PETAL-TAIL <a line it printed>
# Every marker line ends in " PETAL-MAC=<64 hex>", its HMAC-SHA256 under the build's log
# key, which the bootstrap receives as the document parameter LogKey; petal believes no
# marker without it (petal.build.log_markers).
MAC_FIELD: Final = "PETAL-MAC"
PARAM_LOG_KEY: Final = "LogKey"
