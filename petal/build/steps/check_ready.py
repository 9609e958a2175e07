"""Build step CheckReady: instance running, SSM agent Online, volume attached."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from petal.aws import ec2_builder, ssm_commands
from petal.errors import BuilderLost, BuilderNotReady


def check_ready(event: Mapping[str, Any], *, ec2: Any, ssm: Any) -> dict[str, Any]:
    resources = event["resources"]
    attempt = int(event.get("attempt", 0)) + 1
    max_attempts = int(event["max_attempts"])
    instance_id, volume_id = resources["instance_id"], resources["volume_id"]

    instance = ec2_builder.describe_instance(ec2, instance_id)
    if instance is None or instance.state in ec2_builder.GONE_STATES:
        state = instance.state if instance else "gone"
        reason = f" ({instance.state_reason})" if instance and instance.state_reason else ""
        raise BuilderLost(
            f"the builder instance {instance_id} is {state}{reason} before the install "
            "began: check the EC2 console for why (e.g. a service quota, or someone "
            "terminated it) and start the build again"
        )
    volume = ec2_builder.describe_volume(ec2, volume_id)
    if volume is None:
        raise BuilderLost(f"the software volume {volume_id} no longer exists: start again")
    if instance_id in volume.attached_to:
        return {"ready": True, "attempt": attempt}

    waiting: list[str] = []
    if instance.state != "running":
        waiting.append(f"instance {instance_id} is {instance.state}")
    elif not ssm_commands.agent_online(ssm, instance_id):
        waiting.append(f"the SSM agent on {instance_id} is not Online")
    if volume.state != "available":
        waiting.append(f"volume {volume_id} is {volume.state}")
    if not waiting:
        ec2_builder.attach_volume(ec2, volume_id, instance_id)
        return {"ready": True, "attempt": attempt}
    if attempt >= max_attempts:
        raise BuilderNotReady(
            f"after {attempt} checks the builder is not ready: {'; '.join(waiting)}. "
            f"Check that subnet {resources.get('subnet_id')} reaches SSM (a NAT gateway or "
            "VPC endpoints for ssm, ssmmessages and ec2messages), that the builder's "
            "instance profile grants AmazonSSMManagedInstanceCore, and that the AMI's SSM "
            "agent starts; then start the build again"
        )
    return {"ready": False, "attempt": attempt, "waiting_for": "; ".join(waiting)}
