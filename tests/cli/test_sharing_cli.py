"""`petal build share | unshare | copy | publish` as a user runs them (moto behind):
exit codes 0/1/2, messages that name the flag and the fix, --json, and no AWS call at
all when the input is wrong."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from petal.cli import sharing_commands, snapshot_flags
from petal.cli.main import dispatch
from petal.seed.fingerprint import fingerprint
from petal.seed.loading import load_seed
from petal.sharing import public
from petal.snapshot_description import format_description
from tests.unit.test_sharing import (
    FINGERPRINT,
    OTHER_FINGERPRINT,
    aws,
    make_encrypted_snapshot,
    make_snapshot,
    permissions,
    petal_description,
    petal_tags,
)

__all__ = ["aws"]  # the fixture, imported for its use below

REPO = Path(__file__).resolve().parents[2]
SEED = REPO / "seeds/testing/workload-basic.yaml"
SNAP = "snap-0123456789abcdef0"


def run(*argv: str) -> int:
    """`petal build ARGV` with the sharing subcommands, as build_commands.py wires them."""
    parser = argparse.ArgumentParser(prog="petal build")
    sharing_commands.register(parser.add_subparsers(dest="build_command", required=True))
    args = parser.parse_args(list(argv))
    code: int = dispatch(args)
    return code


@pytest.fixture
def no_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any client creation fails the test: bad input must be refused before AWS."""
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")

    def forbidden(service: str, region: str) -> Any:
        pytest.fail(f"an AWS client ({service}, {region}) was created for invalid input")

    monkeypatch.setattr(snapshot_flags, "new_client", forbidden)


@pytest.fixture
def ec2(aws: None) -> Any:
    return boto3.client("ec2", region_name="us-east-1")


@pytest.fixture
def block_state(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The region's snapshot block public access state, as the adapter would read it.
    moto 5.2.5 does not implement GetSnapshotBlockPublicAccessState, so the adapter
    (tested against botocore's Stubber in the unit tests) is replaced here."""
    state = {"value": "unblocked"}
    monkeypatch.setattr(public, "get_block_public_access_state", lambda ec2: state["value"])
    return state


# --- invalid input: exit 2, the flag named, nothing asked of AWS ------------------------


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (
            ["share", "snap-12", "--accounts", "111122223333"],
            "SNAPSHOT: 'snap-12' is not a snapshot id",
        ),
        (
            ["share", SNAP, "--accounts", "1111-2222-3333"],
            "--accounts: '1111-2222-3333' is not an AWS account id: use 12 digits",
        ),
        (["unshare", SNAP, "--accounts", "12345"], "--accounts: '12345' is not an AWS account id"),
        (["unshare", SNAP], "unshare needs --accounts IDS, --public, or both"),
        (
            ["share", SNAP, "--accounts", "111122223333", "--region", "us-east-9"],
            "--region: 'us-east-9' is not an AWS region",
        ),
        (["share", "useast1:" + SNAP, "--accounts", "111122223333"], "is not an AWS region"),
        (["copy", SNAP, "--to", "us-west-2,eu-wst-1"], "--to: 'eu-wst-1' is not an AWS region"),
        (
            ["copy", SNAP, "--to", "us-west-2", "--from", "us-eats-1"],
            "--from: 'us-eats-1' is not an AWS region",
        ),
        (
            [
                "copy",
                SNAP,
                "--to",
                "us-west-2,eu-west-1",
                "--kms-key",
                "arn:aws:kms:us-west-2:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
            ],
            "KMS keys are regional",
        ),
        (
            ["copy", SNAP, "--to", "us-west-2", "--kms-key", "petal"],
            "--kms-key: 'petal' is not a KMS key",
        ),
        (
            ["share", SNAP, "--accounts", "111122223333", "--yes-make-public"],
            "--yes-make-public only goes with --public",
        ),
        (["publish", "snap-1", "--name", "bio-v1"], "SNAPSHOT: 'snap-1' is not a snapshot id"),
        (
            ["publish", SNAP, "--name", "bio-v1", "--seed-url", "ftp://x/seed.yaml"],
            "--seed-url: 'ftp://x/seed.yaml' must be an http(s) URL",
        ),
        (["publish", SNAP, "--name", "bio-v1", "--seed", "/nonexistent/seed.yaml"], "--seed: "),
        (
            ["publish", SNAP, "--name", "bio-v1", "--description", "x" * 1001],
            "--description: at most 1000 characters",
        ),
    ],
)
def test_invalid_input_is_refused_before_any_aws_call(
    no_aws: None, capsys: pytest.CaptureFixture[str], argv: list[str], expected: str
) -> None:
    assert run(*argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("petal: error: ") and expected in err
    assert "Traceback" not in err


def test_public_needs_confirmation_and_explains_what_public_means(
    no_aws: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run("share", SNAP, "--public") == 2
    err = capsys.readouterr().err
    assert "every AWS account in the world" in err and "read every file" in err
    assert "--yes-make-public" in err


def test_invalid_input_with_json_prints_an_error_document(
    no_aws: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run("share", SNAP, "--public", "--json") == 2
    document = json.loads(capsys.readouterr().out)
    assert document["ok"] is False and document["exit_code"] == 2
    assert "--yes-make-public" in document["error"]


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (
            ["share", SNAP, "--accounts", "111122223333", "--public"],
            "argument --public: not allowed with argument --accounts",
        ),
        (["share", SNAP], "one of the arguments --accounts --public is required"),
        (["publish", SNAP, "--name", "Bio V1"], "argument --name: 'Bio V1' is not a registry name"),
        (["copy", SNAP], "the following arguments are required: --to"),
        (
            ["copy", SNAP, "--to", "us-west-2", "--wait-minutes", "0"],
            "argument --wait-minutes: --wait-minutes must be at least 1",
        ),
        (
            ["copy", SNAP, "--to", "us-west-2", "--kms-key", "alias/k", "--unencrypted"],
            "argument --unencrypted: not allowed with argument --kms-key",
        ),
    ],
)
def test_flag_combinations_argparse_refuses(
    no_aws: None, capsys: pytest.CaptureFixture[str], argv: list[str], expected: str
) -> None:
    with pytest.raises(SystemExit) as exit_:
        run(*argv)
    assert exit_.value.code == 2
    assert expected in capsys.readouterr().err


def test_no_region_anywhere(
    no_aws: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    for name in ("AWS_DEFAULT_REGION", "AWS_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    assert run("share", SNAP, "--accounts", "111122223333") == 2
    assert "no AWS region for " + SNAP + ": pass --region" in capsys.readouterr().err
    assert run("copy", SNAP, "--to", "us-west-2") == 2
    assert "pass --from REGION" in capsys.readouterr().err


# --- share / unshare -----------------------------------------------------------------


def test_share_and_unshare_accounts(ec2: Any, capsys: pytest.CaptureFixture[str]) -> None:
    snapshot_id = make_snapshot(ec2)
    assert run("share", snapshot_id, "--accounts", "111122223333,444455556666") == 0
    out = capsys.readouterr().out
    assert f"us-east-1:{snapshot_id}: shared with 111122223333, 444455556666." in out
    assert run("unshare", snapshot_id, "--accounts", "111122223333", "--json") == 0
    document = json.loads(capsys.readouterr().out)
    assert document["accounts_removed"] == ["111122223333"]
    assert document["sharing"]["account_ids"] == ["444455556666"]
    assert permissions(ec2, snapshot_id) == [{"UserId": "444455556666"}]


def test_share_with_customer_managed_key_prints_the_key_policy_statement(
    ec2: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    kms = boto3.client("kms", region_name="us-east-1")
    key_arn = kms.create_key()["KeyMetadata"]["Arn"]
    snapshot_id = make_encrypted_snapshot(ec2, key_arn)
    assert run("share", snapshot_id, "--accounts", "111122223333") == 0
    out = capsys.readouterr().out
    assert key_arn in out and "petal does not change key policies" in out
    statement = json.loads(out[out.index("{") : out.rindex("}") + 1])
    assert statement["Principal"] == {"AWS": ["arn:aws:iam::111122223333:root"]}
    assert "kms:CreateGrant" in statement["Action"] and statement["Effect"] == "Allow"
    assert run("share", snapshot_id, "--accounts", "444455556666", "--json") == 0
    document = json.loads(capsys.readouterr().out)
    assert document["kms_key"]["arn"] == key_arn
    assert document["key_policy_statement"]["Principal"]["AWS"] == [
        "arn:aws:iam::444455556666:root"
    ]


def test_share_refuses_the_aws_managed_key(ec2: Any, capsys: pytest.CaptureFixture[str]) -> None:
    default_key = ec2.create_volume(AvailabilityZone="us-east-1a", Size=1, Encrypted=True)[
        "KmsKeyId"
    ]
    snapshot_id = make_encrypted_snapshot(ec2, default_key)
    assert run("share", snapshot_id, "--accounts", "111122223333") == 1
    err = capsys.readouterr().err
    assert "AWS managed key aws/ebs" in err
    assert f"petal build copy {snapshot_id} --from us-east-1 --to us-east-1 --kms-key" in err
    assert permissions(ec2, snapshot_id) == []


def test_unknown_snapshot_is_exit_1(ec2: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert run("share", SNAP, "--accounts", "111122223333") == 1
    assert f"snapshot {SNAP} not found in us-east-1" in capsys.readouterr().err


# --- public ----------------------------------------------------------------------------


def test_public_refuses_an_encrypted_snapshot(
    ec2: Any, block_state: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    snapshot_id = make_encrypted_snapshot(ec2, "arn:aws:kms:us-east-1:123456789012:key/k")
    assert run("share", snapshot_id, "--public", "--yes-make-public") == 1
    assert "only unencrypted snapshots to be public" in capsys.readouterr().err


def test_public_reports_block_public_access(
    ec2: Any, block_state: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    snapshot_id = make_snapshot(ec2)
    block_state["value"] = "block-new-sharing"
    assert run("share", snapshot_id, "--public", "--yes-make-public") == 1
    err = capsys.readouterr().err
    assert "snapshot block public access in us-east-1 is block-new-sharing" in err
    assert "aws ec2 disable-snapshot-block-public-access --region us-east-1" in err
    assert permissions(ec2, snapshot_id) == []
    block_state["value"] = "unblocked"
    assert run("share", snapshot_id, "--public", "--yes-make-public", "--json") == 0
    document = json.loads(capsys.readouterr().out)
    assert document["changed"] and document["sharing"]["public"]
    assert document["block_public_access"] == "unblocked"
    assert run("unshare", snapshot_id, "--public") == 0
    assert "no longer public" in capsys.readouterr().out
    assert permissions(ec2, snapshot_id) == []


# --- copy ----------------------------------------------------------------------------


def test_copy_to_two_regions_carries_tags_and_description(
    ec2: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    snapshot_id = make_snapshot(ec2)
    assert (
        run(
            "copy", snapshot_id, "--to", "us-west-2,eu-west-1", "--kms-key", "alias/petal", "--json"
        )
        == 0
    )
    captured = capsys.readouterr()
    document = json.loads(captured.out)
    assert document["completed"] and document["encrypted"]
    assert [c["region"] for c in document["copies"]] == ["us-west-2", "eu-west-1"]
    for copy in document["copies"]:
        client = boto3.client("ec2", region_name=copy["region"])
        found = client.describe_snapshots(SnapshotIds=[copy["snapshot_id"]])["Snapshots"][0]
        assert found["Description"] == petal_description()
        assert sorted(found["Tags"], key=lambda t: t["Key"]) == sorted(
            petal_tags(), key=lambda t: t["Key"]
        )
        assert copy["state"] == "completed"
    # progress goes to stderr, plain lines when not a terminal
    assert "us-west-2 snap-" in captured.err and "completed 100%" in captured.err


def test_copy_plain_output_and_no_wait(ec2: Any, capsys: pytest.CaptureFixture[str]) -> None:
    snapshot_id = make_snapshot(ec2)
    assert run("copy", f"us-east-1:{snapshot_id}", "--to", "us-west-2", "--no-wait") == 0
    out = capsys.readouterr().out
    assert f"Copies of us-east-1:{snapshot_id} (encrypted (default EBS key)):" in out
    assert "us-west-2" in out and "snap-" in out


def test_copy_refuses_a_snapshot_petal_did_not_build(
    ec2: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    snapshot_id = make_snapshot(ec2, description="my backup", tags=[])
    assert run("copy", snapshot_id, "--to", "us-west-2") == 1
    assert "no petal Description" in capsys.readouterr().err


def test_copy_unencrypted_refused_where_encryption_is_on_by_default(
    ec2: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    snapshot_id = make_snapshot(ec2)
    boto3.client("ec2", region_name="eu-west-1").enable_ebs_encryption_by_default()
    assert run("copy", snapshot_id, "--to", "eu-west-1", "--unencrypted") == 1
    assert "EBS encryption by default is on in eu-west-1" in capsys.readouterr().err


# --- publish ---------------------------------------------------------------------------


def seed_snapshot(ec2: Any) -> tuple[str, str]:
    """A public snapshot built, as far as its Description and tags say, from SEED."""
    seed = load_seed(SEED)
    fp = fingerprint(seed)
    tags = [{"Key": "petal:fingerprint", "Value": fp}]
    description = format_description(fp, seed.os, seed.architecture, seed.name)
    snapshot_id = make_snapshot(ec2, description=description, tags=tags, size=20)
    ec2.modify_snapshot_attribute(
        SnapshotId=snapshot_id,
        Attribute="createVolumePermission",
        OperationType="add",
        GroupNames=["all"],
    )
    return snapshot_id, fp


def registry_schema(kind: str) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(
        (REPO / f"petal/schemas/registry_{kind}.schema.json").read_text()
    )
    return schema


def test_publish_writes_schema_valid_registry_files(
    ec2: Any, block_state: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import jsonschema

    east, fp = seed_snapshot(ec2)
    west_client = boto3.client("ec2", region_name="us-west-2")
    west, _ = seed_snapshot(west_client)
    out = tmp_path / "snapshots"
    code = run(
        "publish",
        east,
        f"us-west-2:{west}",
        "--name",
        "workload-basic-v1",
        "--seed",
        str(SEED),
        "--out",
        str(out),
    )
    assert code == 0, capsys.readouterr().err
    stdout = capsys.readouterr().out
    assert "wrote" in stdout and "open a pull request" in stdout
    metadata = json.loads((out / "workload-basic-v1.json").read_text())
    index = json.loads((out / "index.json").read_text())
    jsonschema.Draft202012Validator(registry_schema("entry")).validate(metadata)
    jsonschema.Draft202012Validator(registry_schema("index")).validate(index)
    assert metadata["fingerprint"] == fp
    assert metadata["packages"] == ["zlib@1.3.1", "bzip2@1.0.8", "xz@5.4.6"]
    assert metadata["description"].startswith("Small test stack")
    assert metadata["seed_url"].endswith("/seeds/workload-basic-v1.yaml")
    assert [
        (s["region"], s["snapshot_id"], s["os"], s["size_gb"]) for s in metadata["snapshots"]
    ] == [
        ("us-east-1", east, "al2023", 20),
        ("us-west-2", west, "al2023", 20),
    ]
    assert metadata["public"] is True and metadata["verified"] is False
    assert index["snapshots"] == [
        {
            "name": "workload-basic-v1",
            "fingerprint": fp,
            "metadata_url": "workload-basic-v1.json",
            "description": metadata["description"],
            "packages": metadata["packages"],
        }
    ]


def test_publish_json_without_out_prints_the_documents(
    ec2: Any, block_state: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    east, fp = seed_snapshot(ec2)
    assert run("publish", east, "--name", "wb", "--json") == 0
    document = json.loads(capsys.readouterr().out)
    assert document["files"] == [] and document["metadata"]["fingerprint"] == fp
    assert document["index_entry"]["metadata_url"] == "wb.json"
    assert "no package list" in document["warnings"][0]


def test_publish_refuses_a_seed_with_another_fingerprint(
    ec2: Any, block_state: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    east, _ = seed_snapshot(ec2)
    other_seed = REPO / "seeds/bioinformatics.yaml"
    assert run("publish", east, "--name", "wb", "--seed", str(other_seed)) == 1
    assert "were built from another seed" in capsys.readouterr().err


def test_publish_refuses_mixed_stacks_and_private_snapshots(
    ec2: Any, block_state: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    public_one, _ = seed_snapshot(ec2)
    other = make_snapshot(
        ec2,
        description=petal_description(fp=OTHER_FINGERPRINT),
        tags=[{"Key": "petal:fingerprint", "Value": OTHER_FINGERPRINT}],
    )
    assert run("publish", public_one, other, "--name", "mixed") == 1
    err = capsys.readouterr().err
    assert "fingerprints differ" in err and "is not public" in err
    # private entry: public=false, the not-yet-shared snapshot only warns
    private_one = make_snapshot(ec2)
    assert run("publish", private_one, "--name", "org-bio", "--private", "--json") == 0
    document = json.loads(capsys.readouterr().out)
    assert document["metadata"]["public"] is False
    assert document["metadata"]["fingerprint"] == FINGERPRINT
    assert any("not shared with any account" in w for w in document["warnings"])


def test_publish_refuses_a_snapshot_without_petal_tags(
    ec2: Any, block_state: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    untagged = make_snapshot(ec2, tags=[])
    assert run("publish", untagged, "--name", "x", "--private") == 1
    assert "has no petal:fingerprint tag" in capsys.readouterr().err


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    # A developer's own AWS profile or petal config must never leak into these tests.
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("PETAL_REGION", raising=False)
    monkeypatch.setenv("PETAL_CONFIG", str(tmp_path / "no-petal-config.yaml"))
    yield


def test_region_from_the_petal_config(
    no_aws: None,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("deployment:\n  region: eu-west-1\n")
    monkeypatch.setenv("PETAL_CONFIG", str(config))
    monkeypatch.setattr(snapshot_flags, "new_client", lambda service, region: pytest.fail(region))
    with pytest.raises(pytest.fail.Exception, match="eu-west-1"):
        run("share", SNAP, "--accounts", "111122223333")
    config.write_text("deployment: [not, a, mapping]\n")
    assert run("share", SNAP, "--accounts", "111122223333") == 2
    assert str(config) in capsys.readouterr().err


def build_group_parser() -> argparse.ArgumentParser:
    """`petal build` as build_commands.py shapes it: the group has its own --region,
    --seed, --name and --json, and the subcommands hang below it."""
    parser = argparse.ArgumentParser(prog="petal")
    build = parser.add_subparsers(dest="command", required=True).add_parser("build")
    build.add_argument("--region")
    build.add_argument("--stack-name")
    build.add_argument("--seed")
    build.add_argument("--name")
    build.add_argument("--json", action="store_true")
    sharing_commands.register(build.add_subparsers(dest="build_command"))
    return parser


def test_flags_given_to_petal_build_reach_the_subcommand(
    ec2: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """argparse lets a subcommand's defaults overwrite its parent's values:
    `petal build --region X --json share ...` must keep both."""
    west = boto3.client("ec2", region_name="us-west-2")
    snapshot_id = make_snapshot(west)
    parser = build_group_parser()
    args = parser.parse_args(
        [
            "build",
            "--region",
            "us-west-2",
            "--json",
            "share",
            snapshot_id,
            "--accounts",
            "111122223333",
        ]
    )
    assert dispatch(args) == 0
    assert json.loads(capsys.readouterr().out)["region"] == "us-west-2"
    args = parser.parse_args(
        ["build", "share", f"us-west-2:{snapshot_id}", "--accounts", "444455556666"]
    )
    assert dispatch(args) == 0
    assert "now accounts 111122223333, 444455556666." in capsys.readouterr().out
    # and the subcommand's own flag wins over the parent's
    args = parser.parse_args(
        [
            "build",
            "--region",
            "eu-west-1",
            "unshare",
            snapshot_id,
            "--public",
            "--region",
            "us-west-2",
        ]
    )
    assert dispatch(args) == 0
    assert "was not public" in capsys.readouterr().out


def test_what_publish_writes_is_read_back_by_the_registry_client(
    ec2: Any, block_state: dict[str, str], tmp_path: Path
) -> None:
    """publish --out into a registry checkout, serve it over http, and petal.registry
    (what `petal create` uses) finds the stack by fingerprint."""
    import functools
    import http.server
    import threading

    from petal.registry.client import RegistryClient

    east, fp = seed_snapshot(ec2)
    checkout = tmp_path / "registry"
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(checkout))
    handler.log_message = lambda *a, **k: None  # type: ignore[attr-defined]
    (checkout / "seeds").mkdir(parents=True)
    (checkout / "seeds/wb-v1.yaml").write_bytes(SEED.read_bytes())
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        code = run(
            "publish",
            east,
            "--name",
            "wb-v1",
            "--seed",
            str(SEED),
            "--registry-url",
            base,
            "--out",
            str(checkout / "snapshots"),
        )
        assert code == 0
        client = RegistryClient(base, use_cache=False)
        stack = client.find(fp)
        assert stack is not None and stack.name == "wb-v1"
        assert [(v.region, v.snapshot_id, v.os) for v in stack.variants] == [
            ("us-east-1", east, "alinux2023")
        ]
        assert stack.public is True and stack.aws_account == "123456789012"
        assert client.seed_text("wb-v1") == SEED.read_text()
    finally:
        server.shutdown()
        server.server_close()
