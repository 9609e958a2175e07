"""Generated ParallelCluster configs: every example seed and every os/arch variant loads
in ParallelCluster's own schema; what would break the software is refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from petal.cluster.config import config_header, generate_config, render_config
from petal.cluster.overrides import overrides_from_mapping, parse_queue
from petal.cluster.settings import (
    ClusterOverrides,
    ClusterSettings,
    ConfigError,
    check_cluster_name,
    cluster_settings,
)
from petal.deployment_contract import MOUNT_DIR
from petal.platforms import ARCHITECTURES, OPERATING_SYSTEMS
from petal.seed.loading import load_seed
from petal.seed.model import Queue, Seed

REPO = Path(__file__).resolve().parents[2]
SEEDS = sorted(REPO.glob("seeds/**/*.yaml"))
SUBNET = "subnet-0123456789abcdef0"
NODE_SETUP = "s3://petal-seeds-123456789012/node-setup/petal-node-setup.sh"
SNAPSHOT = "snap-0123456789abcdef0"
FP = "sha256:" + "ab" * 32
# aws-parallelcluster's schema module uses a marshmallow argument marshmallow deprecates.
pytestmark = pytest.mark.filterwarnings("ignore:The 'default' argument to fields:Warning")


@pytest.fixture(autouse=True)
def region(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")


def load_in_parallelcluster(config: dict[str, Any]) -> Any:
    from pcluster.schemas.cluster_schema import ClusterSchema

    return ClusterSchema(cluster_name="petal-test").load(config)


def settings(seed: Seed | None = None, **overrides: Any) -> ClusterSettings:
    values: dict[str, Any] = {"subnet_id": SUBNET, "node_setup_uri": NODE_SETUP}
    values.update(overrides)
    return cluster_settings(seed, ClusterOverrides(**values), default_region="us-east-1")


def bio() -> Seed:
    return load_seed(REPO / "seeds/bioinformatics.yaml")


def test_there_are_example_seeds() -> None:
    assert any(p.name == "bioinformatics.yaml" for p in SEEDS)


@pytest.mark.parametrize("path", SEEDS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_example_seed_gives_a_config_parallelcluster_loads(path: Path) -> None:
    seed = load_seed(path)
    config = generate_config(
        settings(seed), snapshot_id=SNAPSHOT, snapshot_size_gb=seed.volume.size_gb, fingerprint=FP
    )
    loaded = load_in_parallelcluster(config)
    assert type(loaded).__name__ == "SlurmClusterConfig"
    # And the YAML written to disk says the same.
    assert yaml.safe_load(render_config(config, ["header"])) == config


ROCKY_AMI = "ami-0123456789abcdef0"


@pytest.mark.parametrize("os_name", sorted(OPERATING_SYSTEMS))
@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_every_os_and_architecture_loads(os_name: str, arch: str) -> None:
    # rocky8/rocky9 have no official AMI: their snapshots carry the image they were
    # built on, which ParallelCluster needs as CustomAmi.
    image = ROCKY_AMI if os_name.startswith("rocky") else None
    config = generate_config(
        settings(bio(), os=os_name, architecture=arch),
        snapshot_id=SNAPSHOT,
        snapshot_size_gb=500,
        builder_image=image,
    )
    assert config["Image"] == {"Os": os_name, **({"CustomAmi": image} if image else {})}
    load_in_parallelcluster(config)


@pytest.mark.parametrize("os_name", ["rocky8", "rocky9"])
def test_rocky_without_an_image_is_refused_naming_build_image(os_name: str) -> None:
    with pytest.raises(ConfigError) as raised:
        generate_config(settings(bio(), os=os_name), snapshot_id=SNAPSHOT, snapshot_size_gb=500)
    assert raised.value.field == "build.image"
    assert "Image.CustomAmi" in str(raised.value)
    assert "petal:builder-image" in str(raised.value)


def rocky_seed(image: str = ROCKY_AMI) -> Seed:
    return load_seed(REPO / "seeds/bioinformatics.yaml", {"os": "rocky9", "build.image": image})


def test_a_rocky_seed_writes_its_build_image_as_custom_ami() -> None:
    seed = rocky_seed()
    # The seed's own image wins over a snapshot's tag (a build with --builder-ami).
    config = generate_config(
        settings(seed),
        snapshot_id=SNAPSHOT,
        snapshot_size_gb=500,
        builder_image="ami-0fedcba9876543210",
    )
    assert config["Image"] == {"Os": "rocky9", "CustomAmi": ROCKY_AMI}
    load_in_parallelcluster(config)


def test_the_seeds_image_is_not_used_for_another_variant() -> None:
    config = generate_config(
        settings(rocky_seed(), os="alinux2023"), snapshot_id=SNAPSHOT, snapshot_size_gb=500
    )
    assert config["Image"] == {"Os": "alinux2023"}
    with pytest.raises(ConfigError, match=r"build\.image"):
        generate_config(
            settings(rocky_seed(), architecture="arm64"), snapshot_id=SNAPSHOT, snapshot_size_gb=1
        )


def test_registry_os_names_become_parallelcluster_names() -> None:
    config = generate_config(settings(bio(), os="al2023"), snapshot_id=SNAPSHOT, snapshot_size_gb=1)
    assert config["Image"]["Os"] == "alinux2023"


def test_the_shared_storage_entry() -> None:
    config = generate_config(settings(bio()), snapshot_id=SNAPSHOT, snapshot_size_gb=500)
    (storage,) = config["SharedStorage"]
    assert storage == {
        "Name": "software",
        "StorageType": "Ebs",
        "MountDir": MOUNT_DIR,
        "EbsSettings": {
            "VolumeType": "gp3",
            "SnapshotId": SNAPSHOT,
            "Size": 500,
            "Iops": 3000,
            "Throughput": 125,
            "Encrypted": True,
            "DeletionPolicy": "Delete",
        },
    }


@pytest.mark.parametrize(
    ("requested", "snapshot", "written"), [(500, 500, 500), (800, 500, 800), (100, 500, 500)]
)
def test_size_is_always_written_as_the_larger_of_request_and_snapshot(
    requested: int, snapshot: int, written: int
) -> None:
    config = generate_config(
        settings(bio(), size_gb=requested), snapshot_id=SNAPSHOT, snapshot_size_gb=snapshot
    )
    assert config["SharedStorage"][0]["EbsSettings"]["Size"] == written


def test_a_size_smaller_than_the_snapshot_is_refused() -> None:
    with pytest.raises(ConfigError) as caught:
        generate_config(settings(bio()), snapshot_id=SNAPSHOT, snapshot_size_gb=500, size_gb=400)
    assert caught.value.field == "volume.size_gb"
    assert "400 GiB is smaller than the 500 GiB snapshot" in str(caught.value)


def test_a_mount_dir_other_than_the_builds_is_refused() -> None:
    moved = ClusterSettings(**{**settings(bio()).__dict__, "mount_dir": "/software"})
    with pytest.raises(ConfigError, match="/software differs from /shared"):
        generate_config(moved, snapshot_id=SNAPSHOT, snapshot_size_gb=500)


def test_an_unknown_os_is_refused() -> None:
    with pytest.raises(ConfigError) as caught:
        settings(bio(), os="centos7")
    assert (caught.value.field, caught.value.flag) == ("os", "--os")
    bad = ClusterSettings(**{**settings(bio()).__dict__, "os": "al2"})
    with pytest.raises(ConfigError, match="unknown operating system 'al2'"):
        generate_config(bad, snapshot_id=SNAPSHOT, snapshot_size_gb=500)


def test_a_missing_head_node_subnet_names_the_seed_field_and_the_flag() -> None:
    with pytest.raises(ConfigError) as caught:
        cluster_settings(bio(), ClusterOverrides(node_setup_uri=NODE_SETUP))
    assert caught.value.field == "cluster.head_node.subnet_id"
    assert caught.value.flag == "--subnet"
    assert "--subnet subnet-" in str(caught.value)


def test_a_missing_region_and_node_setup_uri_name_their_flags() -> None:
    seed = load_seed(REPO / "seeds/bioinformatics.yaml")
    no_region = Seed(
        **{
            **seed.__dict__,
            "cluster": seed.cluster.__class__(
                None, None, seed.cluster.head_node, seed.cluster.queues
            ),
        }
    )
    with pytest.raises(ConfigError) as caught:
        cluster_settings(no_region, ClusterOverrides(subnet_id=SUBNET, node_setup_uri=NODE_SETUP))
    assert (caught.value.field, caught.value.flag) == ("cluster.region", "--region")
    with pytest.raises(ConfigError) as caught:
        cluster_settings(seed, ClusterOverrides(subnet_id=SUBNET))
    assert caught.value.flag == "--node-setup-uri"
    assert "PETAL_NODE_SETUP_URI" in str(caught.value)


def test_node_setup_runs_on_every_node_with_read_access_to_its_bucket() -> None:
    seed = load_seed(REPO / "seeds/bioinformatics.yaml")
    queues = (
        Queue("a", "c6a.large", 0, 2, ()),
        Queue("b", "c6i.large", 1, 4, ("subnet-0a1b2c3d",)),
    )
    config = generate_config(
        settings(seed, queues=queues), snapshot_id=SNAPSHOT, snapshot_size_gb=1
    )
    action = {"OnNodeConfigured": {"Script": NODE_SETUP}}
    access = [
        {"BucketName": "petal-seeds-123456789012", "KeyName": "node-setup/petal-node-setup.sh"}
    ]
    assert config["HeadNode"]["CustomActions"] == action
    assert config["HeadNode"]["Iam"] == {"S3Access": access}
    slurm = config["Scheduling"]["SlurmQueues"]
    assert [q["CustomActions"] for q in slurm] == [action, action]
    assert [q["Iam"] for q in slurm] == [{"S3Access": access}] * 2
    assert [q["Networking"]["SubnetIds"] for q in slurm] == [[SUBNET], ["subnet-0a1b2c3d"]]
    assert slurm[1]["ComputeResources"] == [
        {"Name": "c6i-large", "InstanceType": "c6i.large", "MinCount": 1, "MaxCount": 4}
    ]
    load_in_parallelcluster(config)


def test_an_https_node_setup_script_needs_no_s3_access() -> None:
    config = generate_config(
        settings(bio(), node_setup_uri="https://example.org/petal-node-setup.sh"),
        snapshot_id=SNAPSHOT,
        snapshot_size_gb=500,
    )
    assert "Iam" not in config["HeadNode"]
    load_in_parallelcluster(config)


@pytest.mark.parametrize("uri", ["s3://bucket", "s3://Bad_Bucket/k.sh", "http://x/y.sh", "/x.sh"])
def test_bad_node_setup_uris(uri: str) -> None:
    with pytest.raises(ConfigError, match="node setup script"):
        settings(bio(), node_setup_uri=uri)


def test_key_name_deletion_policy_and_head_node_type() -> None:
    config = generate_config(
        settings(
            bio(), key_name="my-key", deletion_policy="Retain", head_node_instance_type="c6i.large"
        ),
        snapshot_id=SNAPSHOT,
        snapshot_size_gb=500,
    )
    assert config["HeadNode"]["Ssh"] == {"KeyName": "my-key"}
    assert config["HeadNode"]["InstanceType"] == "c6i.large"
    assert config["SharedStorage"][0]["EbsSettings"]["DeletionPolicy"] == "Retain"
    with pytest.raises(ConfigError, match="'Keep' is not one of Delete, Retain, Snapshot"):
        settings(bio(), deletion_policy="Keep")


def test_kms_key_is_passed_on() -> None:
    seed = load_seed(REPO / "seeds/bioinformatics.yaml")
    key = "arn:aws:kms:us-east-1:123456789012:key/0123abcd-0123-4567-89ab-0123456789ab"
    seed = Seed(
        **{**seed.__dict__, "volume": seed.volume.__class__(500, "gp3", 3000, 125, True, key)}
    )
    config = generate_config(settings(seed), snapshot_id=SNAPSHOT, snapshot_size_gb=500)
    assert config["SharedStorage"][0]["EbsSettings"]["KmsKeyId"] == key
    load_in_parallelcluster(config)


def test_another_architecture_swaps_in_matching_instance_types() -> None:
    result = settings(bio(), architecture="arm64")
    assert result.head_node_instance_type == "c7g.xlarge"
    assert {q.instance_type for q in result.queues} == {"c7g.8xlarge"}
    assert "using c7g.xlarge" in result.warnings[0]


def test_mismatched_instance_architecture_is_refused() -> None:
    with pytest.raises(ConfigError) as caught:
        settings(bio(), head_node_instance_type="c7g.large")
    assert caught.value.flag == "--head-node-instance-type"
    assert "c7g.large is arm64 but the cluster is x86_64" in str(caught.value)


def test_fingerprint_only_uses_the_seed_defaults() -> None:
    result = settings(None, architecture="arm64", size_gb=50)
    config = generate_config(result, snapshot_id=SNAPSHOT, snapshot_size_gb=20)
    assert config["HeadNode"]["InstanceType"] == "c7g.xlarge"
    assert config["Scheduling"]["SlurmQueues"][0]["Name"] == "compute"
    assert config["SharedStorage"][0]["EbsSettings"]["Size"] == 50
    load_in_parallelcluster(config)


def test_iops_that_need_a_bigger_volume_are_refused() -> None:
    with pytest.raises(ConfigError, match="3000 IOPS needs at least 6 GiB"):
        generate_config(settings(bio(), size_gb=2), snapshot_id=SNAPSHOT, snapshot_size_gb=1)


def test_rendered_yaml_has_a_header_and_no_aliases() -> None:
    config = generate_config(settings(bio()), snapshot_id=SNAPSHOT, snapshot_size_gb=500)
    header = config_header(
        cluster_name="c1",
        seed_name="bioinformatics",
        fingerprint=FP,
        snapshot_id=SNAPSHOT,
        source="own account",
        owner="123456789012",
    )
    text = render_config(config, header)
    assert text.startswith("# Generated by petal")
    assert "&id" not in text and "*id" not in text
    load_in_parallelcluster(yaml.safe_load(text))


def test_cluster_tags_stay_out_of_the_builds_iam_scope() -> None:
    config = generate_config(
        settings(bio()), snapshot_id=SNAPSHOT, snapshot_size_gb=500, fingerprint=FP
    )
    keys = {t["Key"] for t in config["Tags"]}
    assert "petal:managed" not in keys and "petal:build-id" not in keys


@pytest.mark.parametrize(
    ("text", "queue"),
    [
        ("gpu:g5.xlarge", Queue("gpu", "g5.xlarge", 0, 10, ())),
        ("cpu:c6a.large:2", Queue("cpu", "c6a.large", 2, 10, ())),
        ("cpu:c6a.large:0:64", Queue("cpu", "c6a.large", 0, 64, ())),
    ],
)
def test_queue_option(text: str, queue: Queue) -> None:
    assert parse_queue(text) == queue


@pytest.mark.parametrize("text", ["cpu", "cpu:c6a.large:x", "a:b:1:2:3", ":c6a.large"])
def test_bad_queue_option(text: str) -> None:
    with pytest.raises(ConfigError, match="NAME:INSTANCE_TYPE"):
        parse_queue(text)


@pytest.mark.parametrize(
    ("queue", "message"),
    [
        (Queue("default", "c6a.large", 0, 1, ()), "not 'default'"),
        (Queue("Upper", "c6a.large", 0, 1, ()), "lowercase letter first"),
        (Queue("q", "c6a.large", 3, 2, ()), "min_count 3 / max_count 2"),
        (Queue("q", "c6a.large", 0, 1, ("subnet-x",)), "'subnet-x' is not a subnet id"),
        (Queue("q", "large", 0, 1, ()), "'large' is not an EC2 instance type"),
    ],
)
def test_bad_queues(queue: Queue, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        settings(bio(), queues=(queue,))


def test_cluster_names() -> None:
    assert check_cluster_name("research-1") == "research-1"
    for bad in ("1cluster", "my_cluster", "x" * 61, ""):
        with pytest.raises(ConfigError, match=r"--name|ParallelCluster cluster name"):
            check_cluster_name(bad)


def test_overrides_from_a_request() -> None:
    overrides = overrides_from_mapping(
        {
            "subnet_id": SUBNET,
            "size_gb": 900,
            "queues": [{"name": "big", "instance_type": "c6a.48xlarge", "max_count": 2}],
            "compute_subnet_ids": ["subnet-0a1b2c3d"],
        }
    )
    assert overrides.size_gb == 900
    assert overrides.queues == (Queue("big", "c6a.48xlarge", 0, 2, ()),)
    assert overrides.compute_subnet_ids == ("subnet-0a1b2c3d",)


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ([], "overrides"),
        ({"size_gb": "9"}, "overrides.size_gb"),
        ({"size_gb": True}, "overrides.size_gb"),
        ({"colour": "red"}, "overrides.colour"),
        ({"queues": "cpu"}, "overrides.queues[0]"),
        ({"queues": [{"name": "q"}]}, "overrides.queues[0].instance_type"),
        (
            {"queues": [{"name": "q", "instance_type": "c6a.large", "max_count": "2"}]},
            "overrides.queues[0].max_count",
        ),
        ({"compute_subnet_ids": "subnet-0a1b2c3d"}, "overrides.compute_subnet_ids"),
    ],
)
def test_bad_request_overrides_name_the_field(data: Any, field: str) -> None:
    with pytest.raises(ConfigError) as caught:
        overrides_from_mapping(data)
    assert caught.value.field == field
