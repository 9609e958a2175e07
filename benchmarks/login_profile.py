"""How long a login or a job pays for petal's profile: `sh -c '. profile.sh'`.

Writes profile.sh with the bootstrap's own sh_profile (ssm_documents/bootstrap.sh,
sourced) for a fake /shared tree in a temporary directory: three Lmod Core trees and an
Lmod init that only defines `module`, as Lmod's does. Then times sourcing it with sh and
bash, against the goal of 50 ms per shell, beside a bare `sh -c :` for scale.

    python3 benchmarks/login_profile.py [--runs N]

It measures; it does not judge: the exit status is 0 whenever the profile sourced cleanly.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
SCRIPT = REPO_ROOT / "ssm_documents" / "bootstrap.sh"
GOAL_MS = 50.0


def write_profile(root: Path) -> Path:
    shared = root / "shared"
    core = [shared / f"spack/share/spack/lmod/linux-amzn2023-x86_64/{c}/Core" for c in "abc"]
    for directory in core:
        directory.mkdir(parents=True)
    init = shared / "spack/opt/spack/lmod/lmod/lmod/init"
    init.mkdir(parents=True)
    for shell in ("bash", "sh"):
        (init / shell).write_text("module() { :; }\nLMOD_CMD=/bin/true\nexport LMOD_CMD\n")
    profile = shared / "petal/profile.sh"
    profile.parent.mkdir(parents=True)
    code = (
        'source "$1"; init_settings; MOUNT_DIR="$2"; SPACK_ROOT_DIR="$2/spack"; '
        'FINGERPRINT=sha256:bench BUILD_ID=bench SPACK_VERSION=v0.23.0; MODULE_DIRS=("${@:4}"); '
        'sh_profile "$3" >"$2/petal/profile.sh"'
    )
    subprocess.run(
        ["bash", "-c", code, "bash", str(SCRIPT), str(shared), str(init), *map(str, core)],
        check=True,
    )
    return profile


def time_ms(command: list[str], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(command, check=True, env={"PATH": "/usr/bin:/bin"})
        times.append((time.perf_counter() - start) * 1000)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    runs = parser.parse_args().runs
    with tempfile.TemporaryDirectory() as tmp:
        profile = write_profile(Path(tmp))
        for shell in ("sh", "bash"):
            baseline = statistics.median(time_ms([shell, "-c", ":"], runs))
            sourced = statistics.median(time_ms([shell, "-c", f'. "{profile}"'], runs))
            print(
                f"{shell}: median {sourced:.1f} ms per shell with the profile "
                f"({baseline:.1f} ms without; goal < {GOAL_MS:.0f} ms)"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
