"""The build request (execution input) and how it becomes a seed."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from petal.build.request import (
    BuildRequestError,
    check_build_id,
    new_build_id,
    parse_build_request,
    resolve_seed,
)
from petal.seed.loading import load_seed
from petal.seed.model import SeedError

REPO_ROOT = Path(__file__).resolve().parents[2]
SEED_FILE = REPO_ROOT / "seeds" / "testing" / "workload-basic.yaml"


def no_s3(bucket: str, key: str, version: str | None) -> bytes:
    raise AssertionError("no S3 read expected")


def test_an_inline_request_parses() -> None:
    request = parse_build_request({"seed": {"name": "x"}, "force": True, "os": "al2023"})
    assert request.force and request.os == "alinux2023"  # the registry name is accepted
    assert request.to_document() == {"seed": {"name": "x"}, "force": True, "os": "alinux2023"}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "must be a JSON object"),
        ({}, "neither was given"),
        ({"seed": {}, "seed_uri": "s3://bucket/seeds/a.yaml"}, "both were given"),
        ({"seed_uri": "https://example.com/a.yaml"}, "seed_uri"),
        ({"seed_uri": "s3://bucket/seeds/a.txt"}, ".yaml or .yml"),
        ({"seed": {}, "force": "yes"}, "force"),
        ({"seed": {}, "build_id": "a" * 65}, "at most 64 characters"),
        ({"seed": {}, "architecture": "aarch64"}, "x86_64 or arm64"),
        ({"seed": {}, "os": "centos7"}, "use one of alinux2023"),
        ({"seed": {}, "extra": 1}, "unknown field(s) extra"),
    ],
)
def test_bad_requests_name_the_field_and_fix(data: object, message: str) -> None:
    with pytest.raises(BuildRequestError, match=None) as raised:
        parse_build_request(data)
    assert message in str(raised.value)


def test_resolve_an_inline_seed_with_overrides() -> None:
    document = load_seed(SEED_FILE).to_document()
    seed = resolve_seed(parse_build_request({"seed": document, "os": "ubuntu2404"}), no_s3)
    assert seed.os == "ubuntu2404"


ROCKY_IMAGE = "ami-0123456789abcdef0"


@pytest.mark.parametrize("os_name", ["rocky8", "rocky9"])
def test_rocky_without_a_builder_image_is_refused_with_the_fix(os_name: str) -> None:
    document = load_seed(SEED_FILE).to_document()
    with pytest.raises(SeedError) as raised:
        resolve_seed(parse_build_request({"seed": document, "os": os_name}), no_s3)
    message = str(raised.value)
    assert f"os: {os_name} needs build.image" in message
    assert "no official ParallelCluster AMI" in message
    assert "pcluster build-image" in message and "--builder-ami" in message


def test_builder_ami_overrides_the_seeds_image() -> None:
    document = {**load_seed(SEED_FILE).to_document(), "os": "rocky9"}
    document["build"] = {**document["build"], "image": "ami-00000000000000001"}
    request = parse_build_request({"seed": document, "builder_ami": ROCKY_IMAGE})
    assert request.to_document()["builder_ami"] == ROCKY_IMAGE
    seed = resolve_seed(request, no_s3)
    assert (seed.os, seed.build.image) == ("rocky9", ROCKY_IMAGE)


def test_a_rocky_seed_from_s3_builds_with_a_builder_ami() -> None:
    text = SEED_FILE.read_bytes() + b"os: rocky9\n"
    request = parse_build_request(
        {"seed_uri": "s3://bucket/seeds/rocky.yaml", "builder_ami": ROCKY_IMAGE}
    )
    seed = resolve_seed(request, lambda bucket, key, version: text)
    assert (seed.os, seed.build.image) == ("rocky9", ROCKY_IMAGE)
    without = parse_build_request({"seed_uri": "s3://bucket/seeds/rocky.yaml"})
    with pytest.raises(SeedError, match=r"os: rocky9 needs build\.image"):
        resolve_seed(without, lambda bucket, key, version: text)


def test_builder_ami_must_be_an_image_id() -> None:
    with pytest.raises(BuildRequestError, match="builder_ami"):
        parse_build_request({"seed": {}, "builder_ami": "rocky9"})


def test_an_override_that_breaks_the_seed_says_where_it_came_from() -> None:
    document = load_seed(SEED_FILE).to_document()
    with pytest.raises(SeedError) as raised:
        resolve_seed(parse_build_request({"seed": document, "architecture": "arm64"}), no_s3)
    assert "architecture=arm64 from the build request" in str(raised.value)
    assert "build.instance_type" in str(raised.value)


def test_a_seed_from_s3_keeps_its_line_numbers() -> None:
    def read(bucket: str, key: str, version: str | None) -> bytes:
        assert (bucket, key, version) == ("bucket", "seeds/bad.yaml", "v7")
        return b"name: ok-name\ndescription: d\nsoftware:\n  spack_version: latest\n"

    request = parse_build_request(
        {"seed_uri": "s3://bucket/seeds/bad.yaml", "seed_version_id": "v7"}
    )
    with pytest.raises(SeedError) as raised:
        resolve_seed(request, read)
    assert "s3://bucket/seeds/bad.yaml?versionId=v7:4" in str(raised.value)


def test_build_ids() -> None:
    built = new_build_id("bioinformatics", datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC), "abc123")
    assert built == "bioinformatics-20250102030405-abc123"
    assert check_build_id(built) == built
    long = new_build_id("x" * 63, datetime(2025, 1, 2, tzinfo=UTC))
    assert len(long) <= 64 and check_build_id(long)
    with pytest.raises(BuildRequestError, match="execution name"):
        check_build_id("has_underscore", field="execution name")
