"""How long `make demo` takes after set-up: the local demo as a new user runs it.

The same commands as the Makefile's demo target, each a fresh `petal` process against
an emulator of its own (a temporary PETAL_LOCAL_DIR), with the simulated install paced
as a person sees it. Prints each command's wall time and the total beside the goal.

    .venv/bin/python benchmarks/local_demo.py [--runs N]

It measures; it does not judge: the exit status is 0 whenever the demo succeeded.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
SEED = "seeds/testing/workload-basic.yaml"
# What a new user waits for after set-up: build + create + list, the emulator stopped.
GOAL_SECONDS = 15.0
PETAL = [sys.executable, "-m", "petal"]


def timed(argv: list[str], env: dict[str, str]) -> float:
    began = time.monotonic()
    result = subprocess.run(
        [*PETAL, *argv], cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=False
    )
    elapsed = time.monotonic() - began
    if result.returncode != 0:
        raise SystemExit(f"`petal {' '.join(argv)}` failed:\n{result.stdout}{result.stderr}")
    return elapsed


def one_run() -> dict[str, float]:
    with tempfile.TemporaryDirectory() as scratch:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PETAL_"))}
        env.update({"AWS_DEFAULT_REGION": "us-east-1", "PETAL_LOCAL_DIR": f"{scratch}/local"})
        config = f"{scratch}/demo-config.yaml"
        steps: dict[str, list[str]] = {
            "build (starts the emulator)": ["--local", "build", "--seed", SEED],
            "create": [
                "--local",
                "create",
                "--seed",
                SEED,
                "--name",
                "demo",
                "--config-out",
                config,
            ],
            "build list": ["--local", "build", "list"],
        }
        figures = {name: timed(argv, env) for name, argv in steps.items()}
        figures["local stop"] = timed(["local", "stop"], env)
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    runs = [one_run() for _ in range(parser.parse_args().runs)]
    for name in runs[0]:
        values = [run[name] for run in runs]
        print(
            f"{name:28} median {statistics.median(values):6.1f} s  (runs: "
            + ", ".join(f"{v:.1f}" for v in values)
            + ")"
        )
    totals = [sum(v for k, v in run.items() if k != "local stop") for run in runs]
    print(
        f"{'demo total':28} median {statistics.median(totals):6.1f} s  "
        f"goal <= {GOAL_SECONDS:.0f} s after set-up"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
