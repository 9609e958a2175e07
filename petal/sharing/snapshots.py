"""Reading petal's snapshots and whom each is shared with."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from petal.aws.errors import error_code
from petal.errors import PetalStepError
from petal.sharing.errors import AwsFailure, NotFound
from petal.sharing.inputs import SnapshotRef
from petal.snapshot_description import SnapshotDescription, parse_description

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client
    from mypy_boto3_ec2.type_defs import SnapshotTypeDef


@contextmanager
def aws_action(action: str) -> Iterator[None]:
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
            with aws_action(f"DescribeSnapshots in {region}"):
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


def volume_permissions(
    ec2: EC2Client, region: str, snapshot_id: str
) -> tuple[tuple[str, ...], bool]:
    with aws_action(f"DescribeSnapshotAttribute {snapshot_id} in {region}"):
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


def sharing_of(ec2: EC2Client, snapshot: SnapshotRecord) -> SharingInfo:
    accounts, public = volume_permissions(ec2, snapshot.region, snapshot.snapshot_id)
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
    return {sid: sharing_of(ec2_client, snapshots[sid]) for sid in dict.fromkeys(snapshot_ids)}
