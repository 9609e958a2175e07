"""Every example seed CI checks, concretized by the real Spack v0.23.0 offline; the
properties a build needs are asserted from its spack.lock, one test each, so a failure
names the property (see petal.seed.spack_check.lock_properties).

CI (`make spack-check`) concretizes the seeds of CI_SEEDS: the others take minutes of CPU
each; `benchmarks/spack_concretize.py` concretizes all of them and prints the time.
PETAL_SPACK_SEEDS=all runs these tests on every seed too.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest

from petal.seed import spack_check
from petal.seed.loading import load_seed

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.spack


@pytest.fixture(autouse=True)
def _in_the_repository(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)  # the seeds and data are named relative to it


TEST_SEED = "seeds/testing/workload-basic.yaml"
CI_SEEDS = [TEST_SEED, "seeds/bioinformatics.yaml"]
ALL_SEEDS = sorted(str(p.relative_to(REPO)) for p in (REPO / "seeds").glob("**/*.yaml"))
SEEDS = ALL_SEEDS if os.environ.get("PETAL_SPACK_SEEDS") == "all" else CI_SEEDS

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
