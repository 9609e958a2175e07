"""Registry metadata from snapshots: what `petal build publish` refuses, and that what
it writes is valid against the registry's own JSON Schemas (read here from the files,
independently of the code under test)."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from petal.build.manifest import Manifest
from petal.deployment_contract import TAG_FINGERPRINT
from petal.registry.publish import (
    build_publication,
    check_publishable,
    read_existing_metadata,
    write_publication,
)
from petal.sharing.errors import InvalidArgument, Refused
from petal.sharing.kms import KeyInfo
from petal.sharing.snapshots import SharingInfo, SnapshotRecord
from tests.unit.test_sharing import (
    FINGERPRINT,
    OTHER_FINGERPRINT,
    petal_description,
    record,
)

SCHEMAS = Path(__file__).resolve().parents[2] / "petal/schemas"
DAY = date(2025, 1, 15)


def assert_valid(document: Any, kind: str) -> None:
    schema = json.loads((SCHEMAS / f"registry_{kind}.schema.json").read_text())
    jsonschema.Draft202012Validator(schema).validate(document)


def public(snapshot: SnapshotRecord) -> SharingInfo:
    return SharingInfo(snapshot.snapshot_id, (), True, snapshot.encrypted, snapshot.kms_key_id)


def private(snapshot: SnapshotRecord, *accounts: str) -> SharingInfo:
    return SharingInfo(
        snapshot.snapshot_id, tuple(accounts), False, snapshot.encrypted, snapshot.kms_key_id
    )


EAST = record(snapshot_id="snap-0aaaaaaaaaaaaaaaa")
WEST = record(snapshot_id="snap-0bbbbbbbbbbbbbbbb", region="us-west-2", size_gb=250)
UBUNTU = record(
    snapshot_id="snap-0cccccccccccccccc", description=petal_description(os_name="ubuntu2404")
)


def test_public_entry_in_two_regions_is_schema_valid() -> None:
    snapshots = [EAST, WEST, UBUNTU]
    fp, warnings = check_publishable(
        snapshots, {s.snapshot_id: public(s) for s in snapshots}, public=True
    )
    assert fp == FINGERPRINT and warnings == []
    publication = build_publication(
        snapshots,
        name="bioinformatics-v1",
        fingerprint=fp,
        public=True,
        description="Genomics and bioinformatics software stack",
        packages=["gcc@12.3.0", "samtools@1.17"],
        seed_url="https://raw.githubusercontent.com/o/r/main/seeds/bioinformatics-v1.yaml",
        today=DAY,
    )
    metadata = publication.metadata
    assert_valid(metadata, "entry")
    assert_valid({"version": "1.0", "snapshots": [publication.index_entry]}, "index")
    assert list(metadata) == [
        "name",
        "description",
        "fingerprint",
        "seed_url",
        "snapshots",
        "packages",
        "aws_account",
        "public",
        "verified",
        "created",
        "updated",
    ]
    assert metadata["snapshots"][1] == {
        "region": "us-west-2",
        "snapshot_id": "snap-0bbbbbbbbbbbbbbbb",
        "os": "al2023",  # the registry's short name
        "size_gb": 250,
        "description": "bioinformatics stack - al2023, x86_64, 250 GiB",
        "architecture": "x86_64",
    }
    assert metadata["snapshots"][2]["os"] == "ubuntu2404"
    assert (metadata["public"], metadata["verified"]) == (True, False)
    assert metadata["aws_account"] == "123456789012"
    assert (metadata["created"], metadata["updated"]) == ("2025-01-15", "2025-01-15")
    assert publication.index_entry == {
        "name": "bioinformatics-v1",
        "fingerprint": FINGERPRINT,
        "metadata_url": "bioinformatics-v1.json",
        "description": "Genomics and bioinformatics software stack",
        "packages": ["gcc@12.3.0", "samtools@1.17"],
    }


def refusal(snapshots: list[SnapshotRecord], sharing: dict[str, SharingInfo], **kw: Any) -> str:
    with pytest.raises(Refused) as failure:
        check_publishable(snapshots, sharing, **{"public": True, **kw})
    return str(failure.value)


def test_refuses_snapshots_of_different_software() -> None:
    other = record(
        snapshot_id="snap-0dddddddddddddddd",
        description=petal_description(fp=OTHER_FINGERPRINT),
        tags={TAG_FINGERPRINT: OTHER_FINGERPRINT},
    )
    message = refusal([EAST, other], {s.snapshot_id: public(s) for s in (EAST, other)})
    assert "different stacks (fingerprints differ)" in message
    assert FINGERPRINT in message and OTHER_FINGERPRINT in message


def test_refuses_snapshots_without_petal_description_or_tags() -> None:
    no_description = record(description="nightly backup")
    no_tags = record(snapshot_id="snap-0eeeeeeeeeeeeeeee", tags={})
    changed = record(
        snapshot_id="snap-0ffffffffffffffff", tags={TAG_FINGERPRINT: OTHER_FINGERPRINT}
    )
    snapshots = [no_description, no_tags, changed]
    message = refusal(snapshots, {s.snapshot_id: public(s) for s in snapshots})
    assert "has no petal Description" in message
    assert f"has no {TAG_FINGERPRINT} tag" in message
    assert "disagree" in message


def test_refuses_encrypted_or_not_public_snapshots_in_a_public_entry() -> None:
    encrypted = record(encrypted=True, kms_key_id="arn:aws:kms:us-east-1:1:key/k")
    message = refusal([encrypted], {encrypted.snapshot_id: private(encrypted)})
    assert "is encrypted, so it can never be public" in message and "--private" in message
    message = refusal([EAST], {EAST.snapshot_id: private(EAST)})
    assert "is not public" in message
    assert f"petal build share us-east-1:{EAST.snapshot_id} --public --yes-make-public" in message


def test_refuses_public_snapshots_hidden_by_block_all_sharing() -> None:
    message = refusal(
        [EAST],
        {EAST.snapshot_id: public(EAST)},
        block_public_access={"us-east-1": "block-all-sharing"},
    )
    assert "block-all-sharing in us-east-1" in message


def test_refuses_unfinished_snapshots() -> None:
    pending = record(state="pending")
    assert "is pending" in refusal([pending], {pending.snapshot_id: public(pending)})


class Keys:
    def __init__(self, manager: str) -> None:
        self.manager = manager

    def describe_key(self, key_id: str) -> KeyInfo:
        return KeyInfo(key_id, self.manager, "Enabled")


def test_private_entry_notes_public_false_and_refuses_what_cannot_be_shared() -> None:
    cmk = record(encrypted=True, kms_key_id="arn:aws:kms:us-east-1:1:key/k")
    fp, warnings = check_publishable(
        [cmk],
        {cmk.snapshot_id: private(cmk, "111122223333")},
        public=False,
        keys=lambda region: Keys("CUSTOMER"),
    )
    publication = build_publication([cmk], name="org-bio", fingerprint=fp, public=False, today=DAY)
    assert publication.metadata["public"] is False
    assert_valid(publication.metadata, "entry")
    assert warnings == []
    # the AWS managed key cannot be shared, so an entry for it helps nobody
    message = refusal(
        [cmk], {cmk.snapshot_id: private(cmk)}, public=False, keys=lambda region: Keys("AWS")
    )
    assert "AWS managed key aws/ebs" in message
    # a public snapshot listed as private would make the entry lie
    message = refusal([EAST], {EAST.snapshot_id: public(EAST)}, public=False)
    assert "is public but --private says it is not" in message
    _, warnings = check_publishable([EAST], {EAST.snapshot_id: private(EAST)}, public=False)
    assert "not shared with any account yet" in warnings[0]


def test_update_keeps_other_variants_and_created(tmp_path: Path) -> None:
    first = build_publication(
        [EAST],
        name="bio-v1",
        fingerprint=FINGERPRINT,
        public=True,
        today=DAY,
        packages=["bwa@0.7.17"],
        description="bio",
    )
    files = write_publication(tmp_path, first)
    assert [f.name for f in files] == ["bio-v1.json", "index.json"]
    existing = read_existing_metadata(tmp_path, "bio-v1")
    second = build_publication(
        [WEST],
        name="bio-v1",
        fingerprint=FINGERPRINT,
        public=True,
        today=date(2025, 1, 20),
        existing=existing,
    )
    write_publication(tmp_path, second)
    metadata = json.loads((tmp_path / "bio-v1.json").read_text())
    assert_valid(metadata, "entry")
    assert [s["region"] for s in metadata["snapshots"]] == ["us-east-1", "us-west-2"]
    assert (metadata["created"], metadata["updated"]) == ("2025-01-15", "2025-01-20")
    assert metadata["packages"] == ["bwa@0.7.17"] and metadata["description"] == "bio"
    index = json.loads((tmp_path / "index.json").read_text())
    assert_valid(index, "index")
    assert [e["name"] for e in index["snapshots"]] == ["bio-v1"]  # replaced, not repeated


def test_update_refuses_other_software_under_the_same_name(tmp_path: Path) -> None:
    write_publication(
        tmp_path,
        build_publication([EAST], name="bio-v1", fingerprint=FINGERPRINT, public=True, today=DAY),
    )
    with pytest.raises(Refused, match="another stack: publish this one under a new --name"):
        build_publication(
            [EAST],
            name="bio-v1",
            fingerprint=OTHER_FINGERPRINT,
            public=True,
            existing=read_existing_metadata(tmp_path, "bio-v1"),
        )


def test_index_keeps_other_entries_and_refuses_a_second_name_for_one_fingerprint(
    tmp_path: Path,
) -> None:
    other = {"name": "chem-v1", "fingerprint": OTHER_FINGERPRINT, "metadata_url": "chem-v1.json"}
    (tmp_path / "index.json").write_text(
        json.dumps({"version": "1.0", "registry": "https://x", "snapshots": [other]})
    )
    publication = build_publication(
        [EAST],
        name="bio-v1",
        fingerprint=FINGERPRINT,
        public=True,
        description="bio",
        packages=["bwa@0.7.17"],
    )
    write_publication(tmp_path, publication)
    index = json.loads((tmp_path / "index.json").read_text())
    assert index["registry"] == "https://x"
    assert index["snapshots"] == [
        other,
        {
            "name": "bio-v1",
            "fingerprint": FINGERPRINT,
            "metadata_url": "bio-v1.json",
            "description": "bio",
            "packages": ["bwa@0.7.17"],
        },
    ]
    # petal.registry refuses two entries with one fingerprint, so publish does too
    again = build_publication([WEST], name="bio-copy", fingerprint=FINGERPRINT, public=True)
    with pytest.raises(Refused, match="already lists this stack as bio-v1"):
        write_publication(tmp_path, again)
    assert not (tmp_path / "bio-copy.json").exists()


def test_broken_files_in_out_dir_are_input_errors(tmp_path: Path) -> None:
    (tmp_path / "bio-v1.json").write_text("{not json")
    with pytest.raises(InvalidArgument, match=r"--out: .* cannot be read as JSON"):
        read_existing_metadata(tmp_path, "bio-v1")
    (tmp_path / "bio-v1.json").write_text('{"name": "bio-v1"}')
    with pytest.raises(InvalidArgument, match="not valid registry metadata"):
        read_existing_metadata(tmp_path, "bio-v1")
    (tmp_path / "index.json").write_text('{"snapshots": "no"}')
    publication = build_publication([EAST], name="bio-v1", fingerprint=FINGERPRINT, public=True)
    with pytest.raises(InvalidArgument, match="not a valid registry index"):
        write_publication(tmp_path, publication)


def test_a_variant_carries_its_build_manifest() -> None:
    lock = {"roots": [], "concrete_specs": {"h1": {"name": "zlib", "version": "1.3.1"}}}
    manifest = Manifest(
        {
            "format": 2,
            "build_id": "bio-1",
            "spack_version": "v0.23.0",
            "spack_commit": "c6d4037758140fe15913c29e80cd1547f388ae51",
            "builder_image": "ami-0123456789abcdef0",
            "os": {"id": "amzn", "version_id": "2023"},
            "compilers": ["gcc@=13.2.0"],
            "core_compilers": ["gcc@11.4.1"],
            "parent_snapshot": "snap-0cccccccccccccccc",
            "install_sources": {"h1": "cache"},
            "lock": lock,
        }
    )
    publication = build_publication(
        [EAST, WEST],
        name="bio-v1",
        fingerprint=FINGERPRINT,
        public=True,
        today=DAY,
        manifests={EAST.snapshot_id: manifest},
    )
    assert_valid(publication.metadata, "entry")
    east, west = publication.metadata["snapshots"]
    assert east["manifest"] == {
        "build_id": "bio-1",
        "spack_version": "v0.23.0",
        "spack_commit": "c6d4037758140fe15913c29e80cd1547f388ae51",
        "builder_image": "ami-0123456789abcdef0",
        "os": "amzn 2023",
        "compilers": ["gcc@=13.2.0"],
        "core_compilers": ["gcc@11.4.1"],
        "parent_snapshot": "snap-0cccccccccccccccc",
        "install_sources": {"h1": "cache"},
        "spack_lock": lock,
    }
    assert "manifest" not in west  # no manifest found: the variant is as before
    # The schema holds the manifest to its shapes: a forged source is refused.
    east["manifest"]["install_sources"] = {"h1": "downloaded"}
    with pytest.raises(jsonschema.ValidationError, match="downloaded"):
        assert_valid(publication.metadata, "entry")


def test_an_entry_registry_clients_could_not_read_is_refused() -> None:
    lock = {"roots": [], "concrete_specs": {f"h{i}": {"name": "x" * 100} for i in range(20_000)}}
    manifest = Manifest({"format": 2, "build_id": "big-1", "lock": lock})
    with pytest.raises(Refused, match="registry clients read: publish fewer snapshots"):
        build_publication(
            [EAST],
            name="bio-v1",
            fingerprint=FINGERPRINT,
            public=True,
            manifests={EAST.snapshot_id: manifest},
        )
