"""The Description petal writes on every snapshot it builds, and reads back.

Tags are invisible to other accounts even when a snapshot is shared with them; the
Description is not. So what identifies a petal snapshot (fingerprint, OS, architecture,
seed) is also written here, in one fixed format that the pipeline writes with
`format_description` and the resolver parses with `parse_description`:

    petal sha256:<64 hex> os=<ParallelCluster os> arch=<x86_64|arm64> seed=<name>
    ... seed=<name> parent=snap-<hex>

` parent=` ends it when the snapshot was built on a parent (`petal build --from`): its
lineage, visible to the accounts it is shared with. A parser without it (petal before
incremental builds) takes such a Description for none of petal's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from petal.identifiers import FINGERPRINT, SNAPSHOT_ID
from petal.platforms import ARCHITECTURES, Architecture, UnknownOperatingSystem, operating_system

# EC2 limits a snapshot's Description to 255 characters; the longest seed name (63)
# keeps the whole line well under it.
MAX_LENGTH: Final = 255
_SEED_NAME: Final = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_DESCRIPTION: Final = re.compile(
    r"^petal (?P<fingerprint>sha256:[0-9a-f]{64}) os=(?P<os>[a-z0-9]+) "
    r"arch=(?P<arch>x86_64|arm64) seed=(?P<seed>[a-z0-9][a-z0-9-]{0,62})"
    rf"(?: parent=(?P<parent>{SNAPSHOT_ID.pattern.strip('^$')}))?$"
)


class DescriptionError(ValueError):
    """A value that cannot go into a snapshot Description; the message names it."""


@dataclass(frozen=True)
class SnapshotDescription:
    fingerprint: str
    os: str  # ParallelCluster name, e.g. alinux2023
    architecture: Architecture
    seed: str
    parent: str | None = None  # the snapshot it was built on, if any

    def names(self, fingerprint: str, os_name: str, architecture: str) -> bool:
        """This Description is of that fingerprint, OS (either spelling) and architecture."""
        return (self.fingerprint, self.os, self.architecture) == (
            fingerprint,
            _os_name(os_name),
            architecture,
        )

    def summary(self) -> str:
        return f"{self.fingerprint} ({self.os}, {self.architecture})"


def _os_name(os_name: str) -> str | None:
    try:
        return operating_system(os_name).name
    except UnknownOperatingSystem:
        return None


def format_description(
    fingerprint: str, os_name: str, architecture: str, seed_name: str, parent: str | None = None
) -> str:
    """The Description for a petal snapshot. `os_name` may be either OS spelling; the
    ParallelCluster name is written, so every reader compares like with like."""
    if not FINGERPRINT.match(fingerprint):
        raise DescriptionError(
            f"fingerprint {fingerprint!r} is not valid: use sha256: followed by 64 hex digits"
        )
    try:
        os_ = operating_system(os_name)
    except UnknownOperatingSystem as error:
        raise DescriptionError(str(error)) from None
    if architecture not in ARCHITECTURES:
        raise DescriptionError(
            f"architecture {architecture!r} is not valid: use one of {', '.join(ARCHITECTURES)}"
        )
    if not _SEED_NAME.match(seed_name):
        raise DescriptionError(
            f"seed name {seed_name!r} is not valid: lowercase letters, digits and '-', "
            "at most 63 characters"
        )
    if parent is not None and not SNAPSHOT_ID.match(parent):
        raise DescriptionError(f"parent {parent!r} is not a snapshot id (snap-...)")
    lineage = f" parent={parent}" if parent else ""
    return f"petal {fingerprint} os={os_.name} arch={architecture} seed={seed_name}{lineage}"


def parse_description(text: str | None) -> SnapshotDescription | None:
    """What a petal Description says, or None when the text is not one.

    Strict on purpose: the text comes from snapshots owned by other accounts, so
    anything but the exact format (an unknown OS included) is not a petal snapshot.
    """
    if not text or len(text) > MAX_LENGTH:
        return None
    match = _DESCRIPTION.match(text)
    if match is None:
        return None
    try:
        os_ = operating_system(match["os"])
    except UnknownOperatingSystem:
        return None
    if os_.name != match["os"]:
        return None  # format_description always writes the ParallelCluster name
    arch: Architecture = "arm64" if match["arch"] == "arm64" else "x86_64"
    return SnapshotDescription(
        match["fingerprint"], os_.name, arch, match["seed"], match["parent"] or None
    )


def description_filter(fingerprint: str, os_name: str, architecture: str) -> str:
    """A DescribeSnapshots `description` filter value (wildcards allowed) matching every
    seed name for this fingerprint, OS and architecture; results still go through
    `parse_description`, which is the real check."""
    os_ = operating_system(os_name)
    return f"petal {fingerprint} os={os_.name} arch={architecture} seed=*"
