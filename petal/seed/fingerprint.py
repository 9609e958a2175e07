"""The fingerprint of a seed: how a snapshot of the same software is found again.

It covers exactly what decides the bytes on the volume (docs/SEEDS.md, "Fingerprint").
Changing what goes in, or how, orphans every snapshot ever built: bump FORMAT_VERSION
and update the golden vectors in tests/data/fingerprints.json together.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Final

from petal.seed.model import Seed

# 2: versions are exact, and the compiler and target are requirements; the
# same seed builds other bytes than under format 1, whose snapshots must not match.
FORMAT_VERSION: Final = 2
PREFIX: Final = "sha256:"


def canonical_form(seed: Seed) -> dict[str, Any]:
    """The normalised content that is hashed.

    Specs are already canonical (petal.seed.spack_spec) and de-duplicated by the seed model;
    sorting them makes list order irrelevant. Mirror order is kept: Spack tries mirrors
    in order, so it decides which binaries land on the volume. Mirror names are not
    included, only where the binaries come from.
    """
    software = seed.software
    return {
        "format": FORMAT_VERSION,
        "spack_version": software.spack_version,
        "compilers": sorted(software.compilers),
        "packages": sorted(software.packages),
        "mirrors": [mirror.url.rstrip("/") for mirror in software.effective_mirrors],
        "modules": software.modules,
    }


def fingerprint(seed: Seed) -> str:
    encoded = json.dumps(canonical_form(seed), sort_keys=True, separators=(",", ":"))
    return PREFIX + hashlib.sha256(encoded.encode("ascii")).hexdigest()
