"""Sharing, unsharing, making public and copying snapshots: petal.sharing
against moto's EC2 and KMS, with small fakes only where moto cannot represent AWS:

- moto 5.2.5 creates the `aws/ebs` key as a customer key (KeyManager "CUSTOMER") and
  leaves KmsKeyId off snapshots of encrypted volumes; real KMS says KeyManager "AWS".
- moto 5.2.5 does not implement GetSnapshotBlockPublicAccessState (NotImplementedError),
  so the adapter is tested with botocore's Stubber and the callers with an injected reader.
- moto's CopySnapshot ignores Encrypted=True for an unencrypted source, so what petal
  asks for is checked on the request itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber
from moto import mock_aws

from petal.deployment_contract import (
    TAG_ARCH,
    TAG_BUILD_ID,
    TAG_FINGERPRINT,
    TAG_MANAGED,
    TAG_OS,
    TAG_ROLE,
    TAG_SEED,
)
from petal.sharing.copy import (
    CopyStarted,
    check_copy_source,
    copy_tags,
    start_copies,
    wait_for_copies,
)
from petal.sharing.errors import AwsFailure, InvalidArgument, NotFound, Refused
from petal.sharing.inputs import (
    parse_account_ids,
    parse_regions,
    parse_snapshot_ref,
    validate_kms_key,
    validate_region,
    validate_registry_name,
    validate_snapshot_id,
)
from petal.sharing.kms import KeyInfo, KmsKeyLookup, key_policy_statement
from petal.sharing.public import get_block_public_access_state, make_public
from petal.sharing.share import share_with_accounts, unshare
from petal.sharing.snapshots import SnapshotRecord, describe_sharing, get_snapshot
from petal.snapshot_description import format_description

REGION = "us-east-1"
FINGERPRINT = "sha256:" + "ab" * 32
OTHER_FINGERPRINT = "sha256:" + "cd" * 32
ACCOUNTS = ("111122223333", "444455556666")


def petal_description(fp: str = FINGERPRINT, os_name: str = "alinux2023") -> str:
    return format_description(fp, os_name, "x86_64", "bioinformatics")


def petal_tags(fp: str = FINGERPRINT, os_name: str = "alinux2023") -> list[dict[str, str]]:
    return [
        {"Key": TAG_FINGERPRINT, "Value": fp},
        {"Key": TAG_OS, "Value": os_name},
        {"Key": TAG_ARCH, "Value": "x86_64"},
        {"Key": TAG_SEED, "Value": "bioinformatics"},
        {"Key": TAG_BUILD_ID, "Value": "b-123"},
    ]


def make_snapshot(
    ec2: Any,
    *,
    encrypted: bool = False,
    description: str | None = None,
    tags: list[dict[str, str]] | None = None,
    size: int = 50,
) -> str:
    """A petal-looking snapshot in the client's region (moto)."""
    region = ec2.meta.region_name
    volume = ec2.create_volume(AvailabilityZone=f"{region}a", Size=size, Encrypted=encrypted)
    tag_list = petal_tags() if tags is None else tags
    answer = ec2.create_snapshot(
        VolumeId=volume["VolumeId"],
        Description=petal_description() if description is None else description,
        TagSpecifications=[{"ResourceType": "snapshot", "Tags": tag_list}] if tag_list else [],
    )
    snapshot_id: str = answer["SnapshotId"]
    return snapshot_id


def make_encrypted_snapshot(ec2: Any, kms_key_id: str) -> str:
    """A snapshot encrypted with `kms_key_id`. moto drops the volume's key on
    CreateSnapshot, so the key is set the way petal's own re-encryption does it: a
    same-region CopySnapshot with KmsKeyId."""
    source = make_snapshot(ec2)
    answer = ec2.copy_snapshot(
        SourceRegion=ec2.meta.region_name,
        SourceSnapshotId=source,
        Description=petal_description(),
        Encrypted=True,
        KmsKeyId=kms_key_id,
        TagSpecifications=[{"ResourceType": "snapshot", "Tags": petal_tags()}],
    )
    snapshot_id: str = answer["SnapshotId"]
    return snapshot_id


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws():
        yield


@pytest.fixture
def ec2(aws: None) -> Any:
    return boto3.client("ec2", region_name=REGION)


@pytest.fixture
def kms(aws: None) -> Any:
    return boto3.client("kms", region_name=REGION)


class FakeKeys:
    """A KeyLookup answering like real KMS for one key."""

    def __init__(self, manager: str, state: str = "Enabled") -> None:
        self.manager = manager
        self.state = state
        self.asked: list[str] = []

    def describe_key(self, key_id: str) -> KeyInfo:
        self.asked.append(key_id)
        return KeyInfo(arn=key_id, manager=self.manager, state=self.state)


def permissions(ec2: Any, snapshot_id: str) -> list[dict[str, str]]:
    answer = ec2.describe_snapshot_attribute(
        SnapshotId=snapshot_id, Attribute="createVolumePermission"
    )
    return sorted(answer["CreateVolumePermissions"], key=lambda p: sorted(p.items()))


# --- input validation -----------------------------------------------------------------


@pytest.mark.parametrize("value", ["snap-0123456789abcdef0", "snap-01234567"])
def test_snapshot_ids_accepted(value: str) -> None:
    assert validate_snapshot_id(value) == value


@pytest.mark.parametrize(
    "value", ["snap-0123", "vol-0123456789abcdef0", "snap-0123456789ABCDEF0", "", "snap-xyz"]
)
def test_bad_snapshot_ids_name_the_argument_and_the_format(value: str) -> None:
    with pytest.raises(InvalidArgument) as failure:
        validate_snapshot_id(value)
    assert failure.value.exit_code == 2
    assert str(failure.value).startswith("SNAPSHOT: ")
    assert "snap- followed by 8 or 17" in str(failure.value)


def test_account_ids_are_split_deduplicated_and_checked() -> None:
    assert parse_account_ids(["111122223333, 444455556666", "111122223333"]) == ACCOUNTS
    for bad in (["11112222333"], ["1111222233334"], ["abcdefghijkl"], ["", ","]):
        with pytest.raises(InvalidArgument) as failure:
            parse_account_ids(bad)
        assert str(failure.value).startswith("--accounts: ")


def test_regions_are_checked_against_botocore_without_a_call() -> None:
    assert parse_regions(["us-west-2,eu-west-1", "us-west-2"], "--to") == (
        "us-west-2",
        "eu-west-1",
    )
    with pytest.raises(InvalidArgument) as failure:
        validate_region("us-est-1", "--to")
    assert "--to: 'us-est-1' is not an AWS region" in str(failure.value)
    assert "us-east-1" in str(failure.value)  # the near matches help spot the typo
    with pytest.raises(InvalidArgument):
        parse_regions([","], "--to")


def test_snapshot_refs_take_a_region_prefix_or_the_default() -> None:
    ref = parse_snapshot_ref("eu-west-1:snap-01234567", "us-east-1")
    assert (ref.region, ref.snapshot_id) == ("eu-west-1", "snap-01234567")
    assert parse_snapshot_ref("snap-01234567", "us-east-1").region == "us-east-1"
    with pytest.raises(InvalidArgument, match="no AWS region for snap-01234567: pass --region"):
        parse_snapshot_ref("snap-01234567", None)
    with pytest.raises(InvalidArgument, match="is not an AWS region"):
        parse_snapshot_ref("mars-1:snap-01234567", None)


def test_kms_keys_are_checked_and_arns_must_be_in_every_destination() -> None:
    key_id = "1234abcd-12ab-34cd-56ef-1234567890ab"
    arn = f"arn:aws:kms:us-west-2:111122223333:key/{key_id}"
    for good in (key_id, "alias/petal-share", arn, "mrk-" + "0" * 32):
        assert validate_kms_key(good, ["us-west-2"]) == good
    assert validate_kms_key("alias/petal", ["us-west-2", "eu-west-1"]) == "alias/petal"
    with pytest.raises(InvalidArgument) as failure:
        validate_kms_key(arn, ["us-west-2", "eu-west-1"])
    assert "--kms-key: the key" in str(failure.value) and "KMS keys are regional" in str(
        failure.value
    )
    with pytest.raises(InvalidArgument, match="is not a KMS key"):
        validate_kms_key("my-key", ["us-west-2"])


def test_registry_names() -> None:
    assert validate_registry_name("bioinformatics-v1") == "bioinformatics-v1"
    for bad in ("Bio", "-bio", "bio v1", "b" * 101):
        with pytest.raises(InvalidArgument, match="--name: "):
            validate_registry_name(bad)


# --- KMS -------------------------------------------------------------------------------


def test_key_policy_statement_is_ready_to_paste_and_follows_the_partition() -> None:
    key = KeyInfo(
        arn="arn:aws-cn:kms:cn-north-1:111122223333:key/x", manager="CUSTOMER", state="Enabled"
    )
    statement = key_policy_statement(key, ACCOUNTS)
    assert statement == {
        "Sid": "AllowPetalSharedSnapshotUse",
        "Effect": "Allow",
        "Principal": {
            "AWS": ["arn:aws-cn:iam::111122223333:root", "arn:aws-cn:iam::444455556666:root"]
        },
        "Action": [
            "kms:Decrypt",
            "kms:DescribeKey",
            "kms:CreateGrant",
            "kms:ReEncrypt*",
            "kms:GenerateDataKey*",
        ],
        "Resource": "*",
    }


def test_kms_lookup_reads_key_manager_aws_as_real_kms_answers() -> None:
    kms = boto3.client("kms", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
    arn = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    with Stubber(kms) as stub:
        stub.add_response(
            "describe_key",
            {
                "KeyMetadata": {
                    "KeyId": arn.split("/")[-1],
                    "Arn": arn,
                    "KeyManager": "AWS",
                    "KeyState": "Enabled",
                }
            },
            {"KeyId": arn},
        )
        stub.add_client_error("list_aliases", "AccessDeniedException")
        key = KmsKeyLookup(kms).describe_key(arn)
    assert key.aws_managed and key.arn == arn


def test_kms_lookup_recognizes_the_aws_ebs_alias_in_moto(ec2: Any, kms: Any) -> None:
    volume = ec2.create_volume(AvailabilityZone="us-east-1a", Size=1, Encrypted=True)
    key = KmsKeyLookup(kms).describe_key(volume["KmsKeyId"])
    assert key.manager == "CUSTOMER"  # moto's simplification
    assert "alias/aws/ebs" in key.aliases and key.aws_managed
    custom = kms.create_key()["KeyMetadata"]["Arn"]
    assert not KmsKeyLookup(kms).describe_key(custom).aws_managed


def test_kms_lookup_failure_is_a_clear_error(kms: Any) -> None:
    with pytest.raises(AwsFailure, match=r"KMS DescribeKey .* failed: NotFoundException"):
        KmsKeyLookup(kms).describe_key("1234abcd-12ab-34cd-56ef-1234567890ab")


# --- share / unshare -------------------------------------------------------------------


def test_share_adds_create_volume_permission(ec2: Any) -> None:
    snapshot_id = make_snapshot(ec2)
    keys = FakeKeys("CUSTOMER")
    result = share_with_accounts(ec2, keys, REGION, snapshot_id, ACCOUNTS)
    assert result.added == ACCOUNTS and result.already == ()
    assert result.key_policy_statement is None and keys.asked == []  # unencrypted
    assert permissions(ec2, snapshot_id) == [{"UserId": a} for a in ACCOUNTS]
    again = share_with_accounts(ec2, keys, REGION, snapshot_id, ACCOUNTS[:1])
    assert again.added == () and again.already == ACCOUNTS[:1]


def test_share_refuses_the_aws_managed_key_as_real_kms_reports_it(ec2: Any) -> None:
    arn = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    snapshot_id = make_encrypted_snapshot(ec2, arn)
    with pytest.raises(Refused) as failure:
        share_with_accounts(ec2, FakeKeys("AWS"), REGION, snapshot_id, ACCOUNTS)
    message = str(failure.value)
    assert "AWS managed key aws/ebs" in message
    assert f"petal build copy {snapshot_id} --from us-east-1 --to us-east-1 --kms-key" in message
    assert permissions(ec2, snapshot_id) == []  # refused before any change


def test_share_refuses_the_aws_managed_key_through_moto_kms(ec2: Any, kms: Any) -> None:
    default_key = ec2.create_volume(AvailabilityZone="us-east-1a", Size=1, Encrypted=True)[
        "KmsKeyId"
    ]
    snapshot_id = make_encrypted_snapshot(ec2, default_key)
    with pytest.raises(Refused, match="AWS managed key aws/ebs"):
        share_with_accounts(ec2, KmsKeyLookup(kms), REGION, snapshot_id, ACCOUNTS)
    assert permissions(ec2, snapshot_id) == []


def test_share_with_customer_managed_key_returns_the_key_policy_statement(
    ec2: Any, kms: Any
) -> None:
    key_arn = kms.create_key()["KeyMetadata"]["Arn"]
    snapshot_id = make_encrypted_snapshot(ec2, key_arn)
    before = kms.get_key_policy(KeyId=key_arn, PolicyName="default")["Policy"]
    result = share_with_accounts(ec2, KmsKeyLookup(kms), REGION, snapshot_id, ACCOUNTS)
    assert result.key is not None and result.key.arn == key_arn
    assert result.key_policy_statement == key_policy_statement(result.key, ACCOUNTS)
    assert permissions(ec2, snapshot_id) == [{"UserId": a} for a in ACCOUNTS]
    # the key policy is the user's to change, never petal's
    assert kms.get_key_policy(KeyId=key_arn, PolicyName="default")["Policy"] == before


def test_share_warns_about_a_disabled_key(ec2: Any) -> None:
    snapshot_id = make_encrypted_snapshot(ec2, "arn:aws:kms:us-east-1:123456789012:key/k")
    result = share_with_accounts(
        ec2, FakeKeys("CUSTOMER", "Disabled"), REGION, snapshot_id, ACCOUNTS
    )
    assert "is Disabled" in result.warnings[0]


def test_share_refuses_an_encrypted_snapshot_without_a_key_id(ec2: Any) -> None:
    # what moto returns for a snapshot of an encrypted volume; real EC2 always names the key
    snapshot_id = make_snapshot(ec2, encrypted=True)
    with pytest.raises(Refused, match="did not say with which KMS key"):
        share_with_accounts(ec2, FakeKeys("CUSTOMER"), REGION, snapshot_id, ACCOUNTS)


def test_share_of_an_unknown_snapshot_is_not_found(ec2: Any) -> None:
    with pytest.raises(NotFound, match="snap-0123456789abcdef0 not found in us-east-1"):
        share_with_accounts(ec2, FakeKeys("CUSTOMER"), REGION, "snap-0123456789abcdef0", ACCOUNTS)


def test_unshare_removes_the_permission_and_reports_the_rest(ec2: Any) -> None:
    snapshot_id = make_snapshot(ec2)
    share_with_accounts(ec2, FakeKeys("CUSTOMER"), REGION, snapshot_id, ACCOUNTS)
    result = unshare(ec2, REGION, snapshot_id, ["111122223333", "999999999999"])
    assert result.removed == ("111122223333",)
    assert result.not_shared == ("999999999999",)
    assert permissions(ec2, snapshot_id) == [{"UserId": "444455556666"}]
    assert result.sharing.account_ids == ("444455556666",)


def test_unshare_public(ec2: Any) -> None:
    snapshot_id = make_snapshot(ec2)
    make_public(ec2, REGION, snapshot_id, block_public_access=lambda _: "unblocked")
    result = unshare(ec2, REGION, snapshot_id, public=True)
    assert result.public_removed and not result.sharing.public
    assert permissions(ec2, snapshot_id) == []
    assert not unshare(ec2, REGION, snapshot_id, public=True).public_removed


def test_describe_sharing(ec2: Any) -> None:
    private = make_snapshot(ec2)
    shared = make_snapshot(ec2)
    public = make_snapshot(ec2)
    share_with_accounts(ec2, FakeKeys("CUSTOMER"), REGION, shared, ACCOUNTS)
    make_public(ec2, REGION, public, block_public_access=lambda _: "unblocked")
    info = describe_sharing(ec2, [private, shared, public])
    assert list(info) == [private, shared, public]
    assert not info[private].shared
    assert info[shared].account_ids == ACCOUNTS and not info[shared].public
    assert info[public].public and info[public].account_ids == ()
    assert info[public].to_json()["encrypted"] is False
    # what `petal build list --shared` prints
    assert [info[i].summary() for i in (private, shared, public)] == [
        "private",
        "accounts 111122223333, 444455556666",
        "public",
    ]
    with pytest.raises(NotFound):
        describe_sharing(ec2, ["snap-0123456789abcdef0"])


# --- public ----------------------------------------------------------------------------


def test_make_public_refuses_an_encrypted_snapshot(ec2: Any) -> None:
    snapshot_id = make_encrypted_snapshot(ec2, "arn:aws:kms:us-east-1:123456789012:key/k")
    with pytest.raises(Refused, match="only unencrypted snapshots to be public"):
        make_public(ec2, REGION, snapshot_id, block_public_access=lambda _: "unblocked")
    assert permissions(ec2, snapshot_id) == []


@pytest.mark.parametrize("state", ["block-new-sharing", "block-all-sharing"])
def test_make_public_refuses_when_block_public_access_is_on(ec2: Any, state: str) -> None:
    snapshot_id = make_snapshot(ec2)
    with pytest.raises(Refused) as failure:
        make_public(ec2, REGION, snapshot_id, block_public_access=lambda _: state)  # type: ignore[arg-type, return-value]
    assert f"snapshot block public access in us-east-1 is {state}" in str(failure.value)
    assert "aws ec2 disable-snapshot-block-public-access --region us-east-1" in str(failure.value)
    assert permissions(ec2, snapshot_id) == []


def test_make_public_when_unblocked_and_again(ec2: Any) -> None:
    snapshot_id = make_snapshot(ec2)
    result = make_public(ec2, REGION, snapshot_id, block_public_access=lambda _: "unblocked")
    assert result.changed and result.sharing.public and result.warnings == ()
    assert permissions(ec2, snapshot_id) == [{"Group": "all"}]
    # already public: block-new-sharing does not hide it, nothing to change
    again = make_public(ec2, REGION, snapshot_id, block_public_access=lambda _: "block-new-sharing")
    assert not again.changed


def test_make_public_with_unknown_block_state_proceeds_with_a_warning(ec2: Any) -> None:
    # moto does not implement the call: the default adapter reports "unknown"
    snapshot_id = make_snapshot(ec2)
    result = make_public(ec2, REGION, snapshot_id)
    assert result.block_public_access == "unknown" and result.changed
    assert "could not read snapshot block public access" in result.warnings[0]


@pytest.mark.parametrize("state", ["block-all-sharing", "block-new-sharing", "unblocked"])
def test_block_public_access_adapter_reads_the_state(state: str) -> None:
    ec2 = boto3.client("ec2", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(ec2) as stub:
        stub.add_response("get_snapshot_block_public_access_state", {"State": state}, {})
        assert get_block_public_access_state(ec2) == state


def test_block_public_access_adapter_without_permission_is_unknown() -> None:
    ec2 = boto3.client("ec2", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(ec2) as stub:
        stub.add_client_error("get_snapshot_block_public_access_state", "UnauthorizedOperation")
        assert get_block_public_access_state(ec2) == "unknown"


# --- copy ------------------------------------------------------------------------------


def record(**changes: Any) -> SnapshotRecord:
    values: dict[str, Any] = {
        "snapshot_id": "snap-0123456789abcdef0",
        "region": REGION,
        "owner_id": "123456789012",
        "state": "completed",
        "progress": "100%",
        "encrypted": False,
        "kms_key_id": None,
        "size_gb": 50,
        "description": petal_description(),
        "tags": {TAG_FINGERPRINT: FINGERPRINT},
    }
    values.update(changes)
    return SnapshotRecord(**values)


def test_copy_tags_keep_user_tags_drop_aws_ones_and_rebuild_petal_tags() -> None:
    tags = copy_tags(
        record(tags={"Name": "bio", "aws:backup:source": "x", TAG_FINGERPRINT: FINGERPRINT})
    )
    assert tags == [{"Key": "Name", "Value": "bio"}, {"Key": TAG_FINGERPRINT, "Value": FINGERPRINT}]
    # a snapshot shared by another account shows no tags: the Description tells
    rebuilt = {t["Key"]: t["Value"] for t in copy_tags(record(tags={}))}
    assert rebuilt[TAG_FINGERPRINT] == FINGERPRINT
    assert rebuilt[TAG_OS] == "alinux2023" and rebuilt[TAG_ARCH] == "x86_64"
    assert rebuilt[TAG_SEED] == "bioinformatics"
    assert rebuilt[TAG_MANAGED] == "true" and rebuilt[TAG_ROLE] == "software-volume"


def test_copy_carries_tags_and_description_to_the_other_region(aws: None) -> None:
    source_ec2 = boto3.client("ec2", region_name=REGION)
    west = boto3.client("ec2", region_name="us-west-2")
    sent: list[dict[str, Any]] = []
    west.meta.events.register(
        "provide-client-params.ec2.CopySnapshot", lambda params, **_: sent.append(dict(params))
    )
    snapshot_id = make_snapshot(source_ec2, tags=[*petal_tags(), {"Key": "Name", "Value": "bio"}])
    source = get_snapshot(source_ec2, REGION, snapshot_id)
    started = start_copies(source, {"us-west-2": west}, kms_key_id="alias/petal-share")
    assert [c.region for c in started] == ["us-west-2"]
    copy = west.describe_snapshots(SnapshotIds=[started[0].snapshot_id])["Snapshots"][0]
    assert copy["Description"] == petal_description()
    assert {t["Key"]: t["Value"] for t in copy["Tags"]} == {
        t["Key"]: t["Value"] for t in [*petal_tags(), {"Key": "Name", "Value": "bio"}]
    }
    assert copy["KmsKeyId"] == "alias/petal-share"
    # moto ignores Encrypted for an unencrypted source; the request is what petal controls
    assert sent[0]["Encrypted"] is True and sent[0]["SourceRegion"] == REGION
    assert sent[0]["SourceSnapshotId"] == snapshot_id


def test_copy_unencrypted_sends_no_encryption(aws: None) -> None:
    source_ec2 = boto3.client("ec2", region_name=REGION)
    west = boto3.client("ec2", region_name="us-west-2")
    sent: list[dict[str, Any]] = []
    west.meta.events.register(
        "provide-client-params.ec2.CopySnapshot", lambda params, **_: sent.append(dict(params))
    )
    source = get_snapshot(source_ec2, REGION, make_snapshot(source_ec2))
    check_copy_source(source, encrypt=False, destinations={"us-west-2": west})
    start_copies(source, {"us-west-2": west}, encrypt=False)
    assert "Encrypted" not in sent[0] and "KmsKeyId" not in sent[0]


def test_copy_checks_refuse_what_cannot_work(aws: None) -> None:
    west = boto3.client("ec2", region_name="us-west-2")
    destinations = {"us-west-2": west}
    with pytest.raises(Refused, match="is pending"):
        check_copy_source(
            record(state="pending", progress="3%"), encrypt=True, destinations=destinations
        )
    with pytest.raises(Refused, match="no petal Description"):
        check_copy_source(record(description="my backup"), encrypt=True, destinations=destinations)
    with pytest.raises(Refused, match="always encrypted"):
        check_copy_source(record(encrypted=True), encrypt=False, destinations=destinations)
    west.enable_ebs_encryption_by_default()
    with pytest.raises(Refused, match="EBS encryption by default is on in us-west-2"):
        check_copy_source(record(), encrypt=False, destinations=destinations)
    check_copy_source(record(), encrypt=True, destinations=destinations)


class FakeEc2:
    """DescribeSnapshots answering from a script of (state, progress) per call."""

    def __init__(self, region: str, script: list[tuple[str, str]]) -> None:
        self.meta = type("Meta", (), {"region_name": region})()
        self.script = script
        self.calls = 0

    def describe_snapshots(self, **request: Any) -> dict[str, Any]:
        state, progress = self.script[min(self.calls, len(self.script) - 1)]
        self.calls += 1
        if state == "not-listed-yet":
            raise ClientError(
                {"Error": {"Code": "InvalidSnapshot.NotFound", "Message": ""}}, "DescribeSnapshots"
            )
        return {
            "Snapshots": [
                {"SnapshotId": sid, "State": state, "Progress": progress, "OwnerId": "1"}
                for sid in request["SnapshotIds"]
            ]
        }


def test_wait_for_copies_reports_progress_until_completed() -> None:
    west = FakeEc2("us-west-2", [("pending", "10%"), ("pending", "60%"), ("completed", "100%")])
    seen: list[CopyStarted] = []
    sleeps: list[float] = []
    final = wait_for_copies(
        [CopyStarted("us-west-2", "snap-01234567")],
        {"us-west-2": west},  # type: ignore[dict-item]
        on_progress=seen.append,
        delay_seconds=7,
        sleep=sleeps.append,
    )
    assert [c.progress for c in seen] == ["10%", "60%", "100%"]
    assert final == [CopyStarted("us-west-2", "snap-01234567", "completed", "100%")]
    assert sleeps == [7, 7]


def test_wait_for_copies_tolerates_a_copy_not_listed_yet() -> None:
    west = FakeEc2("us-west-2", [("not-listed-yet", ""), ("completed", "100%")])
    final = wait_for_copies(
        [CopyStarted("us-west-2", "snap-01234567")],
        {"us-west-2": west},  # type: ignore[dict-item]
        sleep=lambda _: None,
    )
    assert final[0].state == "completed" and west.calls == 2


def test_wait_for_copies_gives_up_after_max_attempts() -> None:
    west = FakeEc2("us-west-2", [("pending", "1%")])
    final = wait_for_copies(
        [CopyStarted("us-west-2", "snap-01234567")],
        {"us-west-2": west},  # type: ignore[dict-item]
        max_attempts=3,
        sleep=lambda _: None,
    )
    assert final[0].state == "pending" and west.calls == 3


def test_wait_for_copies_stops_polling_a_failed_copy() -> None:
    west = FakeEc2("us-west-2", [("error", "0%")])
    final = wait_for_copies(
        [CopyStarted("us-west-2", "snap-01234567")],
        {"us-west-2": west},  # type: ignore[dict-item]
        sleep=lambda _: pytest.fail("no need to wait"),
    )
    assert final[0].state == "error" and west.calls == 1
