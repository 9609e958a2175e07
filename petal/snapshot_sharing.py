"""Share, unshare, copy and publish petal software volumes (EBS snapshots).

What AWS allows decides most of the logic here (../docs/SHARING.md explains it to users):

- Sharing is the snapshot's `createVolumePermission` attribute: account ids, or the group
  `all` for public.
- Only unencrypted snapshots can be public. A snapshot encrypted with the AWS managed
  key (`aws/ebs`) cannot be shared with anyone, because that key's policy cannot be
  changed; one encrypted with a customer managed key can, once the key policy lets the
  other accounts use the key. petal never edits key policies: it prints the statement.
- Snapshot block public access is a per-region account setting that stops new (or all)
  public sharing.
- Tags are invisible to other accounts; the Description (petal.snapshot_description)
  carries what identifies a petal snapshot. CopySnapshot runs in the destination region
  and copies neither tags nor, unless given, the Description.

Every function takes boto3 clients as arguments, so the CLI, the Lambda handlers and
the tests (moto, or small fakes where moto falls short) share one code path. Failures
are `SharingError`s whose message says what to do; `exit_code` is the CLI's.
"""

from __future__ import annotations

import functools
import json
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol

import jsonschema
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from petal.aws_errors import PetalStepError, error_code
from petal.aws_session import new_session
from petal.builder_ec2 import MANAGED, share_snapshot
from petal.deployment_contract import (
    ROLE_VOLUME,
    TAG_ARCH,
    TAG_FINGERPRINT,
    TAG_MANAGED,
    TAG_OS,
    TAG_ROLE,
    TAG_SEED,
)
from petal.platforms import operating_system
from petal.snapshot_description import SnapshotDescription, parse_description

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client
    from mypy_boto3_ec2.type_defs import SnapshotTypeDef, TagTypeDef

# --- errors -------------------------------------------------------------------------


class SharingError(Exception):
    """Something the user has to act on; the message says what."""

    exit_code: int = 1


class InvalidArgument(SharingError):
    """A flag or argument is malformed. Raised before any AWS call."""

    exit_code = 2


class Refused(SharingError):
    """The snapshot, its key or the account's settings do not allow the operation."""


class NotFound(SharingError):
    pass


class AwsFailure(SharingError):
    """AWS refused or could not be reached. `code` is AWS's error code, if any."""

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


# --- input validation (no AWS calls) -------------------------------------------------

_SNAPSHOT_ID: Final = re.compile(r"^snap-(?:[0-9a-f]{8}|[0-9a-f]{17})$")
_ACCOUNT_ID: Final = re.compile(r"^[0-9]{12}$")
_REGISTRY_NAME: Final = re.compile(r"^[a-z0-9][a-z0-9._-]{0,99}$")
_KEY_ID: Final = (
    r"(?:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|mrk-[0-9a-f]{32})"
)
_ALIAS_NAME: Final = r"alias/[A-Za-z0-9/_-]{1,250}"
_KMS_KEY_ID: Final = re.compile(rf"^{_KEY_ID}$")
_KMS_ALIAS: Final = re.compile(rf"^{_ALIAS_NAME}$")
_KMS_ARN: Final = re.compile(
    rf"^arn:(?P<partition>aws[a-z-]*):kms:(?P<region>[a-z0-9-]+):(?P<account>[0-9]{{12}}):"
    rf"(?:key/{_KEY_ID}|{_ALIAS_NAME})$"
)
SNAPSHOT_ID_HELP: Final = (
    "snap- followed by 8 or 17 lowercase hex digits, e.g. snap-0123456789abcdef0"
)


def validate_snapshot_id(value: str, flag: str = "SNAPSHOT") -> str:
    value = value.strip()
    if not _SNAPSHOT_ID.match(value):
        raise InvalidArgument(f"{flag}: {value!r} is not a snapshot id: use {SNAPSHOT_ID_HELP}")
    return value


def parse_account_ids(values: Iterable[str], flag: str = "--accounts") -> tuple[str, ...]:
    """Account ids from one or more comma-separated values, in order, without repeats."""
    accounts: list[str] = []
    for value in values:
        for item in value.split(","):
            account = item.strip()
            if not account:
                continue
            if not _ACCOUNT_ID.match(account):
                raise InvalidArgument(
                    f"{flag}: {account!r} is not an AWS account id: use 12 digits, "
                    "e.g. --accounts 123456789012,210987654321"
                )
            if account not in accounts:
                accounts.append(account)
    if not accounts:
        raise InvalidArgument(f"{flag}: give at least one 12-digit AWS account id")
    return tuple(accounts)


@functools.cache
def known_regions() -> frozenset[str]:
    """Every region botocore knows, all partitions. Read from botocore's bundled
    endpoint data: no network, so typos are caught before any call."""
    session = new_session()
    regions: set[str] = set()
    for partition in session.get_available_partitions():
        regions.update(session.get_available_regions("ec2", partition_name=partition))
    return frozenset(regions)


def validate_region(value: str, flag: str = "--region") -> str:
    region = value.strip()
    if region in known_regions():
        return region
    near = sorted(r for r in known_regions() if r.split("-")[0] == region.split("-")[0])
    hint = f" (known regions like it: {', '.join(near[:8])})" if near else ""
    raise InvalidArgument(
        f"{flag}: {region!r} is not an AWS region{hint}; use a name like us-east-1. "
        "A region newer than this installation needs an upgraded boto3/botocore."
    )


def parse_regions(values: Iterable[str], flag: str) -> tuple[str, ...]:
    """Regions from one or more comma-separated values, in order, without repeats."""
    regions: list[str] = []
    for value in values:
        for item in value.split(","):
            if item.strip():
                region = validate_region(item, flag)
                if region not in regions:
                    regions.append(region)
    if not regions:
        raise InvalidArgument(f"{flag}: give at least one region, e.g. {flag} us-west-2,eu-west-1")
    return tuple(regions)


@dataclass(frozen=True)
class SnapshotRef:
    region: str
    snapshot_id: str

    def __str__(self) -> str:
        return f"{self.region}:{self.snapshot_id}"


def parse_snapshot_ref(
    value: str, default_region: str | None, flag: str = "SNAPSHOT", region_flag: str = "--region"
) -> SnapshotRef:
    """`snap-...` (in `default_region`) or `region:snap-...`."""
    region, sep, snapshot = value.strip().rpartition(":")
    if sep:
        return SnapshotRef(
            validate_region(region, f"{flag} {value!r}"), validate_snapshot_id(snapshot, flag)
        )
    snapshot_id = validate_snapshot_id(snapshot, flag)
    if default_region is None:
        raise InvalidArgument(
            f"no AWS region for {snapshot_id}: pass {region_flag} REGION, write "
            f"REGION:{snapshot_id}, or set AWS_REGION"
        )
    return SnapshotRef(default_region, snapshot_id)


def validate_kms_key(value: str, regions: Sequence[str], flag: str = "--kms-key") -> str:
    """A key id, key ARN, alias/NAME or alias ARN. KMS keys are regional: an ARN names
    its region, which must be every destination's."""
    key = value.strip()
    if _KMS_KEY_ID.match(key) or _KMS_ALIAS.match(key):
        return key
    match = _KMS_ARN.match(key)
    if match is None:
        raise InvalidArgument(
            f"{flag}: {key!r} is not a KMS key: use a key id, a key ARN, alias/NAME or an alias ARN"
        )
    others = [r for r in regions if r != match["region"]]
    if others:
        raise InvalidArgument(
            f"{flag}: the key {key} is in {match['region']}, but the copy goes to "
            f"{', '.join(others)}; KMS keys are regional. Use alias/NAME with an alias "
            "defined in every destination region, or copy one region at a time."
        )
    return key


def validate_registry_name(value: str, flag: str = "--name") -> str:
    if not _REGISTRY_NAME.match(value):
        raise InvalidArgument(
            f"{flag}: {value!r} is not a registry name: use lowercase letters, digits, '.', "
            "'_' and '-', starting with a letter or digit, at most 100 characters "
            "(e.g. bioinformatics-v1)"
        )
    return value


# --- reading snapshots ---------------------------------------------------------------


@contextmanager
def _aws(action: str) -> Iterator[None]:
    """Turn boto errors into one clear line: what petal was doing and what AWS said."""
    try:
        yield
    except PetalStepError as failure:
        # An adapter shared with the pipeline already translated the ClientError.
        cause = failure.__cause__
        code = error_code(cause) if isinstance(cause, ClientError) else None
        raise AwsFailure(str(failure), code) from None
    except ClientError as failure:
        info = failure.response.get("Error", {})
        code = info.get("Code", "Unknown")
        message = info.get("Message") or ""
        hint = ""
        if code in ("UnauthorizedOperation", "AccessDenied", "AccessDeniedException"):
            hint = " Your AWS identity lacks the permission for this call."
        text = f"{action} failed: {code}" + (f": {message}" if message else "")
        raise AwsFailure(text + hint, code) from None
    except NoCredentialsError:
        raise AwsFailure(
            f"{action} failed: no AWS credentials found. Configure a profile "
            "(aws configure, or AWS_PROFILE) or set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY."
        ) from None
    except BotoCoreError as failure:
        raise AwsFailure(f"{action} failed: {failure}") from None


@dataclass(frozen=True)
class SnapshotRecord:
    """What petal needs from DescribeSnapshots."""

    snapshot_id: str
    region: str
    owner_id: str
    state: str  # pending | completed | error | recoverable | recovering
    progress: str
    encrypted: bool
    kms_key_id: str | None
    size_gb: int
    description: str
    tags: Mapping[str, str] = field(default_factory=dict)

    @property
    def petal(self) -> SnapshotDescription | None:
        return parse_description(self.description)

    @property
    def ref(self) -> SnapshotRef:
        return SnapshotRef(self.region, self.snapshot_id)


def _record(region: str, item: SnapshotTypeDef) -> SnapshotRecord:
    return SnapshotRecord(
        snapshot_id=item.get("SnapshotId", ""),
        region=region,
        owner_id=item.get("OwnerId", ""),
        state=item.get("State", "unknown"),
        progress=item.get("Progress", ""),
        encrypted=bool(item.get("Encrypted", False)),
        kms_key_id=item.get("KmsKeyId"),
        size_gb=int(item.get("VolumeSize", 0)),
        description=item.get("Description", ""),
        tags={t["Key"]: t["Value"] for t in item.get("Tags", []) if "Key" in t and "Value" in t},
    )


def get_snapshots(
    ec2: EC2Client, region: str, snapshot_ids: Sequence[str], *, owned: bool = True
) -> dict[str, SnapshotRecord]:
    """The snapshots by id. `owned`: only this account's, which sharing requires;
    without it a snapshot another account shared with us is found too (copy)."""
    found: dict[str, SnapshotRecord] = {}
    ids = list(dict.fromkeys(snapshot_ids))
    whose = "owned by this account" if owned else "visible to this account"
    for start in range(0, len(ids), 200):
        chunk = ids[start : start + 200]
        try:
            with _aws(f"DescribeSnapshots in {region}"):
                if owned:
                    page = ec2.describe_snapshots(SnapshotIds=chunk, OwnerIds=["self"])
                else:
                    # An exact id cannot match somebody else's public snapshot by accident,
                    # and it may be a snapshot shared with this account.
                    page = ec2.describe_snapshots(SnapshotIds=chunk)
        except AwsFailure as failure:
            if failure.code == "InvalidSnapshot.NotFound":
                raise NotFound(
                    f"snapshot {', '.join(chunk)} not found in {region} ({whose}): check the "
                    "id and the region (--region, or REGION:snap-...)"
                ) from None
            raise
        for item in page.get("Snapshots", []):
            record = _record(region, item)
            found[record.snapshot_id] = record
    missing = [i for i in ids if i not in found]
    if missing:
        raise NotFound(f"snapshot {', '.join(missing)} not found in {region} ({whose})")
    return found


def get_snapshot(
    ec2: EC2Client, region: str, snapshot_id: str, *, owned: bool = True
) -> SnapshotRecord:
    return get_snapshots(ec2, region, [snapshot_id], owned=owned)[snapshot_id]


# --- who a snapshot is shared with ----------------------------------------------------


@dataclass(frozen=True)
class SharingInfo:
    snapshot_id: str
    account_ids: tuple[str, ...]
    public: bool
    encrypted: bool
    kms_key_id: str | None

    @property
    def shared(self) -> bool:
        return self.public or bool(self.account_ids)

    def summary(self) -> str:
        """One phrase for listings: "public", "accounts 1111..., 2222...", "private"."""
        parts = []
        if self.public:
            parts.append("public")
        if self.account_ids:
            parts.append("accounts " + ", ".join(self.account_ids))
        return " and ".join(parts) if parts else "private"

    def to_json(self) -> dict[str, Any]:
        return {
            "snapshot_id": self.snapshot_id,
            "public": self.public,
            "account_ids": list(self.account_ids),
            "encrypted": self.encrypted,
            "kms_key_id": self.kms_key_id,
        }


def _permissions(ec2: EC2Client, region: str, snapshot_id: str) -> tuple[tuple[str, ...], bool]:
    with _aws(f"DescribeSnapshotAttribute {snapshot_id} in {region}"):
        answer = ec2.describe_snapshot_attribute(
            SnapshotId=snapshot_id, Attribute="createVolumePermission"
        )
    accounts: list[str] = []
    public = False
    for permission in answer.get("CreateVolumePermissions", []):
        if permission.get("Group") == "all":
            public = True
        if "UserId" in permission:
            accounts.append(permission["UserId"])
    return tuple(sorted(accounts)), public


def _sharing(ec2: EC2Client, snapshot: SnapshotRecord) -> SharingInfo:
    accounts, public = _permissions(ec2, snapshot.region, snapshot.snapshot_id)
    return SharingInfo(
        snapshot.snapshot_id, accounts, public, snapshot.encrypted, snapshot.kms_key_id
    )


def describe_sharing(ec2_client: EC2Client, snapshot_ids: Sequence[str]) -> dict[str, SharingInfo]:
    """Who each of this account's snapshots is shared with (for `petal build list
    --shared`). One DescribeSnapshots per 200 ids, one DescribeSnapshotAttribute per
    snapshot: AWS has no batch form of the latter. Raises NotFound for an id this
    account does not own in the client's region."""
    region = ec2_client.meta.region_name
    snapshots = get_snapshots(ec2_client, region, snapshot_ids)
    return {sid: _sharing(ec2_client, snapshots[sid]) for sid in dict.fromkeys(snapshot_ids)}


# --- KMS ------------------------------------------------------------------------------

AWS_MANAGED_EBS_ALIAS: Final = "alias/aws/ebs"
# What another account needs on the key to create volumes from (and copy) a snapshot
# encrypted with it: see ../docs/SHARING.md.
SHARED_KEY_ACTIONS: Final = (
    "kms:Decrypt",
    "kms:DescribeKey",
    "kms:CreateGrant",
    "kms:ReEncrypt*",
    "kms:GenerateDataKey*",
)


@dataclass(frozen=True)
class KeyInfo:
    arn: str
    manager: str  # "AWS" or "CUSTOMER"
    state: str  # Enabled, Disabled, PendingDeletion, ...
    aliases: tuple[str, ...] = ()

    @property
    def aws_managed(self) -> bool:
        # Real KMS says KeyManager "AWS"; the alias also catches emulators (moto)
        # that create the aws/ebs key as a customer key.
        return self.manager == "AWS" or AWS_MANAGED_EBS_ALIAS in self.aliases

    @property
    def partition(self) -> str:
        parts = self.arn.split(":")
        return parts[1] if len(parts) > 1 and parts[0] == "arn" else "aws"


class KeyLookup(Protocol):
    def describe_key(self, key_id: str) -> KeyInfo: ...


class KmsKeyLookup:
    """KeyLookup over a boto3 KMS client of the snapshot's region."""

    def __init__(self, kms_client: Any) -> None:
        self._kms = kms_client

    def describe_key(self, key_id: str) -> KeyInfo:
        with _aws(f"KMS DescribeKey {key_id}"):
            metadata: Mapping[str, Any] = self._kms.describe_key(KeyId=key_id)["KeyMetadata"]
        arn = str(metadata.get("Arn", key_id))
        aliases: tuple[str, ...] = ()
        try:
            answer = self._kms.list_aliases(KeyId=str(metadata.get("KeyId", key_id)))
            aliases = tuple(str(a["AliasName"]) for a in answer.get("Aliases", []))
        except (ClientError, BotoCoreError):
            pass  # KeyManager alone decides on real KMS; aliases only help emulators
        return KeyInfo(
            arn=arn,
            manager=str(metadata.get("KeyManager", "CUSTOMER")),
            state=str(metadata.get("KeyState", "Enabled")),
            aliases=aliases,
        )


def key_policy_statement(key: KeyInfo, account_ids: Sequence[str]) -> dict[str, Any]:
    """A key policy statement letting `account_ids` use `key` for shared snapshots, ready
    to paste into the key policy's Statement list. petal never changes key policies."""
    principals = [f"arn:{key.partition}:iam::{a}:root" for a in account_ids]
    return {
        "Sid": "AllowPetalSharedSnapshotUse",
        "Effect": "Allow",
        "Principal": {"AWS": principals},
        "Action": list(SHARED_KEY_ACTIONS),
        "Resource": "*",
    }


def _aws_managed_refusal(snapshot: SnapshotRecord, key: KeyInfo, action: str) -> Refused:
    return Refused(
        f"{snapshot.snapshot_id} is encrypted with the AWS managed key aws/ebs ({key.arn}), "
        f"so AWS does not allow {action} it: that key's policy cannot grant other accounts. "
        "Re-encrypt a copy with a customer managed key and share the copy:\n"
        f"  petal build copy {snapshot.snapshot_id} --from {snapshot.region} "
        f"--to {snapshot.region} --kms-key alias/YOUR-KEY"
    )


def _key_of(snapshot: SnapshotRecord, keys: KeyLookup, action: str) -> KeyInfo:
    if snapshot.kms_key_id is None:
        raise Refused(
            f"{snapshot.snapshot_id} is encrypted but AWS did not say with which KMS key, so "
            f"petal cannot tell whether {action} it is possible"
        )
    key = keys.describe_key(snapshot.kms_key_id)
    if key.aws_managed:
        raise _aws_managed_refusal(snapshot, key, action)
    return key


# --- share / unshare -------------------------------------------------------------------


@dataclass(frozen=True)
class ShareResult:
    snapshot: SnapshotRecord
    added: tuple[str, ...]
    already: tuple[str, ...]
    sharing: SharingInfo
    key: KeyInfo | None = None
    key_policy_statement: dict[str, Any] | None = None
    warnings: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "action": "share",
            "region": self.snapshot.region,
            "snapshot_id": self.snapshot.snapshot_id,
            "accounts_added": list(self.added),
            "accounts_already_shared": list(self.already),
            "sharing": self.sharing.to_json(),
            "kms_key": None
            if self.key is None
            else {"arn": self.key.arn, "manager": self.key.manager, "state": self.key.state},
            "key_policy_statement": self.key_policy_statement,
            "warnings": list(self.warnings),
        }


def share_with_accounts(
    ec2: EC2Client, keys: KeyLookup, region: str, snapshot_id: str, account_ids: Sequence[str]
) -> ShareResult:
    """Add createVolumePermission for `account_ids`. Refuses a snapshot encrypted with
    the AWS managed key; for a customer managed key, returns the key policy statement the
    accounts need (the key policy itself is left alone)."""
    snapshot = get_snapshot(ec2, region, snapshot_id)
    key: KeyInfo | None = None
    statement: dict[str, Any] | None = None
    warnings: list[str] = []
    if snapshot.encrypted:
        key = _key_of(snapshot, keys, "sharing")
        statement = key_policy_statement(key, account_ids)
        if key.state != "Enabled":
            warnings.append(
                f"the key {key.arn} is {key.state}: nobody can create volumes from the "
                "snapshot until it is Enabled"
            )
    before, _ = _permissions(ec2, region, snapshot_id)
    added = tuple(a for a in account_ids if a not in before)
    if added:
        with _aws(f"ModifySnapshotAttribute (share {snapshot_id} in {region})"):
            share_snapshot(ec2, snapshot_id, added)
    return ShareResult(
        snapshot=snapshot,
        added=added,
        already=tuple(a for a in account_ids if a in before),
        sharing=_sharing(ec2, snapshot),
        key=key,
        key_policy_statement=statement,
        warnings=tuple(warnings),
    )


@dataclass(frozen=True)
class UnshareResult:
    snapshot: SnapshotRecord
    removed: tuple[str, ...]
    not_shared: tuple[str, ...]
    public_removed: bool
    sharing: SharingInfo

    def to_json(self) -> dict[str, Any]:
        return {
            "action": "unshare",
            "region": self.snapshot.region,
            "snapshot_id": self.snapshot.snapshot_id,
            "accounts_removed": list(self.removed),
            "accounts_not_shared": list(self.not_shared),
            "public_removed": self.public_removed,
            "sharing": self.sharing.to_json(),
        }


def unshare(
    ec2: EC2Client,
    region: str,
    snapshot_id: str,
    account_ids: Sequence[str] = (),
    *,
    public: bool = False,
) -> UnshareResult:
    """Remove createVolumePermission for `account_ids`, and the public group when
    `public`. Accounts that had no permission are reported, not an error. Volumes and
    copies the accounts already made stay theirs: AWS cannot take those back."""
    snapshot = get_snapshot(ec2, region, snapshot_id)
    before_accounts, before_public = _permissions(ec2, region, snapshot_id)
    removed = tuple(a for a in account_ids if a in before_accounts)
    if removed:
        with _aws(f"ModifySnapshotAttribute (unshare {snapshot_id} in {region})"):
            ec2.modify_snapshot_attribute(
                SnapshotId=snapshot_id,
                Attribute="createVolumePermission",
                OperationType="remove",
                UserIds=list(removed),
            )
    public_removed = public and before_public
    if public_removed:
        with _aws(f"ModifySnapshotAttribute (make {snapshot_id} private in {region})"):
            ec2.modify_snapshot_attribute(
                SnapshotId=snapshot_id,
                Attribute="createVolumePermission",
                OperationType="remove",
                GroupNames=["all"],
            )
    return UnshareResult(
        snapshot=snapshot,
        removed=removed,
        not_shared=tuple(a for a in account_ids if a not in before_accounts),
        public_removed=public_removed,
        sharing=_sharing(ec2, snapshot),
    )


# --- public ------------------------------------------------------------------------------

BlockPublicAccessState = Literal["block-all-sharing", "block-new-sharing", "unblocked", "unknown"]


def get_block_public_access_state(ec2: EC2Client) -> BlockPublicAccessState:
    """The region's snapshot block public access setting, "unknown" when it cannot be
    read (no permission, or an endpoint without the API): the caller decides."""
    try:
        state = ec2.get_snapshot_block_public_access_state().get("State")
    except (ClientError, BotoCoreError, NotImplementedError):
        # NotImplementedError: moto raises it for this call (moto 5.2.5).
        return "unknown"
    if state in ("block-all-sharing", "block-new-sharing", "unblocked"):
        return state
    return "unknown"


PUBLIC_EXPLANATION: Final = (
    "--public lets every AWS account in the world create a volume from {snapshot} and read "
    "every file on it, and copy it so that unsharing later cannot take it back. Publish "
    "only volumes that hold open-source software and no credentials, licences or data "
    "(docs/SHARING.md). To confirm, run again with --yes-make-public."
)


@dataclass(frozen=True)
class PublicResult:
    snapshot: SnapshotRecord
    changed: bool
    block_public_access: BlockPublicAccessState
    sharing: SharingInfo
    warnings: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "action": "make-public",
            "region": self.snapshot.region,
            "snapshot_id": self.snapshot.snapshot_id,
            "changed": self.changed,
            "block_public_access": self.block_public_access,
            "sharing": self.sharing.to_json(),
            "warnings": list(self.warnings),
        }


def _block_public_access_refusal(region: str, state: str, snapshot_id: str) -> Refused:
    effect = (
        "AWS refuses new public sharing and hides snapshots that are already public"
        if state == "block-all-sharing"
        else "AWS refuses new public sharing"
    )
    return Refused(
        f"snapshot block public access in {region} is {state}: {effect}, so {snapshot_id} "
        "cannot be made public. It is an account-wide setting for the region; if this "
        "account is meant to publish (a dedicated publishing account is safer), an "
        "administrator can turn it off with:\n"
        f"  aws ec2 disable-snapshot-block-public-access --region {region}"
    )


def make_public(
    ec2: EC2Client,
    region: str,
    snapshot_id: str,
    *,
    block_public_access: Callable[[EC2Client], BlockPublicAccessState] | None = None,
) -> PublicResult:
    """Add the group `all` to createVolumePermission of an unencrypted snapshot. The
    caller has asked the user to confirm. `block_public_access` reads the region's
    setting (default: GetSnapshotBlockPublicAccessState)."""
    snapshot = get_snapshot(ec2, region, snapshot_id)
    if snapshot.encrypted:
        raise Refused(
            f"{snapshot_id} is encrypted, and AWS allows only unencrypted snapshots to be "
            "public. Share it with accounts instead (--accounts; it needs a customer managed "
            "key), or build the volume for the public registry with volume.encrypted: false "
            "in the seed. A copy cannot remove encryption."
        )
    read_state = block_public_access or get_block_public_access_state
    state = read_state(ec2)
    _, public = _permissions(ec2, region, snapshot_id)
    warnings: list[str] = []
    if state in ("block-all-sharing", "block-new-sharing") and not public:
        raise _block_public_access_refusal(region, state, snapshot_id)
    if state == "block-all-sharing":
        warnings.append(
            f"{snapshot_id} is marked public but block-all-sharing in {region} hides it: "
            "nobody else can use it until the setting is changed"
        )
    if state == "unknown":
        warnings.append(
            f"could not read snapshot block public access in {region} "
            "(ec2:GetSnapshotBlockPublicAccessState); if it is on, AWS refuses the change"
        )
    if not public:
        try:
            with _aws(f"ModifySnapshotAttribute (make {snapshot_id} public in {region})"):
                ec2.modify_snapshot_attribute(
                    SnapshotId=snapshot_id,
                    Attribute="createVolumePermission",
                    OperationType="add",
                    GroupNames=["all"],
                )
        except AwsFailure as failure:
            raise AwsFailure(
                f"{failure} If snapshot block public access is on in {region}, see "
                f"`aws ec2 get-snapshot-block-public-access-state --region {region}`."
            ) from None
    return PublicResult(snapshot, not public, state, _sharing(ec2, snapshot), tuple(warnings))


# --- copy ----------------------------------------------------------------------------------


def copy_tags(snapshot: SnapshotRecord) -> list[TagTypeDef]:
    """The tags a copy carries: every tag of the source but AWS's reserved `aws:` ones.
    A snapshot shared by another account shows no tags; then the petal tags are rebuilt
    from its Description, which is what other accounts can see."""
    tags = {k: v for k, v in snapshot.tags.items() if not k.startswith("aws:")}
    described = snapshot.petal
    if described is not None and TAG_FINGERPRINT not in tags:
        tags.update(
            {
                TAG_FINGERPRINT: described.fingerprint,
                TAG_OS: described.os,
                TAG_ARCH: described.architecture,
                TAG_SEED: described.seed,
                TAG_ROLE: ROLE_VOLUME,
                TAG_MANAGED: MANAGED,  # so that `petal build list` finds the copy
            }
        )
    return [{"Key": k, "Value": v} for k, v in sorted(tags.items())]


@dataclass(frozen=True)
class CopyStarted:
    region: str
    snapshot_id: str
    state: str = "pending"
    progress: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "region": self.region,
            "snapshot_id": self.snapshot_id,
            "state": self.state,
            "progress": self.progress,
        }


class CopyFailed(AwsFailure):
    """Some copies may have started before the failure: `started` lists them."""

    def __init__(self, message: str, started: Sequence[CopyStarted]) -> None:
        super().__init__(message)
        self.started = tuple(started)


def check_copy_source(
    source: SnapshotRecord, *, encrypt: bool, destinations: Mapping[str, EC2Client]
) -> None:
    """Refuse what cannot work before any copy starts."""
    if source.state != "completed":
        raise Refused(
            f"{source.snapshot_id} is {source.state} ({source.progress or 'no progress yet'}): "
            "copy it once it is completed"
        )
    if source.petal is None:
        raise Refused(
            f"{source.snapshot_id} has no petal Description ('petal sha256:... os=... "
            "arch=... seed=...'), so it is not a petal software volume; petal copies only those"
        )
    if not encrypt:
        if source.encrypted:
            raise Refused(
                f"{source.snapshot_id} is encrypted; a copy of an encrypted snapshot is "
                "always encrypted. Leave out --unencrypted."
            )
        for region, ec2 in destinations.items():
            with _aws(f"GetEbsEncryptionByDefault in {region}"):
                by_default = ec2.get_ebs_encryption_by_default().get("EbsEncryptionByDefault")
            if by_default:
                raise Refused(
                    f"EBS encryption by default is on in {region}, so the copy would be "
                    "encrypted and could never be public. Copy to a region without it "
                    f"(aws ec2 disable-ebs-encryption-by-default --region {region} turns it "
                    "off for the whole account) or leave out --unencrypted."
                )


def start_copies(
    source: SnapshotRecord,
    destinations: Mapping[str, EC2Client],
    *,
    kms_key_id: str | None = None,
    encrypt: bool = True,
) -> list[CopyStarted]:
    """CopySnapshot in each destination region (the call is made in the destination),
    with the source's Description and tags. Encrypted unless `encrypt` is False (the
    public registry needs unencrypted copies), with `kms_key_id` when given, else the
    destination's default EBS key."""
    tags = copy_tags(source)
    started: list[CopyStarted] = []
    for region, ec2 in destinations.items():
        request: dict[str, Any] = {
            "SourceRegion": source.region,
            "SourceSnapshotId": source.snapshot_id,
            "Description": source.description,
        }
        if tags:
            request["TagSpecifications"] = [{"ResourceType": "snapshot", "Tags": tags}]
        if encrypt:
            request["Encrypted"] = True
            if kms_key_id:
                request["KmsKeyId"] = kms_key_id
        try:
            with _aws(f"CopySnapshot {source.snapshot_id} to {region}"):
                answer = ec2.copy_snapshot(**request)
        except AwsFailure as failure:
            raise CopyFailed(str(failure), started) from None
        started.append(CopyStarted(region, answer["SnapshotId"]))
    return started


ProgressCallback = Callable[[CopyStarted], None]


def wait_for_copies(
    copies: Sequence[CopyStarted],
    destinations: Mapping[str, EC2Client],
    *,
    on_progress: ProgressCallback | None = None,
    delay_seconds: float = 15.0,
    max_attempts: int = 720,
    sleep: Callable[[float], None] = time.sleep,
) -> list[CopyStarted]:
    """Poll DescribeSnapshots in each region until every copy is completed or failed,
    at most `max_attempts` rounds `delay_seconds` apart (default 3 hours: a first
    cross-region copy of a large volume takes hours). Returns the last state of each;
    the caller decides what an unfinished one means."""
    current = {c.snapshot_id: c for c in copies}
    in_progress = ("pending", "recovering")
    for attempt in range(max_attempts):
        for region in dict.fromkeys(c.region for c in current.values()):
            waiting = [
                c.snapshot_id
                for c in current.values()
                if c.region == region and c.state in in_progress
            ]
            if not waiting:
                continue
            try:
                found = get_snapshots(destinations[region], region, waiting)
            except NotFound:
                # EC2 is eventually consistent: a copy just started may not be listed yet.
                continue
            for sid in waiting:
                record = found[sid]
                updated = CopyStarted(region, sid, record.state, record.progress)
                if updated != current[sid] and on_progress is not None:
                    on_progress(updated)
                current[sid] = updated
        if all(c.state not in in_progress for c in current.values()):
            break
        if attempt < max_attempts - 1:
            sleep(delay_seconds)
    return [current[c.snapshot_id] for c in copies]


# --- publish -----------------------------------------------------------------------------

INDEX_FILE: Final = "index.json"
INDEX_VERSION: Final = "1.0"


@functools.cache
def registry_schema(kind: Literal["index", "stack"]) -> dict[str, Any]:
    text = resources.files("petal").joinpath(f"schemas/registry_{kind}.schema.json").read_text()
    schema: dict[str, Any] = json.loads(text)
    return schema


def schema_problems(document: Any, kind: Literal["index", "stack"]) -> list[str]:
    """What is wrong with a registry document, one line per problem (empty: valid)."""
    validator = jsonschema.Draft202012Validator(registry_schema(kind))
    problems = []
    for problem in sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path)):
        where = "/".join(str(p) for p in problem.absolute_path) or "(top level)"
        problems.append(f"{where}: {problem.message}")
    return problems


@dataclass(frozen=True)
class Publication:
    metadata: dict[str, Any]  # snapshots/<name>.json
    index_entry: dict[str, Any]  # one element of snapshots/index.json "snapshots"
    warnings: tuple[str, ...] = ()


def _variant_description(snapshot: SnapshotRecord, described: SnapshotDescription) -> str:
    os_ = operating_system(described.os)
    arch, size = described.architecture, snapshot.size_gb
    return f"{described.seed} stack - {os_.registry_name}, {arch}, {size} GiB"


def check_publishable(
    snapshots: Sequence[SnapshotRecord],
    sharing: Mapping[str, SharingInfo],
    *,
    public: bool,
    keys: Callable[[str], KeyLookup] | None = None,
    block_public_access: Mapping[str, BlockPublicAccessState] | None = None,
) -> tuple[str, list[str]]:
    """The one fingerprint the snapshots share, and warnings; refuses snapshots that are
    not petal's, not finished, of different stacks, or whose encryption and sharing do
    not match what the registry entry will say (`public`). `keys(region)` looks up KMS
    keys for private entries: snapshots under the AWS managed key cannot be shared."""
    problems: list[str] = []
    warnings: list[str] = []
    fingerprints: dict[str, list[str]] = {}
    for snapshot in snapshots:
        name = str(snapshot.ref)
        described = snapshot.petal
        tag = snapshot.tags.get(TAG_FINGERPRINT)
        if described is None:
            problems.append(
                f"{name} has no petal Description ('petal sha256:... os=... arch=... "
                "seed=...'): only snapshots built by petal can be published"
            )
            continue
        if tag is None:
            problems.append(
                f"{name} has no {TAG_FINGERPRINT} tag: only snapshots built by petal can be "
                "published (a copy made outside petal loses its tags)"
            )
            continue
        if tag != described.fingerprint:
            problems.append(
                f"{name}: its {TAG_FINGERPRINT} tag ({tag}) and its Description "
                f"({described.fingerprint}) disagree; it was changed after the build"
            )
            continue
        if snapshot.state != "completed":
            problems.append(f"{name} is {snapshot.state}: publish it once it is completed")
        fingerprints.setdefault(described.fingerprint, []).append(name)
        info = sharing[snapshot.snapshot_id]
        if public:
            if snapshot.encrypted:
                problems.append(
                    f"{name} is encrypted, so it can never be public. Publish unencrypted "
                    "snapshots, or pass --private for an organization registry whose readers "
                    "the snapshot is shared with"
                )
            elif not info.public:
                problems.append(
                    f"{name} is not public, so registry users could not use it. Make it "
                    f"public first (petal build share {name} --public --yes-make-public) or "
                    "pass --private to publish it as shared with accounts only"
                )
            elif (block_public_access or {}).get(snapshot.region) == "block-all-sharing":
                problems.append(
                    f"{name} is marked public but block-all-sharing in {snapshot.region} "
                    "hides it from every other account"
                )
        else:
            if info.public:
                problems.append(
                    f"{name} is public but --private says it is not: leave out --private, "
                    f"or make it private first (petal build unshare {name} --public)"
                )
            if snapshot.encrypted and keys is not None and snapshot.kms_key_id is not None:
                key = keys(snapshot.region).describe_key(snapshot.kms_key_id)
                if key.aws_managed:
                    problems.append(str(_aws_managed_refusal(snapshot, key, "sharing")))
            if not info.account_ids:
                warnings.append(f"{name} is not shared with any account yet")
    if len(fingerprints) > 1:
        listing = "; ".join(f"{fp}: {', '.join(names)}" for fp, names in fingerprints.items())
        problems.append(
            "the snapshots are of different stacks (fingerprints differ); publish each "
            f"stack under its own --name: {listing}"
        )
    if problems:
        raise Refused("cannot publish:\n  " + "\n  ".join(problems))
    owners = {s.owner_id for s in snapshots}
    if len(owners) > 1:
        raise Refused(f"cannot publish: the snapshots belong to different accounts ({owners})")
    return next(iter(fingerprints)), warnings


def build_publication(
    snapshots: Sequence[SnapshotRecord],
    *,
    name: str,
    fingerprint: str,
    public: bool,
    description: str = "",
    packages: Sequence[str] = (),
    seed_url: str | None = None,
    today: date | None = None,
    existing: Mapping[str, Any] | None = None,
) -> Publication:
    """The registry documents for checked snapshots (see `check_publishable`). With
    `existing` (the current <name>.json) the entry is updated: other variants are kept,
    `created` is kept, `updated` is today."""
    day = (today or datetime.now(UTC).date()).isoformat()
    variants: list[dict[str, Any]] = []
    for snapshot in snapshots:
        described = snapshot.petal
        assert described is not None  # check_publishable refused the others
        variants.append(
            {
                "region": snapshot.region,
                "snapshot_id": snapshot.snapshot_id,
                "os": operating_system(described.os).registry_name,
                "size_gb": snapshot.size_gb,
                "description": _variant_description(snapshot, described),
                "architecture": described.architecture,
            }
        )
    created = day
    warnings: list[str] = []
    if existing is not None:
        if existing.get("fingerprint") != fingerprint:
            raise Refused(
                f"the registry already has {name} with fingerprint "
                f"{existing.get('fingerprint')}, another stack: publish this one under a new "
                "--name (e.g. with a -v2 suffix)"
            )
        if bool(existing.get("public", True)) != public:
            raise Refused(
                f"the registry's {name} says public={existing.get('public')}, these snapshots "
                f"are public={public}: one entry cannot mix public and private snapshots"
            )
        created = str(existing.get("created", day))
        new_keys = {(v["region"], v["snapshot_id"]) for v in variants}
        kept = [
            v
            for v in existing.get("snapshots", [])
            if (v.get("region"), v.get("snapshot_id")) not in new_keys
        ]
        variants = kept + variants
        description = description or str(existing.get("description", ""))
        packages = list(packages) or list(existing.get("packages", []))
        seed_url = seed_url or existing.get("seed_url")
    metadata: dict[str, Any] = {
        "name": name,
        "description": description,
        "fingerprint": fingerprint,
    }
    if seed_url:
        metadata["seed_url"] = seed_url
    metadata.update(
        {
            "snapshots": variants,
            "packages": list(packages),
            "aws_account": snapshots[0].owner_id,
            "public": public,
            "verified": False,  # only the registry's maintainers set it, after review
            "created": created,
            "updated": day,
        }
    )
    if not packages:
        warnings.append("no package list: pass --seed FILE to record the seed's packages")
    index_entry: dict[str, Any] = {
        "name": name,
        "fingerprint": fingerprint,
        "metadata_url": f"{name}.json",  # relative to index.json, as the registry resolves it
    }
    # what `petal registry snapshots list` shows and `search` searches, without the
    # stack document
    if description:
        index_entry["description"] = description
    if packages:
        index_entry["packages"] = list(packages)
    problems = schema_problems(metadata, "stack") + schema_problems(
        _index_with([index_entry]), "index"
    )
    if problems:
        raise SharingError(
            "the generated registry documents are invalid (a petal bug, please report it): "
            + "; ".join(problems)
        )
    return Publication(metadata, index_entry, tuple(warnings))


def _index_with(entries: list[dict[str, Any]]) -> dict[str, Any]:
    return {"version": INDEX_VERSION, "snapshots": entries}


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as failure:
        raise InvalidArgument(f"--out: {path} cannot be read as JSON: {failure}") from None


def read_existing_metadata(out_dir: Path, name: str) -> dict[str, Any] | None:
    path = out_dir / f"{name}.json"
    if not path.exists():
        return None
    document = _read_json(path)
    problems = schema_problems(document, "stack")
    if problems:
        raise InvalidArgument(
            f"--out: {path} exists but is not valid registry metadata ({'; '.join(problems)}); "
            "fix or remove it"
        )
    result: dict[str, Any] = document
    return result


def updated_index(out_dir: Path, entry: Mapping[str, Any]) -> dict[str, Any]:
    """index.json with `entry` added, or replacing the entry of the same name."""
    path = out_dir / INDEX_FILE
    index: dict[str, Any] = _index_with([]) if not path.exists() else _read_json(path)
    problems = schema_problems(index, "index")
    if problems:
        raise InvalidArgument(
            f"--out: {path} is not a valid registry index ({'; '.join(problems)}); fix it first"
        )
    entries: list[dict[str, Any]] = []
    replaced = False
    for current in index["snapshots"]:
        if current.get("name") == entry["name"]:
            if current.get("fingerprint") != entry["fingerprint"]:
                raise Refused(
                    f"{path} lists {entry['name']} with fingerprint {current.get('fingerprint')}, "
                    "another stack: publish this one under a new --name"
                )
            entries.append({**current, **entry})
            replaced = True
            continue
        if current.get("fingerprint") == entry["fingerprint"]:
            # petal.registry refuses an index with two stacks of one fingerprint
            raise Refused(
                f"{path} already lists this stack as {current.get('name')} (same "
                f"fingerprint): publish under --name {current.get('name')} to add snapshots "
                "to it, or remove that entry first"
            )
        entries.append(current)
    if not replaced:
        entries.append(dict(entry))
    index["snapshots"] = entries
    return index


def _write_json(path: Path, document: Any) -> None:
    """Write through a temporary file so an interrupted publish never leaves half a
    registry file behind."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    temporary.replace(path)


def write_publication(out_dir: Path, publication: Publication) -> list[Path]:
    """Write <name>.json and the updated index.json into `out_dir` (a checkout's
    snapshots/ directory); returns the files written. Nothing is written when the index
    refuses the entry."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as failure:
        raise InvalidArgument(f"--out: cannot create {out_dir}: {failure.strerror}") from None
    index = updated_index(out_dir, publication.index_entry)
    metadata_path = out_dir / f"{publication.metadata['name']}.json"
    index_path = out_dir / INDEX_FILE
    try:
        _write_json(metadata_path, publication.metadata)
        _write_json(index_path, index)
    except OSError as failure:
        raise SharingError(f"--out: cannot write into {out_dir}: {failure.strerror}") from None
    return [metadata_path, index_path]
