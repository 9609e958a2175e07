"""Making a snapshot public, within EBS's block public access."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal

from botocore.exceptions import BotoCoreError, ClientError

from petal.sharing.errors import AwsFailure, Refused
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
    _, public = volume_permissions(ec2, region, snapshot_id)
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
            with aws_action(f"ModifySnapshotAttribute (make {snapshot_id} public in {region})"):
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
    return PublicResult(snapshot, not public, state, sharing_of(ec2, snapshot), tuple(warnings))
