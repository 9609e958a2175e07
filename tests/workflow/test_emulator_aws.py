"""Calls moto lacks that petal makes: the emulator answers them as AWS does."""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.exceptions import ClientError

from petal.local.emulator import LocalAws
from petal.sharing.public import get_block_public_access_state


def test_snapshot_block_public_access_reads_as_in_an_account_that_never_set_it(
    aws: LocalAws,
) -> None:
    ec2 = aws.client("ec2")
    assert ec2.get_snapshot_block_public_access_state()["State"] == "unblocked"
    assert get_block_public_access_state(ec2) == "unblocked"


def test_an_encrypted_build_snapshot_names_the_aws_managed_key_that_forbids_sharing(
    aws: LocalAws,
) -> None:
    # A volume encrypted by default: its snapshot carries the volume's key (moto used to
    # drop it), and that key is the AWS managed aws/ebs key, which cannot be shared.
    ec2 = aws.client("ec2")
    volume = ec2.create_volume(Size=1, AvailabilityZone="us-east-1a", Encrypted=True)
    snapshot = ec2.create_snapshot(VolumeId=volume["VolumeId"])
    [described] = ec2.describe_snapshots(SnapshotIds=[snapshot["SnapshotId"]])["Snapshots"]
    assert described["Encrypted"] is True
    assert described["KmsKeyId"] == volume["KmsKeyId"]
    key = aws.client("kms").describe_key(KeyId="alias/aws/ebs")["KeyMetadata"]
    assert (described["KmsKeyId"], key["KeyManager"]) == (key["Arn"], "AWS")

    same_region = ec2.copy_snapshot(
        SourceSnapshotId=snapshot["SnapshotId"], SourceRegion="us-east-1"
    )
    west = boto3.client("ec2", region_name="us-west-2")
    other_region = west.copy_snapshot(
        SourceSnapshotId=snapshot["SnapshotId"], SourceRegion="us-east-1"
    )
    [near] = ec2.describe_snapshots(SnapshotIds=[same_region["SnapshotId"]])["Snapshots"]
    [far] = west.describe_snapshots(SnapshotIds=[other_region["SnapshotId"]])["Snapshots"]
    assert near["KmsKeyId"] == key["Arn"]
    west_key = boto3.client("kms", region_name="us-west-2").describe_key(KeyId="alias/aws/ebs")
    assert far["KmsKeyId"] == west_key["KeyMetadata"]["Arn"]


def test_a_registered_image_keeps_its_architecture(aws: LocalAws) -> None:
    ec2 = aws.client("ec2")
    arm = ec2.register_image(Name="mine-arm", Architecture="arm64", RootDeviceName="/dev/xvda")
    plain = ec2.register_image(Name="mine-plain", RootDeviceName="/dev/xvda")
    images = {
        image["ImageId"]: image["Architecture"]
        for image in ec2.describe_images(ImageIds=[arm["ImageId"], plain["ImageId"]])["Images"]
    }
    # AWS's default for an EBS-backed RegisterImage without Architecture is i386.
    assert images == {arm["ImageId"]: "arm64", plain["ImageId"]: "i386"}


def test_a_command_runs_on_the_instances_it_names_only(aws: LocalAws) -> None:
    ec2, ssm = aws.client("ec2"), aws.client("ssm")
    image = ec2.register_image(Name="any", Architecture="x86_64", RootDeviceName="/dev/xvda")
    named, other = (
        i["InstanceId"]
        for i in ec2.run_instances(ImageId=image["ImageId"], MinCount=2, MaxCount=2)["Instances"]
    )
    command = ssm.send_command(
        InstanceIds=[named], DocumentName="AWS-RunShellScript", Parameters={"commands": ["true"]}
    )["Command"]
    assert command["InstanceIds"] == [named]
    ssm.get_command_invocation(CommandId=command["CommandId"], InstanceId=named)
    with pytest.raises(ClientError, match="InvocationDoesNotExist"):
        ssm.get_command_invocation(CommandId=command["CommandId"], InstanceId=other)


def test_a_command_must_fit_its_documents_parameters(aws: LocalAws) -> None:
    """As in AWS: undeclared, missing required and out-of-pattern parameters are refused."""
    ec2, ssm = aws.client("ec2"), aws.client("ssm")
    image = ec2.register_image(Name="any", Architecture="x86_64", RootDeviceName="/dev/xvda")
    (instance,) = ec2.run_instances(ImageId=image["ImageId"], MinCount=1, MaxCount=1)["Instances"]
    content = {
        "schemaVersion": "2.2",
        "parameters": {
            "Key": {"type": "String", "allowedPattern": "^[0-9a-f]{4}$"},
            "Mode": {"type": "String", "default": "a", "allowedValues": ["a", "b"]},
        },
        "mainSteps": [
            {
                "action": "aws:runShellScript",
                "name": "run",
                "inputs": {"runCommand": ["echo '{{ Key }}' '{{ Mode }}'"]},
            }
        ],
    }
    ssm.create_document(Name="strict", Content=json.dumps(content), DocumentType="Command")

    def send(**parameters: str) -> None:
        ssm.send_command(
            InstanceIds=[instance["InstanceId"]],
            DocumentName="strict",
            Parameters={name: [value] for name, value in parameters.items()},
        )

    send(Key="beef")
    send(Key="beef", Mode="b")
    for parameters, problem in [
        ({}, "Key is required"),
        ({"Key": "BEEF"}, "Key does not match its allowedPattern"),
        ({"Key": "beef", "Mode": "c"}, "Mode is not one of its allowedValues"),
        ({"Key": "beef", "Other": "x"}, "Other is not a parameter of the document"),
    ]:
        with pytest.raises(ClientError, match="InvalidParameters") as raised:
            send(**parameters)
        assert problem in str(raised.value)
