"""Rocky Linux on the emulator: AWS publishes no official ParallelCluster AMI for it, so
a rocky build boots a user-built (pcluster build-image) AMI, which must belong to this
account or to one of petal:builderImageOwners; its snapshot remembers the image, and
the cluster config for it gets Image.CustomAmi."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from petal.cluster.plan import Software, plan_cluster, prepare_plan
from petal.cluster.settings import ClusterOverrides
from petal.deployment_contract import ENV_BUILDER_IMAGE_OWNERS, TAG_BUILD_ID, TAG_BUILDER_IMAGE
from petal.local.deploy import ACCOUNT_ID
from petal.local.emulator import LocalAws
from petal.local.moto_fixes import BACKEND_LOCK
from petal.seed.fingerprint import fingerprint
from petal.seed.loading import parse_seed_mapping
from petal.user_config import config_from_environment
from tests.workflow.conftest import seed_document
from tests.workflow.helpers import assert_nothing_created, petal_snapshots

OTHER_ACCOUNT = "999999999999"
# aws-parallelcluster's schema module uses a marshmallow argument marshmallow deprecates.
pytestmark = pytest.mark.filterwarnings("ignore:The 'default' argument to fields:Warning")


def register_pcluster_image(
    aws: LocalAws,
    *,
    owner: str = ACCOUNT_ID,
    architecture: str = "x86_64",
    state: str = "available",
) -> str:
    """An image as `pcluster build-image` leaves it. moto's RegisterImage takes no
    architecture and only the caller as owner, so it goes into the backend directly."""
    from moto.ec2.models import ec2_backends
    from moto.ec2.models.amis import Ami
    from moto.ec2.utils import random_ami_id

    backend = ec2_backends[ACCOUNT_ID][aws.region]
    ami_id = random_ami_id()
    with BACKEND_LOCK:
        backend.amis[ami_id] = Ami(
            backend,
            ami_id,
            name=f"rocky9-spack-{ami_id}",
            description="AWS ParallelCluster AMI for rocky9 (pcluster build-image)",
            owner_id=owner,
            architecture=architecture,
            state=state,
            virtualization_type="hvm",
            root_device_type="ebs",
            root_device_name="/dev/xvda",
            creation_date=datetime(2025, 6, 1, tzinfo=UTC),
            region_name=f"{aws.region}a",
        )
    return ami_id


def rocky_document(**build: Any) -> dict[str, Any]:
    document = seed_document(os="rocky9")
    document["build"] = {**document["build"], **build}
    return document


def test_the_emulator_has_no_official_rocky_images(aws: LocalAws) -> None:
    names = [
        image["Name"]
        for image in aws.client("ec2").describe_images(Owners=["amazon"])["Images"]
        if image["Name"].startswith("aws-parallelcluster-")
    ]
    assert names and not [n for n in names if "rocky" in n]


def test_a_rocky_build_without_an_image_is_refused_with_the_fix(aws: LocalAws) -> None:
    result = aws.build({"seed": rocky_document(), "build_id": "rocky-none"})

    assert result.status == "FAILED"
    assert result.error == "InvalidBuildRequest"
    assert "os: rocky9 needs build.image" in str(result.cause)
    assert "no official ParallelCluster AMI" in str(result.cause)
    assert "--builder-ami" in str(result.cause)
    assert_nothing_created(aws)


def test_a_rocky_build_boots_the_builder_ami_and_the_cluster_gets_it(aws: LocalAws) -> None:
    image = register_pcluster_image(aws)
    document = rocky_document()

    result = aws.build({"seed": document, "builder_ami": image, "build_id": "rocky-1"})

    assert result.status == "SUCCEEDED", result.cause
    (snapshot,) = petal_snapshots(aws)
    tags = {t["Key"]: t["Value"] for t in snapshot["Tags"]}
    assert tags[TAG_BUILDER_IMAGE] == image
    reservations = aws.client("ec2").describe_instances(
        Filters=[{"Name": f"tag:{TAG_BUILD_ID}", "Values": ["rocky-1"]}]
    )["Reservations"]
    assert [i["ImageId"] for r in reservations for i in r["Instances"]] == [image]

    # A cluster from the fingerprint alone (the resolver's case) finds the image on
    # the snapshot: ParallelCluster accepts rocky9 only with a CustomAmi.
    seed = parse_seed_mapping({**document, "build": {**document["build"], "image": image}})
    overrides = ClusterOverrides(
        region=aws.region,
        os="rocky9",
        subnet_id="subnet-0123456789abcdef0",
        node_setup_uri="s3://bucket/node-setup/petal-node-setup.sh",
    )
    prepared = prepare_plan(Software(fingerprint(seed)), overrides)
    plan = plan_cluster(prepared, ec2=aws.client("ec2"), config=config_from_environment({}))
    assert plan.config.config["Image"] == {"Os": "rocky9", "CustomAmi": image}


def test_an_image_of_an_untrusted_account_names_the_setting(
    aws: LocalAws, monkeypatch: pytest.MonkeyPatch
) -> None:
    image = register_pcluster_image(aws, owner=OTHER_ACCOUNT)

    refused = aws.build({"seed": rocky_document(image=image), "build_id": "rocky-untrusted"})

    assert refused.status == "FAILED"
    assert refused.error == "ConfigurationError"
    assert f"belongs to account {OTHER_ACCOUNT}" in str(refused.cause)
    assert f"petal:builderImageOwners={OTHER_ACCOUNT}" in str(refused.cause)
    assert_nothing_created(aws)

    monkeypatch.setenv(ENV_BUILDER_IMAGE_OWNERS, OTHER_ACCOUNT)
    trusted = aws.build({"seed": rocky_document(image=image), "build_id": "rocky-trusted"})
    assert trusted.status == "SUCCEEDED", trusted.cause


@pytest.mark.parametrize(
    ("image_args", "message"),
    [
        ({"architecture": "arm64"}, "is an arm64 image but the build is for x86_64"),
        ({"state": "pending"}, "is pending, not available"),
    ],
)
def test_an_image_that_does_not_fit_is_refused(
    aws: LocalAws, image_args: dict[str, str], message: str
) -> None:
    image = register_pcluster_image(aws, **image_args)

    result = aws.build({"seed": rocky_document(), "builder_ami": image, "build_id": "rocky-bad"})

    assert result.status == "FAILED"
    assert result.error == "InvalidBuildRequest"
    assert f"builder_ami: {image} {message}" in str(result.cause)
    assert_nothing_created(aws)


def test_an_image_this_account_cannot_see_is_refused(aws: LocalAws) -> None:
    missing = "ami-0123456789abcdef0"

    result = aws.build({"seed": rocky_document(image=missing), "build_id": "rocky-missing"})

    assert result.status == "FAILED"
    assert result.error == "InvalidBuildRequest"
    assert f"build.image: {missing} is not an image this account can see" in str(result.cause)
    assert_nothing_created(aws)
