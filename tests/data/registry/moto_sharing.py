"""Make moto's DescribeSnapshots behave like EC2 across accounts, for tests.

moto 5.2 keeps every account's snapshots apart and ignores `OwnerIds`: a snapshot that
another account shares with you is invisible, and `OwnerIds=["self"]` is not applied.
Real EC2 (API reference, DescribeSnapshots) lists your own snapshots, snapshots other
accounts shared with you (createVolumePermission) and public ones; `OwnerIds` narrows
that by owner ("self" is the caller), `SnapshotIds` of a snapshot you cannot see fail
with InvalidSnapshot.NotFound, and tags of another account's snapshot are not shown.

`install(monkeypatch)` swaps moto's DescribeSnapshots response handler for one that
does exactly that over moto's own backends. Create a snapshot in another account by
setting MOTO_ACCOUNT_ID while creating it (moto's documented multi-account switch;
`in_account` below), then share it with modify_snapshot_attribute.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from moto.core.responses import ActionResult
from moto.ec2.exceptions import InvalidSnapshotIdError
from moto.ec2.models import ec2_backends
from moto.ec2.responses.elastic_block_store import ElasticBlockStore
from moto.ec2.utils import generic_filter


@contextmanager
def in_account(account_id: str) -> Iterator[None]:
    """Requests made inside run as `account_id` (moto reads MOTO_ACCOUNT_ID per request)."""
    previous = os.environ.get("MOTO_ACCOUNT_ID")
    os.environ["MOTO_ACCOUNT_ID"] = account_id
    try:
        yield
    finally:
        if previous is None:
            del os.environ["MOTO_ACCOUNT_ID"]
        else:
            os.environ["MOTO_ACCOUNT_ID"] = previous


def _foreign_view(snapshot: Any) -> Any:
    view = copy.copy(snapshot)
    view.get_tags = list  # another account's tags are invisible
    return view


def _visible(caller: str, region: str) -> list[Any]:
    found = []
    for account, backend_region, backend in ec2_backends.iter_backends():
        if backend_region != region:
            continue
        for snapshot in backend.snapshots.values():  # type: ignore[attr-defined]
            if account == caller:
                found.append(snapshot)
            elif (
                caller in snapshot.create_volume_permission_userids
                or "all" in snapshot.create_volume_permission_groups
            ):
                found.append(_foreign_view(snapshot))
    return found


def describe_snapshots(self: ElasticBlockStore) -> ActionResult:
    filters = self._filters_from_querystring()
    snapshot_ids = self._get_param("SnapshotIds", [])
    owner_ids = self._get_param("OwnerIds", [])
    caller = self.current_account
    snapshots = _visible(caller, self.region)
    if snapshot_ids:
        visible_ids = {s.id for s in snapshots}
        if any(i not in visible_ids for i in snapshot_ids):
            raise InvalidSnapshotIdError()
        snapshots = [s for s in snapshots if s.id in snapshot_ids]
    if owner_ids:
        owners = {caller if o == "self" else o for o in owner_ids}
        snapshots = [s for s in snapshots if s.owner_id in owners]
    if filters:
        snapshots = generic_filter(filters, snapshots)
    return ActionResult({"Snapshots": snapshots})


def install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ElasticBlockStore, "describe_snapshots", describe_snapshots)
