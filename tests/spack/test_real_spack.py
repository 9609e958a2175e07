"""Every seed under seeds/ (the examples and seeds/testing/), concretized by the real
Spack v0.23.0 offline; the properties a build needs are asserted from its spack.lock, one
test each, so a failure names the property (see petal.seed.spack_check.lock_properties).
The arm64 seed is solved for its target on this x86_64 machine
(petal.seed.spack_check.cross_environment). Solved locks are cached (~/.cache/petal):
an unchanged seed is not solved again; `benchmarks/spack_concretize.py` solves every seed
without the cache and prints the CPU each takes.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from petal.seed import spack_check
from petal.seed.loading import load_seed
from petal.seed.spack_environment import MPI_REQUIREMENTS
from petal.seed.spack_spec import parse_spec

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.spack


@pytest.fixture(autouse=True)
def _in_the_repository(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)  # the seeds and data are named relative to it


TEST_SEED = "seeds/testing/workload-basic.yaml"
SEEDS = sorted(str(p.relative_to(REPO)) for p in (REPO / "seeds").glob("**/*.yaml"))
# The MPI each seed's packages use, named by the seed or (machine-learning: py-torch
# +distributed) pulled in by a package's default variants.
MPI_OF_SEED = {
    "seeds/bioinformatics.yaml": "openmpi",
    "seeds/chemistry.yaml": "openmpi",
    "seeds/machine-learning.yaml": "openmpi",
    "seeds/testing/mpi-mpich.yaml": "mpich",
    "seeds/testing/mpi-intel.yaml": "intel-oneapi-mpi",
}

_results: dict[str, spack_check.CheckResult] = {}


def _checked(spack: spack_check.Spack, file: str) -> spack_check.CheckResult:
    if file not in _results:
        _results[file] = spack_check.check_seed(load_seed(file), file, spack)
    return _results[file]


@pytest.mark.parametrize("file", SEEDS)
def test_the_seed_concretizes(spack: spack_check.Spack, file: str) -> None:
    result = _checked(spack, file)
    assert result.lock is not None, "\n".join(p.format(file) for p in result.problems)


@pytest.mark.parametrize("prop", spack_check.PROPERTIES)
@pytest.mark.parametrize("file", SEEDS)
def test_the_lock_has_the_property(spack: spack_check.Spack, file: str, prop: str) -> None:
    result = _checked(spack, file)
    assert result.lock is not None and result.environment is not None, "did not concretize"
    found = spack_check.lock_properties(load_seed(file), result.lock, result.environment)
    assert found[prop] == []


def _lock(spack: spack_check.Spack, file: str) -> dict[str, dict[str, Any]]:
    result = _checked(spack, file)
    assert result.lock is not None, "did not concretize"
    return dict(result.lock["concrete_specs"])


@pytest.mark.parametrize(("file", "mpi"), sorted(MPI_OF_SEED.items()))
def test_the_mpi_is_the_one_wired_to_slurm_and_efa(
    spack: spack_check.Spack, file: str, mpi: str
) -> None:
    """Not vacuous: the MPI property holds because the wired MPI is there (the only MPI,
    the one packages use), on the image's Slurm and EFA libfabric."""
    nodes = _lock(spack, file)
    providers = {
        nodes[d["hash"]]["name"]
        for node in nodes.values()
        for d in node.get("dependencies", [])
        if "mpi" in d["parameters"].get("virtuals", [])
    }
    assert providers <= {mpi}
    assert {n["name"] for n in nodes.values() if n["name"] in MPI_REQUIREMENTS} == {mpi}
    externals = {n["name"]: n["external"]["path"] for n in nodes.values() if "external" in n}
    assert externals.get("libfabric") == "/opt/amazon/efa"
    if mpi != "intel-oneapi-mpi":  # Intel's mpirun needs no Slurm library
        assert externals.get("slurm") == "/opt/slurm"


@pytest.mark.parametrize("file", SEEDS)
def test_a_seeds_version_is_exactly_the_version_built(spack: spack_check.Spack, file: str) -> None:
    """`@4.3.0` is a range in Spack (it took 4.3.0.0): a seed's version is rendered `@=`,
    and the lock holds that very version of each package the seed names."""
    nodes = _lock(spack, file)
    versions: dict[str, set[str]] = {}
    for node in nodes.values():
        versions.setdefault(node["name"], set()).add(str(node["version"]))
    asked = {
        node.name: node.versions
        for spec in load_seed(file).software.packages
        for node in parse_spec(spec).nodes()
        if node.versions and ":" not in node.versions and "," not in node.versions
    }
    assert asked
    assert {name: versions.get(name) for name in asked} == {
        name: {version.lstrip("=")} for name, version in asked.items()
    }


def test_the_arm64_seed_is_solved_for_graviton(spack: spack_check.Spack) -> None:
    nodes = _lock(spack, "seeds/chemistry.yaml")
    built = [n for n in nodes.values() if "external" not in n]
    assert {n["arch"]["target"]["name"] for n in built} == {"neoverse_n1"}


def test_a_build_tool_may_be_built_twice(spack: spack_check.Spack) -> None:
    """py-pandas@2.1 and py-scikit-learn@1.3 build with py-cython@:2, py-scipy@1.13 and
    py-numpy with py-cython@3: Spack's `duplicates: strategy: minimal` builds both, even
    with unify: true; nothing links or loads them (one_version accepts them)."""
    nodes = _lock(spack, "seeds/machine-learning.yaml")
    cythons = {h for h, n in nodes.items() if n["name"] == "py-cython"}
    assert len(cythons) == 2
    edges = [
        d["parameters"]["deptypes"]
        for n in nodes.values()
        for d in n.get("dependencies", [])
        if d["hash"] in cythons
    ]
    assert edges and all(deptypes == ["build"] for deptypes in edges)


def test_install_fake_of_the_test_seed(spack: spack_check.Spack, tmp_path: Path) -> None:
    seed = load_seed(TEST_SEED)
    result = spack_check.check_seed(seed, TEST_SEED, spack, work=tmp_path, install=True)
    assert result.installed, "\n".join(p.format(TEST_SEED) for p in result.problems)
    installed = {p.name.rsplit("-", 1)[0] for p in (tmp_path / "opt").glob("*/*/*")}
    assert {"zlib-1.3.1", "bzip2-1.0.8", "xz-5.4.6"} <= installed
    modules = {p.parent.name for p in (tmp_path / "modules").rglob("*") if p.is_file()}
    assert {"zlib", "bzip2", "xz"} <= modules


def test_spack_refusal_is_reported_in_petals_format(spack: spack_check.Spack) -> None:
    seed = load_seed(TEST_SEED)
    typo = replace(seed, software=replace(seed.software, packages=("zlib@1.3.1", "zlibb")))
    result = spack_check.check_seed(typo, "typo.yaml", spack, use_cache=False)
    assert [p.format("typo.yaml") for p in result.problems] == [
        "typo.yaml: software.packages[1]: Spack has no package 'zlibb': did you mean 'zlib'?"
    ]
