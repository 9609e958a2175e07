"""The KMS key of an encrypted snapshot: what sharing it needs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from petal.sharing.errors import Refused
from petal.sharing.snapshots import SnapshotRecord, aws_action

if TYPE_CHECKING:
    pass

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
        with aws_action(f"KMS DescribeKey {key_id}"):
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


def aws_managed_refusal(snapshot: SnapshotRecord, key: KeyInfo, action: str) -> Refused:
    return Refused(
        f"{snapshot.snapshot_id} is encrypted with the AWS managed key aws/ebs ({key.arn}), "
        f"so AWS does not allow {action} it: that key's policy cannot grant other accounts. "
        "Re-encrypt a copy with a customer managed key and share the copy:\n"
        f"  petal build copy {snapshot.snapshot_id} --from {snapshot.region} "
        f"--to {snapshot.region} --kms-key alias/YOUR-KEY"
    )


def key_of(snapshot: SnapshotRecord, keys: KeyLookup, action: str) -> KeyInfo:
    if snapshot.kms_key_id is None:
        raise Refused(
            f"{snapshot.snapshot_id} is encrypted but AWS did not say with which KMS key, so "
            f"petal cannot tell whether {action} it is possible"
        )
    key = keys.describe_key(snapshot.kms_key_id)
    if key.aws_managed:
        raise aws_managed_refusal(snapshot, key, action)
    return key
