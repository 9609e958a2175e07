"""The lock files in requirements/ agree with what they were compiled from.

`make lock` writes them from pyproject.toml and requirements/*.in; these tests fail when
a declaration changed without `make lock`, or a lock file was edited by hand out of
step with the others. They read files only: no resolver, no network.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from petal import lambda_bundle as lb

REPO = Path(__file__).resolve().parents[2]
LOCKS = REPO / "requirements"
PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())

# A pin starts a line; its hashes follow on indented continuation lines.
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")
HASH = re.compile(r"^\s+--hash=sha256:[0-9a-f]{64}")


@dataclass
class Lock:
    path: Path
    # A universal lock may pin two versions of one package, each under a marker.
    versions: dict[str, set[str]] = field(default_factory=dict)
    hashed: dict[str, bool] = field(default_factory=dict)
    header: str = ""

    @classmethod
    def read(cls, name: str) -> Lock:
        lock = cls(LOCKS / name)
        current = ""
        for line in lock.path.read_text().splitlines():
            if line.startswith("#"):
                lock.header += line + "\n"
            elif match := PIN.match(line):
                current = canonicalize_name(match.group(1))
                lock.versions.setdefault(current, set()).add(match.group(2))
                lock.hashed.setdefault(current, False)
            elif current and HASH.match(line):
                lock.hashed[current] = True
            elif line.startswith("-"):
                pytest.fail(f"{name}: {line!r}: a lock file holds only pinned packages")
        return lock

    def pinned(self, requirement: Requirement) -> set[str]:
        return self.versions.get(canonicalize_name(requirement.name), set())


def requirements_in(path: Path) -> list[Requirement]:
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return [Requirement(line) for line in lines if line]


def own_extra(requirement: Requirement) -> bool:
    """`petal[cdk,local]` in the dev extra names the project's own extras."""
    return canonicalize_name(requirement.name) == canonicalize_name(PROJECT["project"]["name"])


def declared(*extras: str) -> list[Requirement]:
    project = PROJECT["project"]
    found = [Requirement(d) for d in project["dependencies"]]
    for extra in extras:
        found += [Requirement(d) for d in project["optional-dependencies"][extra]]
    return [r for r in found if not own_extra(r)]


def all_extras() -> list[str]:
    return sorted(PROJECT["project"]["optional-dependencies"])


def assert_pinned(lock: Lock, requirements: Iterable[Requirement]) -> None:
    problems = []
    for requirement in requirements:
        versions = lock.pinned(requirement)
        if not versions:
            problems.append(f"{requirement} is not in {lock.path.name}")
        for version in versions:
            if not requirement.specifier.contains(version, prereleases=True):
                problems.append(f"{requirement} but {lock.path.name} pins {version}")
    assert problems == [], "run `make lock`:\n" + "\n".join(problems)


@pytest.mark.parametrize(
    "name", ["local.txt", "dev.txt", "build.txt", "pcluster.txt", "uv.txt", "lambda.txt"]
)
def test_every_pin_carries_its_hashes(name: str) -> None:
    lock = Lock.read(name)
    assert lock.versions, f"{name} pins nothing"
    assert [n for n, hashed in lock.hashed.items() if not hashed] == []


def test_the_dev_lock_pins_every_declared_dependency() -> None:
    # The dev extra pulls in every other extra (petal[cdk,local]), so its lock must
    # satisfy all of them.
    extras = all_extras()
    dev = [Requirement(d) for d in PROJECT["project"]["optional-dependencies"]["dev"]]
    included = {e for r in dev if own_extra(r) for e in r.extras} | {"dev"}
    assert included == set(extras), "the dev extra must include every other extra"
    assert_pinned(Lock.read("dev.txt"), declared(*extras))


def test_the_local_lock_pins_what_make_setup_needs() -> None:
    assert_pinned(Lock.read("local.txt"), declared("local"))


def test_the_local_lock_is_the_dev_lock_s_versions() -> None:
    # `make setup` after `make setup-dev` (or the other way round) then changes no
    # version it shares; the Makefile compiles local.txt constrained by dev.txt.
    local, dev = Lock.read("local.txt"), Lock.read("dev.txt")
    differ = {
        name: (versions, dev.versions.get(name))
        for name, versions in local.versions.items()
        if not versions <= dev.versions.get(name, set())
    }
    assert differ == {}


def test_parallelcluster_is_locked_apart_and_never_in_the_venv() -> None:
    pcluster = Lock.read("pcluster.txt")
    assert_pinned(pcluster, requirements_in(LOCKS / "pcluster.in"))
    assert set(pcluster.versions) == {"aws-parallelcluster"}
    for name in ("dev.txt", "local.txt"):
        assert "aws-parallelcluster" not in Lock.read(name).versions


def test_the_build_backend_and_the_installer_are_locked() -> None:
    build = Lock.read("build.txt")
    assert_pinned(build, requirements_in(LOCKS / "build.in"))
    assert_pinned(build, [Requirement(r) for r in PROJECT["build-system"]["requires"]])
    uv = Lock.read("uv.txt")
    assert_pinned(uv, requirements_in(LOCKS / "uv.in"))
    assert all(
        r.specifier and str(r.specifier).startswith("==") for r in requirements_in(LOCKS / "uv.in")
    )


def test_the_lambda_bundle_installs_exactly_its_lock_file() -> None:
    assert lb.LAMBDA_LOCK_FILE == LOCKS / "lambda.txt"
    lock = Lock.read("lambda.txt")
    pins = {lb.Pin.parse(r).name: lb.Pin.parse(r).version for r in lb.LAMBDA_REQUIREMENTS}
    assert pins == {name: next(iter(v)) for name, v in lock.versions.items()}
    assert all(len(v) == 1 for v in lock.versions.values())
    assert_pinned(lock, requirements_in(LOCKS / "lambda.in"))
    assert not set(pins) & lb.FORBIDDEN_DISTRIBUTIONS


def test_the_lambda_lock_is_compiled_for_the_lambda_runtime() -> None:
    header = Lock.read("lambda.txt").header
    assert f"--python-version {lb.LAMBDA_PYTHON_VERSION}" in header
    # uv names the platform arch-first (x86_64-manylinux2014), pip arch-last.
    tag, _, arch = lb.LAMBDA_PLATFORM.partition("_")
    assert f"--python-platform {arch}-{tag}" in header
    assert "--only-binary :all:" in header


def test_lambda_runs_the_versions_the_tests_run() -> None:
    lam, local = Lock.read("lambda.txt"), Lock.read("local.txt")
    differ = {
        name: (versions, local.versions.get(name))
        for name, versions in lam.versions.items()
        if not versions <= local.versions.get(name, set())
    }
    assert differ == {}
