"""How long the node-setup script (OnNodeConfigured, stacks/assets/petal-node-setup.sh)
adds to each node's boot, against the goal of 1 s per node.

Runs the script with /bin/sh against a fake volume and node root in a temporary
directory, as ParallelCluster runs it (`--fingerprint sha256:...`), for a matching
manifest, a mismatching one (it then also writes the users' warnings) and a missing one.
The manifest is as large as a big stack's: the bootstrap embeds the whole spack.lock, so
`--specs` specs of about 2 KiB each (default 2000, about 5 MB).

    python3 benchmarks/node_setup.py [--runs N] [--specs N]

It measures on this machine's local disk; compute nodes read /shared over NFS from the
head node. It does not judge: the exit status is 0 whenever every run did what it should.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
SCRIPT = REPO_ROOT / "stacks" / "assets" / "petal-node-setup.sh"
GOAL_MS = 1000.0
FINGERPRINT = "sha256:" + "ab" * 32


def write_volume(petal_dir: Path, specs: int) -> Path:
    petal_dir.mkdir(parents=True)
    for name in ("profile.sh", "profile.csh"):
        (petal_dir / name).write_text(":\n")
    spec = {
        "name": "package",
        "version": "1.2.3",
        "arch": {"platform": "linux", "platform_os": "amzn2023", "target": "x86_64_v3"},
        "compiler": {"name": "gcc", "version": "13.2.0"},
        "namespace": "builtin",
        "parameters": {f"variant{i}": True for i in range(40)},
        "dependencies": [{"name": f"dep{i}", "hash": "x" * 32} for i in range(10)],
    }
    lock = {"concrete_specs": {f"{i:032x}": spec for i in range(specs)}}
    manifest = {"format": 2, "fingerprint": FINGERPRINT, "build_id": "b-1", "spack_lock": lock}
    path = petal_dir / "manifest.json"
    path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return path


def run_ms(petal_dir: Path, root: Path, expected: str) -> float:
    env = {"PATH": "/usr/bin:/bin", "PETAL_DIR": str(petal_dir), "PETAL_ROOT_PREFIX": str(root)}
    start = time.perf_counter()
    result = subprocess.run(
        ["/bin/sh", str(SCRIPT), "--fingerprint", expected],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = (time.perf_counter() - start) * 1000
    if result.returncode != 0:
        raise SystemExit(f"the script failed: {result.stderr}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--specs", type=int, default=2000)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        petal_dir = Path(tmp) / "shared" / "petal"
        manifest = write_volume(petal_dir, options.specs)
        size_mb = manifest.stat().st_size / 1e6
        cases = {
            f"matching manifest ({size_mb:.1f} MB)": FINGERPRINT,
            "mismatching manifest": "sha256:" + "cd" * 32,
            "missing manifest": FINGERPRINT,
        }
        for label, expected in cases.items():
            if label == "missing manifest":
                manifest.replace(manifest.with_suffix(".moved"))
            times = []
            for run in range(options.runs):
                root = Path(tmp) / f"node-{label[:4]}-{run}"
                for directory in ("etc/profile.d", "etc/csh/login.d", "var/log"):
                    (root / directory).mkdir(parents=True)
                times.append(run_ms(petal_dir, root, expected))
            print(
                f"{label}: median {statistics.median(times):.0f} ms, max {max(times):.0f} ms "
                f"per node (goal <= {GOAL_MS:.0f} ms)"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
