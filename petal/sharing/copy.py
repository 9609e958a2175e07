"""Copying a snapshot to other regions with its tags and description."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from petal.deployment_contract import (
    MANAGED_VALUE,
    ROLE_VOLUME,
    TAG_ARCH,
    TAG_FINGERPRINT,
    TAG_MANAGED,
    TAG_OS,
    TAG_ROLE,
    TAG_SEED,
)
from petal.sharing.errors import AwsFailure, NotFound, Refused
from petal.sharing.snapshots import SnapshotRecord, aws_action, get_snapshots

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client
    from mypy_boto3_ec2.type_defs import TagTypeDef


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
                TAG_MANAGED: MANAGED_VALUE,  # so that `petal build list` finds the copy
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
            with aws_action(f"GetEbsEncryptionByDefault in {region}"):
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
            with aws_action(f"CopySnapshot {source.snapshot_id} to {region}"):
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
