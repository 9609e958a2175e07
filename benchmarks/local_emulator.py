"""How long the local AWS emulator takes to start and to stop, beside the goals.

Each run uses a fresh emulator (a temporary PETAL_LOCAL_DIR) and times, as a user
meets them: the first `petal --local build list` (which starts the emulator), a second
one (the same command once the emulator runs; the difference is the start itself) and
`petal local stop`. Prints the medians. An untimed run first leaves the bytecode caches
a user's machine has after its first use (PYTHONDONTWRITEBYTECODE is dropped for the
same reason); a venv installed without compiled bytecode pays about 3.5 s of CPU more
on its very first start.

    .venv/bin/python benchmarks/local_emulator.py [--runs N]

It measures; it does not judge: the exit status is 0 whenever the commands succeeded.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile

# A script beside this one (benchmarks/ is on sys.path when it runs): one way to time
# a petal command.
from local_demo import timed

START_GOAL_SECONDS = 5.0
STOP_GOAL_SECONDS = 2.0
FIRST = "first command (starts it)"
LATER = "later command"
START = "emulator start (first - later)"
STOP = "petal local stop"


def one_run() -> dict[str, float]:
    with tempfile.TemporaryDirectory() as scratch:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("AWS_", "PETAL_")) and k != "PYTHONDONTWRITEBYTECODE"
        }
        env.update({"AWS_DEFAULT_REGION": "us-east-1", "PETAL_LOCAL_DIR": f"{scratch}/local"})
        try:
            first = timed(["--local", "build", "list"], env)
            later = timed(["--local", "build", "list"], env)
        finally:
            stop = timed(["local", "stop"], env)
    return {FIRST: first, LATER: later, START: first - later, STOP: stop}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    count = parser.parse_args().runs
    one_run()  # untimed: the bytecode caches
    runs = [one_run() for _ in range(count)]
    goals = {FIRST: START_GOAL_SECONDS, STOP: STOP_GOAL_SECONDS}
    for name in runs[0]:
        values = [run[name] for run in runs]
        goal = f"  goal <= {goals[name]:.0f} s" if name in goals else ""
        print(
            f"{name:32} median {statistics.median(values):5.1f} s{goal}  (runs: "
            + ", ".join(f"{v:.1f}" for v in values)
            + ")"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
