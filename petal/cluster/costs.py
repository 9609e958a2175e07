"""What warm volumes and kept snapshots cost, as petal prints it before it spends.

Prices are us-east-1's, approximate, and change: every figure printed says so and
names the price it used (../shared/notes/aws-facts.md, "Found since"; docs/VOLUMES.md).
Other regions cost somewhat more; https://aws.amazon.com/ebs/pricing/ has the current ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

# EBS Provisioned Rate for Volume Initialization: per GiB of snapshot data (the price at
# 300 MiB/s, from a secondary source; petal uses it at every rate).
INITIALIZATION_PRICE_PER_GIB: Final = 0.0036
# Fast Snapshot Restore: per snapshot, per Availability Zone, per hour it is enabled
# (billed by the hour, at least one).
FSR_PRICE_PER_HOUR: Final = 0.75
# At most this many snapshots per region may have Fast Snapshot Restore (a quota).
FSR_SNAPSHOTS_PER_REGION: Final = 5
# Snapshot storage, standard tier, per GB-month.
SNAPSHOT_PRICE_PER_GB_MONTH: Final = 0.05
HOURS_PER_MONTH: Final = 730
DEFAULT_STARTS_PER_MONTH: Final = 4

PRICE_NOTE: Final = "approximate us-east-1 prices; see https://aws.amazon.com/ebs/pricing/"


def dollars(amount: float) -> str:
    return f"${amount:,.2f}"


def price(amount: float) -> str:
    """A unit price as AWS lists it: $0.0036, $0.75."""
    return f"${amount:g}"


def duration(seconds: float) -> str:
    minutes = round(seconds / 60)
    if minutes < 1:
        return "under a minute"
    if minutes < 90:
        return f"{minutes} min"
    return f"{minutes / 60:.1f} h"


@dataclass(frozen=True)
class Initialization:
    """Creating a volume from a snapshot at a provisioned initialization rate.

    The snapshot's size is its volume's size, an upper bound of the data it holds."""

    size_gib: int
    rate: int  # MiB/s

    @property
    def seconds(self) -> float:
        return self.size_gib * 1024 / self.rate

    @property
    def cost(self) -> float:
        return self.size_gib * INITIALIZATION_PRICE_PER_GIB

    def lines(self) -> list[str]:
        return [
            f"Initialization at {self.rate} MiB/s of the {self.size_gib} GiB snapshot: "
            f"up to {duration(self.seconds)}, up to {dollars(self.cost)} "
            f"({price(INITIALIZATION_PRICE_PER_GIB)}/GiB; {PRICE_NOTE})",
        ]


def fsr_hourly(zones: int) -> float:
    return FSR_PRICE_PER_HOUR * zones


def fsr_credits(size_gib: int) -> int:
    """Volumes an FSR-enabled snapshot can create per hour and zone at full performance
    (the credit bucket's size: MAX(1, MIN(10, 1024 / snapshot GiB)))."""
    return max(1, min(10, 1024 // max(size_gib, 1)))


@dataclass(frozen=True)
class WarmChoice:
    """Initialization rate vs Fast Snapshot Restore for `starts` cluster starts a month."""

    size_gib: int
    rate: int
    starts: int

    @property
    def rate_cost(self) -> float:
        return self.starts * Initialization(self.size_gib, self.rate).cost

    @property
    def fsr_month_cost(self) -> float:
        # Kept enabled in the head node's zone: clusters can then start at any time.
        return fsr_hourly(1) * HOURS_PER_MONTH

    @property
    def rate_is_cheaper(self) -> bool:
        return self.rate_cost <= self.fsr_month_cost

    def lines(self) -> list[str]:
        rate = f"--initialize {self.rate} at each start: {dollars(self.rate_cost)} a month"
        fsr = (
            f"Fast Snapshot Restore kept enabled in one zone: {dollars(self.fsr_month_cost)} "
            f"a month ({price(FSR_PRICE_PER_HOUR)}/h)"
        )
        cheaper = "the initialization rate" if self.rate_is_cheaper else "Fast Snapshot Restore"
        return [
            f"For {self.starts} cluster start(s) a month (--starts): {rate}; {fsr}. "
            f"Cheaper: {cheaper} ({PRICE_NOTE}).",
        ]


def snapshot_storage(size_gib: int) -> float:
    """Per month, at most: an incremental snapshot stores only the blocks that changed."""
    return size_gib * SNAPSHOT_PRICE_PER_GB_MONTH
