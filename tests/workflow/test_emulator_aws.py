"""Calls moto lacks that petal makes: the emulator answers them as AWS does."""

from __future__ import annotations

from petal.local.emulator import LocalAws
from petal.sharing.public import get_block_public_access_state


def test_snapshot_block_public_access_reads_as_in_an_account_that_never_set_it(
    aws: LocalAws,
) -> None:
    ec2 = aws.client("ec2")
    assert ec2.get_snapshot_block_public_access_state()["State"] == "unblocked"
    assert get_block_public_access_state(ec2) == "unblocked"
