"""Build step Launch: the builder instance and the software volume: empty, or created
from the parent snapshot of an incremental build. Either volume carries the same tags,
so cleanup, the janitor and cancel find and delete it alike."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from petal.aws import ec2_builder
from petal.build.table import BuildTable


def launch(
    event: Mapping[str, Any],
    *,
    ec2: Any,
    table: BuildTable,
    subnet_ids: tuple[str, ...],
    security_group_id: str,
    instance_profile_arn: str,
) -> dict[str, Any]:
    build = event["build"]
    build_id = str(build["build_id"])
    image = ec2_builder.BuilderImage(
        image_id=build["image_id"],
        name=build["image_name"],
        creation_date="",
        root_device_name=build["root_device_name"],
        root_volume_gb=int(build["root_volume_gb"]),
    )
    launched = ec2_builder.run_builder(
        ec2,
        image=image,
        instance_type=build["instance_type"],
        subnet_ids=subnet_ids,
        security_group_id=security_group_id,
        instance_profile_arn=instance_profile_arn,
        tags=ec2_builder.builder_tags(build_id, build["seed_name"]),
        client_token=f"{build_id}-builder",
    )
    # Recorded before anything else can fail, so cleanup and the janitor find it.
    table.update_build(
        build_id,
        {"step": "launch", "instance_id": launched.instance_id},
        execution_arn=build["execution_arn"],
    )
    volume = build["volume"]
    volume_id = ec2_builder.create_software_volume(
        ec2,
        availability_zone=launched.availability_zone,
        size_gb=int(volume["size_gb"]),
        iops=int(volume["iops"]),
        throughput=int(volume["throughput"]),
        encrypted=bool(volume["encrypted"]),
        kms_key_id=volume.get("kms_key_id"),
        tags=ec2_builder.volume_tags(build_id, build["seed_name"]),
        client_token=f"{build_id}-volume",
        snapshot_id=build.get("parent_snapshot_id"),
    )
    table.update_build(
        build_id, {"step": "ready", "volume_id": volume_id}, execution_arn=build["execution_arn"]
    )
    return {
        "instance_id": launched.instance_id,
        "volume_id": volume_id,
        "availability_zone": launched.availability_zone,
        "subnet_id": launched.subnet_id,
    }
