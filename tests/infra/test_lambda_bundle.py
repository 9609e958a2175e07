"""The Lambda code asset: the pip step, its cache and checks, and the real bundle."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import tomllib
from collections.abc import Sequence
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from petal import lambda_bundle as lb
from stacks.functions import FUNCTION_SPECS
from tests.infra.aws_calls import third_party_imports
from tests.infra.conftest import REPO_ROOT, Synth


class FakePip:
    """Stands in for pip: records calls, writes what a real install would."""

    def __init__(self, *, extra: Sequence[str] = (), so_name: str = "", code: int = 0) -> None:
        self.calls: list[list[str]] = []
        self.extra = extra
        self.so_name = so_name
        self.code = code

    def __call__(self, command: Sequence[str]) -> subprocess.CompletedProcess[str]:
        self.calls.append(list(command))
        target = Path(command[command.index("--target") + 1])
        if self.code == 0:
            pins = [lb.Pin.parse(r) for r in command if "==" in r]
            for pin in pins:
                (target / f"{pin.name.replace('-', '_')}-{pin.version}.dist-info").mkdir()
            for name in self.extra:
                (target / f"{name}-1.0.dist-info").mkdir()
            if self.so_name:
                (target / "pkg").mkdir()
                (target / "pkg" / self.so_name).write_bytes(b"")
            (target / "bin").mkdir()
        return subprocess.CompletedProcess(command, self.code, "pip says hi\n", "pip error\n")


def test_pip_command_targets_the_lambda_platform(tmp_path: Path) -> None:
    command = lb.pip_install_command(tmp_path)
    assert command[:4] == [sys.executable, "-m", "pip", "install"]
    joined = " ".join(command)
    assert "--platform manylinux2014_x86_64" in joined
    assert "--only-binary=:all:" in command
    assert "--python-version 3.12" in joined
    assert "--implementation cp" in joined
    assert f"--target {tmp_path}" in joined
    assert set(lb.LAMBDA_REQUIREMENTS) <= set(command)


def test_requirements_are_pinned_and_exclude_runtime_packages() -> None:
    pins = [lb.Pin.parse(r) for r in lb.LAMBDA_REQUIREMENTS]
    names = {p.name for p in pins}
    assert {"pyyaml", "jsonschema"} <= names
    assert not names & lb.FORBIDDEN_DISTRIBUTIONS
    with pytest.raises(lb.BundleError, match="pinned"):
        lb.Pin.parse("PyYAML>=6")


def test_pins_satisfy_the_project_dependency_ranges() -> None:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    ranges = {
        lb.normalize_name(Requirement(d).name): Requirement(d) for d in project["dependencies"]
    }
    for pin in map(lb.Pin.parse, lb.LAMBDA_REQUIREMENTS):
        if pin.name in ranges:
            assert ranges[pin.name].specifier.contains(pin.version), pin


def test_cache_key_changes_with_requirements_and_platform() -> None:
    base = lb.requirements_key()
    assert base == lb.requirements_key(reversed(lb.LAMBDA_REQUIREMENTS))
    assert base != lb.requirements_key((*lb.LAMBDA_REQUIREMENTS[:-1], "typing-extensions==0.1"))
    assert base != lb.requirements_key(python_version="3.13")
    assert base != lb.requirements_key(platform="manylinux2014_aarch64")


def test_install_runs_pip_once_and_then_uses_the_cache(tmp_path: Path) -> None:
    pip = FakePip(so_name="_speedups.cpython-312-x86_64-linux-gnu.so")
    first = lb.install_dependencies(tmp_path, runner=pip)
    second = lb.install_dependencies(tmp_path, runner=pip)
    assert first == second == tmp_path / lb.requirements_key()
    assert len(pip.calls) == 1
    assert not (first / "bin").exists()
    assert [p.name for p in tmp_path.iterdir()] == [first.name]


@pytest.mark.parametrize(
    ("pip", "message"),
    [
        (FakePip(code=1), r"pip could not install.*exit 1.*pip error"),
        (FakePip(extra=["six"]), r"unpinned distributions \['six'\]"),
        (FakePip(extra=["boto3"]), r"\['boto3'\] must come from the Lambda runtime"),
        (FakePip(so_name="_x.cpython-311-x86_64-linux-gnu.so"), "not built for cpython-312"),
        (FakePip(so_name="_x.cpython-312-aarch64-linux-gnu.so"), "not built for x86_64"),
    ],
)
def test_a_bad_install_fails_and_leaves_no_cache(
    tmp_path: Path, pip: FakePip, message: str
) -> None:
    with pytest.raises(lb.BundleError, match=re.compile(message, re.S)):
        lb.install_dependencies(tmp_path, runner=pip)
    assert list(tmp_path.iterdir()) == []


def test_bundle_is_rebuilt_only_when_sources_change(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    for package in lb.SOURCE_PACKAGES:
        (repo / package / "__pycache__").mkdir(parents=True)
        (repo / package / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"")
        (repo / package / "mod.py").write_text("X = 1\n")
    pip = FakePip()
    first = lb.build_bundle(repo, tmp_path / "build", runner=pip)
    assert lb.build_bundle(repo, tmp_path / "build", runner=pip) == first
    assert (first / "lambdas" / "mod.py").read_text() == "X = 1\n"
    assert not list(first.rglob("__pycache__"))
    (repo / "lambdas" / "mod.py").write_text("X = 2\n")
    second = lb.build_bundle(repo, tmp_path / "build", runner=pip)
    assert second != first
    assert (second / "lambdas" / "mod.py").read_text() == "X = 2\n"
    assert len(pip.calls) == 1


def test_stale_bundles_and_crashed_builds_are_pruned(tmp_path: Path) -> None:
    keep, old, fresh, crashed = (tmp_path / n for n in ("keep", "old", "fresh", ".tmp-x-1"))
    for path in (keep, old, fresh, crashed):
        path.mkdir()
    now = time.time()
    for path, age in ((keep, 10**8), (old, lb.STALE_BUNDLE_SECONDS + 1), (crashed, 7200)):
        os.utime(path, (now - age, now - age))
    removed = lb.prune(tmp_path, keep=keep, now=now)
    assert sorted(p.name for p in removed) == [".tmp-x-1", "old"]
    assert keep.exists() and fresh.exists()


def test_the_synthesized_asset_holds_code_and_lambda_wheels(synth: Synth) -> None:
    functions = synth.of_type("AWS::Lambda::Function")
    keys = {
        f["Properties"]["Code"]["S3Key"]
        for f in functions.values()
        if f["Properties"].get("Handler", "").startswith("lambdas.")
    }
    assert len(keys) == 1, "every petal function shares one code asset"
    asset = synth.outdir / f"asset.{keys.pop().removesuffix('.zip')}"
    for package in lb.SOURCE_PACKAGES:
        assert (asset / package).is_dir()
    assert (asset / "petal" / "deployment_contract.py").is_file()
    assert (asset / "yaml").is_dir()
    assert (asset / "jsonschema").is_dir()
    found = lb.installed_distributions(asset)
    assert not set(found) & lb.FORBIDDEN_DISTRIBUTIONS
    lb.verify_dependencies(asset)
    assert not list(asset.rglob("__pycache__"))
    assert not (asset / lb.COMPLETE_MARKER).exists()


PROVIDED_BY_LAMBDA = {"boto3", "botocore", "aws_lambda_powertools"}


@pytest.mark.parametrize("module", sorted(FUNCTION_SPECS))
def test_every_import_of_a_handler_is_in_the_asset_or_the_runtime(
    synth: Synth, module: str
) -> None:
    (key,) = {
        f["Properties"]["Code"]["S3Key"]
        for f in synth.of_type("AWS::Lambda::Function").values()
        if f["Properties"].get("Handler", "").startswith("lambdas.")
    }
    asset = synth.outdir / f"asset.{key.removesuffix('.zip')}"
    bundled = {
        p.name.removesuffix(".py")
        for p in asset.iterdir()
        if not p.name.endswith(".dist-info") and (p.is_dir() or p.suffix == ".py")
    }
    imports = third_party_imports(module)
    missing = {
        name: sorted(users)
        for name, users in imports.items()
        if name not in bundled | PROVIDED_BY_LAMBDA
    }
    assert missing == {}, f"lambdas/{module}.py would fail to import these in Lambda"
