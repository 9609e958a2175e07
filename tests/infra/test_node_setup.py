"""The node-setup script ParallelCluster runs on every node (OnNodeConfigured)."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from petal.deployment_contract import PETAL_DIR
from stacks.paths import ASSETS_DIR

SCRIPT = ASSETS_DIR / "petal-node-setup.sh"


def run(profile: Path, link: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PETAL_PROFILE": str(profile), "PETAL_PROFILE_LINK": str(link)}
    return subprocess.run(
        ["/bin/sh", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=30
    )


def test_defaults_are_the_contract_paths() -> None:
    text = SCRIPT.read_text()
    assert f'"${{PETAL_PROFILE:-{PETAL_DIR}/profile.sh}}"' in text
    assert '"${PETAL_PROFILE_LINK:-/etc/profile.d/petal.sh}"' in text


def test_links_the_profile_when_the_volume_has_one(tmp_path: Path) -> None:
    profile = tmp_path / "shared" / "profile.sh"
    profile.parent.mkdir()
    profile.write_text("export PETAL=1\n")
    link = tmp_path / "profile.d" / "petal.sh"
    link.parent.mkdir()
    started = time.monotonic()
    result = run(profile, link)
    assert result.returncode == 0, result.stderr
    assert link.is_symlink() and link.resolve() == profile.resolve()
    assert time.monotonic() - started < 5
    # Running it again (a node re-configured) is harmless.
    assert run(profile, link).returncode == 0
    assert link.resolve() == profile.resolve()


def test_without_a_profile_it_changes_nothing_and_succeeds(tmp_path: Path) -> None:
    link = tmp_path / "petal.sh"
    result = run(tmp_path / "missing.sh", link)
    assert result.returncode == 0
    assert not link.exists() and not link.is_symlink()
    assert "not found" in result.stderr


def test_installs_nothing() -> None:
    text = SCRIPT.read_text()
    for word in ("yum", "dnf", "apt", "pip", "curl", "wget", "spack install", "aws s3"):
        assert word not in text
