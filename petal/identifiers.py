"""The shapes and limits of AWS identifiers and petal's own, shared by every check.

The JSON Schemas in petal/schemas/ spell the same patterns (a schema cannot import
Python); tests/unit/test_identifiers.py keeps the two the same.
"""

from __future__ import annotations

import re
from typing import Final

ACCOUNT_ID: Final = re.compile(r"^[0-9]{12}$")
# Commercial, GovCloud and ISO partitions: us-east-1, us-gov-west-1, us-iso-east-1.
REGION: Final = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-[0-9]$")
# A region followed by its zone letter (us-east-1a), or a Local Zone (us-west-2-lax-1a).
AVAILABILITY_ZONE: Final = re.compile(
    r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-[0-9][a-z](-[a-z0-9-]+)?$"
)
SNAPSHOT_ID: Final = re.compile(r"^snap-([0-9a-f]{8}|[0-9a-f]{17})$")
SUBNET_ID: Final = re.compile(r"^subnet-([0-9a-f]{8}|[0-9a-f]{17})$")
FINGERPRINT: Final = re.compile(r"^sha256:[0-9a-f]{64}$")

# gp3 volumes: 1 GiB to 16 TiB, at most 500 IOPS per GiB.
MAX_VOLUME_GB: Final = 16384
GP3_IOPS_PER_GIB: Final = 500
