"""The fingerprint: stable under everything that does not change the volume's bytes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from petal.seed.fingerprint import fingerprint
from petal.seed.loading import load_seed, parse_seed

REPO = Path(__file__).resolve().parents[2]
GOLDEN = REPO / "tests/data/fingerprints.json"

BASE = """\
name: base
description: the base stack
software:
  spack_version: v0.23.0
  compilers: [gcc@12.3.0]
  packages:
    - openmpi@4.1.6 fabrics=ofi +legacylaunchers
    - samtools@1.17
    - bwa@0.7.17
  modules: lmod
os: alinux2023
architecture: x86_64
volume: {size_gb: 500}
cluster: {region: us-east-1}
"""


def fp(text: str) -> str:
    return fingerprint(parse_seed(text))


def test_golden_vectors() -> None:
    """Changing these orphans every snapshot ever built: see docs/SEEDS.md first."""
    vectors = json.loads(GOLDEN.read_text())
    assert len(vectors) >= 4
    for file, expected in vectors.items():
        assert fingerprint(load_seed(REPO / file)) == expected, file


def test_format() -> None:
    value = fp(BASE)
    assert value.startswith("sha256:")
    assert len(value) == len("sha256:") + 64
    int(value.removeprefix("sha256:"), 16)


SAME = {
    "key order": BASE.replace(
        "name: base\ndescription: the base stack\n", "description: the base stack\nname: base\n"
    ),
    "comments and blank lines": "# a comment\n\n"
    + BASE.replace("  modules: lmod", "  modules: lmod  # lmod"),
    "flow style": BASE.replace(
        "  packages:\n    - openmpi@4.1.6 fabrics=ofi +legacylaunchers\n    - samtools@1.17\n    - bwa@0.7.17\n",
        "  packages: [openmpi@4.1.6 fabrics=ofi +legacylaunchers, samtools@1.17, bwa@0.7.17]\n",
    ),
    "package order": BASE.replace(
        "    - samtools@1.17\n    - bwa@0.7.17\n", "    - bwa@0.7.17\n    - samtools@1.17\n"
    ),
    "duplicate entries": BASE.replace("    - bwa@0.7.17\n", "    - bwa@0.7.17\n    - bwa@0.7.17\n"),
    "variant order and spacing": BASE.replace(
        "openmpi@4.1.6 fabrics=ofi +legacylaunchers", "openmpi@4.1.6+legacylaunchers  fabrics=ofi"
    ),
    "name": BASE.replace("name: base", "name: other"),
    "description": BASE.replace("the base stack", "something else"),
    "os": BASE.replace("os: alinux2023", "os: ubuntu2404"),
    "architecture": BASE.replace("architecture: x86_64", "architecture: arm64"),
    "volume size": BASE.replace("size_gb: 500", "size_gb: 800"),
    "cluster": BASE.replace("region: us-east-1", "region: eu-west-1"),
    "defaults spelled out": BASE.replace(
        "  modules: lmod\n", "  modules: lmod\n  official_buildcache: true\n  mirrors: []\n"
    ),
}


@pytest.mark.parametrize("change", SAME, ids=str)
def test_unchanged_by(change: str) -> None:
    assert fp(SAME[change]) == fp(BASE)


DIFFERENT = {
    "spack version": BASE.replace("v0.23.0", "v0.23.1"),
    "compiler": BASE.replace("gcc@12.3.0", "gcc@13.2.0"),
    "no compiler": BASE.replace("  compilers: [gcc@12.3.0]\n", ""),
    "package version": BASE.replace("samtools@1.17", "samtools@1.18"),
    "package variant": BASE.replace("fabrics=ofi", "fabrics=ucx"),
    "package added": BASE.replace("    - bwa@0.7.17\n", "    - bwa@0.7.17\n    - gatk@4.3.0\n"),
    "package removed": BASE.replace("    - bwa@0.7.17\n", ""),
    "module system": BASE.replace("modules: lmod", "modules: tcl"),
    "extra mirror": BASE.replace(
        "  modules: lmod\n", "  modules: lmod\n  mirrors: [{name: c, url: 's3://b/c'}]\n"
    ),
    "no official buildcache": BASE.replace(
        "  modules: lmod\n", "  modules: lmod\n  official_buildcache: false\n"
    ),
}


@pytest.mark.parametrize("change", DIFFERENT, ids=str)
def test_changed_by(change: str) -> None:
    assert fp(DIFFERENT[change]) != fp(BASE)


def test_all_different_changes_differ_from_each_other() -> None:
    values = [fp(text) for text in DIFFERENT.values()]
    assert len(set(values)) == len(values)


def test_the_documented_algorithm_by_hand() -> None:
    """docs/SEEDS.md: sha256 over compact, key-sorted JSON of the canonical form."""
    import hashlib

    canonical = (
        '{"compilers":[],"format":2,"mirrors":["https://binaries.spack.io/releases/v0.23"],'
        '"modules":"tcl","packages":["bzip2@1.0.8","xz@5.4.6","zlib@1.3.1"],'
        '"spack_version":"v0.23.0"}'
    )
    expected = "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()
    vector = REPO / "tests/data/fingerprint_vectors/workload-basic.yaml"
    assert fingerprint(load_seed(vector)) == expected
