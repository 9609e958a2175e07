"""Where the deployed pipeline is: the CloudFormation outputs of petal's stack.

The CLI finds the state machine, table, bucket and log group by stack name and region
(flags, then PETAL_STACK_NAME / PETAL_REGION, then ~/.petal/config.yaml, then for the
region AWS_REGION / AWS_DEFAULT_REGION / the AWS profile), so a user never copies ARNs
around.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, NoRegionError

from petal.aws.session import REGION_SOURCES, new_session
from petal.deployment_contract import (
    OUTPUT_BUILD_LOG_GROUP,
    OUTPUT_DEAD_LETTER_ALARMS,
    OUTPUT_DEAD_LETTER_FUNCTIONS,
    OUTPUT_DEAD_LETTER_QUEUES,
    OUTPUT_NODE_SETUP_URI,
    OUTPUT_SEED_BUCKET,
    OUTPUT_STATE_MACHINE_ARN,
    OUTPUT_TABLE,
)
from petal.errors import PetalError
from petal.user_config import UserConfigError, load_user_config


class DeploymentNotFound(PetalError, RuntimeError):
    """The stack or one of its outputs is missing; the message says how to fix it."""


@dataclass(frozen=True)
class DeadLetterQueue:
    """What a function could not process waits here; a redrive hands it back to it."""

    name: str  # the handler module: callback, intake, janitor
    queue_url: str
    function_name: str
    alarm_name: str | None = None


@dataclass(frozen=True)
class Deployment:
    stack_name: str
    region: str
    state_machine_arn: str
    table_name: str
    seed_bucket: str
    build_log_group: str
    # None for a stack deployed before petal published the node-setup script's URI.
    node_setup_uri: str | None = None
    # Empty for a stack deployed before petal had dead-letter queues.
    dead_letter_queues: tuple[DeadLetterQueue, ...] = ()


_OUTPUTS = {
    OUTPUT_STATE_MACHINE_ARN: "state_machine_arn",
    OUTPUT_TABLE: "table_name",
    OUTPUT_SEED_BUCKET: "seed_bucket",
    OUTPUT_BUILD_LOG_GROUP: "build_log_group",
}


def discover_deployment(cloudformation: Any, stack_name: str, region: str) -> Deployment:
    try:
        stacks = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    except ClientError as error:
        if "does not exist" in str(error):
            raise DeploymentNotFound(
                f"no stack named {stack_name!r} in {region}: deploy petal with `cdk deploy` "
                "(README, 'Deploy to AWS'), or name yours with --stack-name / --region, "
                "or try it without AWS with `petal --local ...`"
            ) from None
        raise DeploymentNotFound(f"cannot read stack {stack_name!r} in {region}: {error}") from None
    except NoRegionError:
        raise DeploymentNotFound(
            f"no AWS region: {REGION_SOURCES}; or try petal without AWS with `petal --local ...`"
        ) from None
    except NoCredentialsError as error:
        raise DeploymentNotFound(
            f"{error}: configure AWS credentials (aws configure), "
            "or try petal without AWS with `petal --local ...`"
        ) from None
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}
    missing = sorted(set(_OUTPUTS) - set(outputs))
    if missing:
        raise DeploymentNotFound(
            f"stack {stack_name!r} in {region} lacks the outputs {', '.join(missing)}: "
            "is it a petal stack? Redeploy it with `cdk deploy`"
        )
    values = {field: outputs[key] for key, field in _OUTPUTS.items()}
    return Deployment(
        stack_name=stack_name,
        region=region,
        node_setup_uri=outputs.get(OUTPUT_NODE_SETUP_URI),
        dead_letter_queues=dead_letter_queues(outputs),
        **values,
    )


def dead_letter_queues(outputs: dict[str, str]) -> tuple[DeadLetterQueue, ...]:
    """The dead-letter queues the stack's outputs name, each with its function."""
    found: list[DeadLetterQueue] = []
    for module, queue_output in OUTPUT_DEAD_LETTER_QUEUES.items():
        url = outputs.get(queue_output)
        function = outputs.get(OUTPUT_DEAD_LETTER_FUNCTIONS[module])
        if url and function:
            found.append(
                DeadLetterQueue(
                    module, url, function, outputs.get(OUTPUT_DEAD_LETTER_ALARMS[module])
                )
            )
    return tuple(found)


def demo_target() -> str:
    """The global flag `make demo` passes: `--local` unless AWS credentials are
    configured and reach a deployed petal stack, then nothing (build there)."""
    try:
        config = load_user_config()
        session = new_session()
        region = config.deployment.region or session.region_name
        if region is None or session.get_credentials() is None:
            return "--local"
        discover_deployment(
            session.client("cloudformation", region_name=region),
            config.deployment.stack_name,
            region,
        )
    except (DeploymentNotFound, UserConfigError, BotoCoreError, ClientError):
        return "--local"
    return ""


if __name__ == "__main__":
    print(demo_target())
