"""An incremental build (`petal build --from`) with the real Spack v0.23.0, offline: the
commands ssm_documents/bootstrap.sh runs on a parent's volume, on the test seed with
one package's version changed, installed with `install --fake` into the install tree
of the first build.

It shows what the bootstrap relies on: concretized in the parent's tree the environment
gets the same spack.lock as in an empty one (a fresh build), Spack installs only the
hashes the tree lacks, and `mark --implicit --all` before the installs then
`gc --yes-to-all --keep-build-dependencies` leave exactly the new lock's hashes. It also
shows why not `spack -e ENV gc`: that keeps the parent's package the new lock dropped.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from petal.seed import spack_check
from petal.seed.loading import load_seed
from petal.seed.model import Seed
from petal.seed.spack_environment import spack_environment

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.spack

TEST_SEED = REPO / "seeds" / "testing" / "workload-basic.yaml"
TIMEOUT = 1800.0
_INSTALLING = re.compile(r"^==> Installing (\S+)-([a-z0-9]{32}) ", re.MULTILINE)


@dataclass(frozen=True)
class Tree:
    """One install tree (the volume's) and what runs Spack on it."""

    spack: spack_check.Spack
    work: Path  # holds opt/ (the install tree) and scope/ (the seed's compilers)
    config: Path  # a config scope naming the install tree, as the bootstrap exports it

    def run(self, *args: str) -> str:
        result = self.spack.run(
            list(args), scopes=[self.work / "scope", self.config], timeout=TIMEOUT
        )
        assert result.returncode == 0, f"spack {' '.join(args)}:\n{result.stderr}{result.stdout}"
        return result.stdout

    def installed(self) -> set[str]:
        return set(self.run("find", "--format", "{hash}").split())

    def environment(self, seed: Seed, name: str) -> Path:
        """The seed's rendered environment, offline, installing into this tree."""
        env_dir = self.work.parent / name
        env_dir.mkdir()
        offline = spack_check.offline_environment(spack_environment(seed), self.work)
        (env_dir / "spack.yaml").write_text(yaml.safe_dump(offline, sort_keys=False))
        return env_dir


def _hashes(lock: dict[str, Any]) -> set[str]:
    return set(lock["concrete_specs"])


def _changed_seed() -> Seed:
    seed = load_seed(str(TEST_SEED))
    packages = tuple("xz@5.4.5" if p.startswith("xz@") else p for p in seed.software.packages)
    assert packages != seed.software.packages
    return replace(seed, software=replace(seed.software, packages=packages))


def _parent_tree(spack: spack_check.Spack, work: Path) -> Tree:
    """The first build: the test seed concretized (once: spack_check caches the lock)
    and installed (--fake) into `work`'s install tree."""
    seed = load_seed(str(TEST_SEED))
    result = spack_check.check_seed(seed, str(TEST_SEED), spack, work=work, install=True)
    assert result.installed, "\n".join(p.format(str(TEST_SEED)) for p in result.problems)
    config = work.parent / f"{work.name}-config"
    config.mkdir()
    offline = spack_check.offline_environment(spack_environment(seed), work)
    (config / "config.yaml").write_text(yaml.safe_dump({"config": offline["spack"]["config"]}))
    return Tree(spack, work, config)


@dataclass(frozen=True)
class Incremental:
    before: set[str]  # the parent's hashes
    lock: dict[str, Any]  # the child's spack.lock, concretized in the parent's tree
    installed_now: dict[str, str]  # hash -> name of what the child's install installed
    after: set[str]  # the tree's hashes after the prune


@pytest.fixture(scope="module")
def incremental(spack: spack_check.Spack, tmp_path_factory: pytest.TempPathFactory) -> Incremental:
    """The child build's commands, in the bootstrap's order (step_compilers, concretize,
    install, prune), on the parent's tree."""
    tree = _parent_tree(spack, tmp_path_factory.mktemp("incremental") / "parent")
    before = tree.installed()
    env_dir = tree.environment(_changed_seed(), "child-env")
    tree.run("mark", "--implicit", "--all")
    tree.run("-e", str(env_dir), "concretize", "-f")
    output = tree.run("-e", str(env_dir), "install", "--fake", "--no-cache", "--fail-fast")
    installed_now = {h: name for name, h in _INSTALLING.findall(output)}
    tree.run("gc", "--yes-to-all", "--keep-build-dependencies")
    lock = json.loads((env_dir / "spack.lock").read_text())
    return Incremental(before, lock, installed_now, tree.installed())


def test_the_child_concretizes_as_a_fresh_build(
    spack: spack_check.Spack, incremental: Incremental, tmp_path: Path
) -> None:
    fresh = spack_check.check_seed(_changed_seed(), "child", spack, work=tmp_path / "fresh")
    assert fresh.lock is not None, [p.format("child") for p in fresh.problems]
    assert _hashes(incremental.lock) == _hashes(fresh.lock)


def test_only_what_the_parent_lacks_is_installed(incremental: Incremental) -> None:
    missing = _hashes(incremental.lock) - incremental.before
    assert set(incremental.installed_now) == missing
    assert sorted(incremental.installed_now.values()) == ["xz-5.4.5"]


def test_gc_leaves_exactly_the_new_locks_hashes(incremental: Incremental) -> None:
    assert incremental.after == _hashes(incremental.lock)
    dropped = incremental.before - _hashes(incremental.lock)
    assert dropped and not dropped & incremental.after  # the parent's xz@5.4.6 is gone


def test_gc_in_the_environment_would_keep_the_dropped_package(
    spack: spack_check.Spack, incremental: Incremental, tmp_path: Path
) -> None:
    """Why the bootstrap does not run `spack -e ENV gc`: it only collects inside the
    environment, so the parent's xz@5.4.6 (no longer in the lock) stays."""
    tree = _parent_tree(spack, tmp_path / "parent")
    before = tree.installed()
    env_dir = tree.environment(_changed_seed(), "child-env")
    # The lock the child concretized to: installing an environment follows its lock.
    (env_dir / "spack.lock").write_text(json.dumps(incremental.lock))
    tree.run("-e", str(env_dir), "install", "--fake", "--no-cache", "--fail-fast")
    tree.run("-e", str(env_dir), "gc", "--yes-to-all")
    dropped = before - _hashes(incremental.lock)
    assert dropped and dropped <= tree.installed()
