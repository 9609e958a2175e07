"""Sharing a snapshot with accounts, and taking it back."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from petal.aws.ec2_snapshots import share_snapshot
from petal.sharing.kms import KeyInfo, KeyLookup, key_of, key_policy_statement
from petal.sharing.snapshots import (
    SharingInfo,
    SnapshotRecord,
    aws_action,
    get_snapshot,
    sharing_of,
    volume_permissions,
)

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client


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
        key = key_of(snapshot, keys, "sharing")
        statement = key_policy_statement(key, account_ids)
        if key.state != "Enabled":
            warnings.append(
                f"the key {key.arn} is {key.state}: nobody can create volumes from the "
                "snapshot until it is Enabled"
            )
    before, _ = volume_permissions(ec2, region, snapshot_id)
    added = tuple(a for a in account_ids if a not in before)
    if added:
        with aws_action(f"ModifySnapshotAttribute (share {snapshot_id} in {region})"):
            share_snapshot(ec2, snapshot_id, added)
    return ShareResult(
        snapshot=snapshot,
        added=added,
        already=tuple(a for a in account_ids if a in before),
        sharing=sharing_of(ec2, snapshot),
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
    before_accounts, before_public = volume_permissions(ec2, region, snapshot_id)
    removed = tuple(a for a in account_ids if a in before_accounts)
    if removed:
        with aws_action(f"ModifySnapshotAttribute (unshare {snapshot_id} in {region})"):
            ec2.modify_snapshot_attribute(
                SnapshotId=snapshot_id,
                Attribute="createVolumePermission",
                OperationType="remove",
                UserIds=list(removed),
            )
    public_removed = public and before_public
    if public_removed:
        with aws_action(f"ModifySnapshotAttribute (make {snapshot_id} private in {region})"):
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
        sharing=sharing_of(ec2, snapshot),
    )
