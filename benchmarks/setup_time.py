"""How long set-up takes on a fresh checkout: `make setup` (the demo's) and `make setup-dev`.

Each run copies this working tree, without what git ignores (.venv, node_modules,
build, caches) and without .git, to a new temporary directory, as a fresh clone would
have it (uncommitted changes included, so a change is measured before it is
committed), then times the make target there. The package caches are left as they are
(uv's in ~/.cache/uv, pip's, npm's in ~/.npm): one untimed `make setup-dev` warms them
first, so the figures are those of a machine that has set up petal before; pass
--no-warm-up on a machine whose caches are already warm. --cold gives each run empty
caches of its own instead: everything is downloaded. Prints each target's wall time
beside its goal (the goals are for warm caches), and the machine it ran on.

    python3 benchmarks/setup_time.py [--runs N] [--no-warm-up] [--cold]

It measures; it does not judge: the exit status is 0 whenever every set-up succeeded
and left what it promises (`.venv/bin/petal`; the dev tools and no `.venv/bin/pcluster`).
"""

from __future__ import annotations

import argparse
import fnmatch
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
# The goals: set-up for the demo within a minute, for the tests within four.
GOALS_SECONDS = {"setup": 60.0, "setup-dev": 240.0}
# What each target must leave behind, and what it must not (a `pcluster` script in
# the venv's bin/ would shadow a user's real one).
PRODUCES = {
    "setup": [".venv/bin/petal"],
    "setup-dev": [".venv/bin/petal", ".venv/bin/pytest", ".venv/bin/mypy", "node_modules/.bin/cdk"],
}
FORBIDDEN = [".venv/bin/pcluster"]


def ignore_patterns(root: Path) -> list[str]:
    lines = (root / ".gitignore").read_text().splitlines()
    return [".git/", *(line.strip() for line in lines if line.strip() and line[0] != "#")]


def ignored(relative: Path, patterns: list[str]) -> bool:
    """Enough of gitignore's rules for this repository's .gitignore."""
    for pattern in patterns:
        anchored = pattern.startswith("/")
        body = pattern.strip("/")
        if anchored:
            if fnmatch.fnmatch(relative.as_posix(), body):
                return True
        elif fnmatch.fnmatch(relative.name, body):
            return True
    return False


def copy_tree(source: Path, destination: Path) -> None:
    patterns = ignore_patterns(source)

    def skip(directory: str, names: list[str]) -> set[str]:
        base = Path(directory).relative_to(source)
        return {n for n in names if ignored(base / n, patterns)}

    shutil.copytree(source, destination, ignore=skip, symlinks=True)


def clean_env(scratch: Path, cold: bool) -> dict[str, str]:
    # An activated venv or a parent make must not leak into the measured one.
    drop = {"VIRTUAL_ENV", "MAKEFLAGS", "MAKELEVEL", "MFLAGS"}
    env = {k: v for k, v in os.environ.items() if k not in drop}
    if cold:
        env.update(
            UV_CACHE_DIR=str(scratch / "uv-cache"),
            npm_config_cache=str(scratch / "npm-cache"),
            PIP_NO_CACHE_DIR="1",
        )
    return env


def set_up(target: str, cold: bool = False) -> float:
    """Time `make <target>` in a fresh copy of the tree; fail if it broke a promise."""
    with tempfile.TemporaryDirectory(prefix="petal-setup-") as scratch:
        checkout = Path(scratch) / "petal"
        copy_tree(REPO_ROOT, checkout)
        began = time.monotonic()
        result = subprocess.run(
            ["make", target],
            cwd=checkout,
            env=clean_env(Path(scratch), cold),
            capture_output=True,
            text=True,
            check=False,
        )
        elapsed = time.monotonic() - began
        if result.returncode != 0:
            raise SystemExit(f"`make {target}` failed:\n{result.stdout}{result.stderr}")
        missing = [p for p in PRODUCES[target] if not (checkout / p).exists()]
        present = [p for p in FORBIDDEN if (checkout / p).exists()]
        if missing or present:
            raise SystemExit(f"`make {target}` left {missing=} {present=}")
        return elapsed


def machine() -> str:
    memory = "?"
    meminfo = Path("/proc/meminfo")
    if meminfo.is_file():
        kib = int(meminfo.read_text().split("MemTotal:")[1].split()[0])
        memory = f"{kib / 2**20:.1f} GiB"
    return (
        f"{os.cpu_count()} cores, {memory} memory, {platform.system()} {platform.machine()}, "
        f"Python {platform.python_version()}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-warm-up", action="store_true")
    parser.add_argument("--cold", action="store_true", help="empty package caches")
    args = parser.parse_args()
    print(f"machine: {machine()}; caches: {'cold' if args.cold else 'warm'}", flush=True)
    if not (args.no_warm_up or args.cold):
        print(f"warm-up (untimed): make setup-dev  {set_up('setup-dev'):.1f} s", flush=True)
    for target, goal in GOALS_SECONDS.items():
        values = [set_up(target, args.cold) for _ in range(args.runs)]
        print(
            f"make {target:10} median {statistics.median(values):6.1f} s  "
            f"goal <= {goal:.0f} s  (runs: " + ", ".join(f"{v:.1f}" for v in values) + ")",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
