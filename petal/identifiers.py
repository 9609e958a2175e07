"""The shapes and limits of AWS identifiers and petal's own, shared by every check.

The JSON Schemas in petal/schemas/ spell the same patterns (a schema cannot import
Python); tests/unit/test_identifiers.py keeps the two the same.
"""

from __future__ import annotations

import re
from typing import Final


class Shape:
    """A `^...$` pattern that only ever matches a whole value.

    With `re.match`, `$` also matches before a final newline: "snap-0123abcd\\n" would
    pass and then break the tag, command or file it is written into. Every method here
    matches the whole value, so no caller can get this wrong; `pattern` is the text the
    JSON Schemas spell.
    """

    __slots__ = ("_regex", "pattern")

    def __init__(self, pattern: str) -> None:
        self.pattern: Final = pattern
        self._regex = re.compile(pattern)

    def fullmatch(self, value: str) -> re.Match[str] | None:
        return self._regex.fullmatch(value)

    # `match` and `search` are what re.Pattern callers write; both mean the whole value.
    match = fullmatch
    search = fullmatch

    def __repr__(self) -> str:
        return f"Shape({self.pattern!r})"


ACCOUNT_ID: Final = Shape(r"^[0-9]{12}$")
# Commercial, GovCloud and ISO partitions: us-east-1, us-gov-west-1, us-iso-east-1.
REGION: Final = Shape(r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-[0-9]$")
# A region followed by its zone letter (us-east-1a), or a Local Zone (us-west-2-lax-1a).
AVAILABILITY_ZONE: Final = Shape(r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-[0-9][a-z](-[a-z0-9-]+)?$")
SNAPSHOT_ID: Final = Shape(r"^snap-([0-9a-f]{8}|[0-9a-f]{17})$")
SUBNET_ID: Final = Shape(r"^subnet-([0-9a-f]{8}|[0-9a-f]{17})$")
IMAGE_ID: Final = Shape(r"^ami-([0-9a-f]{8}|[0-9a-f]{17})$")
FINGERPRINT: Final = Shape(r"^sha256:[0-9a-f]{64}$")
# A build id names the execution, the record and tags: "id\n" would break them all.
BUILD_ID: Final = Shape(r"^[A-Za-z0-9][A-Za-z0-9-]{0,63}$")

# gp3 volumes: 1 GiB to 16 TiB, at most 500 IOPS per GiB.
MAX_VOLUME_GB: Final = 16384
GP3_IOPS_PER_GIB: Final = 500
