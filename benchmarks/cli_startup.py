"""How long the commands that need no AWS take to answer: `petal --help` and
`petal seed validate`, each a fresh process, as a user starts them.

    .venv/bin/python benchmarks/cli_startup.py [--runs N]

Prints the median and the fastest of N runs beside the goals (300 ms and 500 ms), and
the modules that cost most to import for each. It measures; it does not judge.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
PETAL = [str(Path(sys.executable).parent / "petal")]
CASES = (
    ("petal --help", ["--help"], 0.300),
    ("petal seed validate", ["seed", "validate", "seeds/bioinformatics.yaml"], 0.500),
)


def wall_time(argv: list[str]) -> float:
    began = time.monotonic()
    subprocess.run([*PETAL, *argv], cwd=REPO_ROOT, capture_output=True, check=True)
    return time.monotonic() - began


def top_imports(argv: list[str], count: int = 5) -> list[tuple[str, int]]:
    """The packages whose modules took longest to import (µs, own time summed)."""
    probe = "from petal.cli.main import main; main()"
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", probe, *argv],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    costs: dict[str, int] = {}
    for line in result.stderr.splitlines():
        match = re.match(r"import time:\s+(\d+) \|\s+\d+ \| *(\S+)", line)
        if match:
            name = match.group(2).split(".")[0]
            costs[name] = costs.get(name, 0) + int(match.group(1))
    return sorted(costs.items(), key=lambda item: -item[1])[:count]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    runs = parser.parse_args().runs
    for label, argv, goal in CASES:
        wall_time(argv)  # warm the file cache, as a second invocation would be
        times = [wall_time(argv) for _ in range(runs)]
        median = statistics.median(times)
        print(
            f"{label:<22} median {median * 1000:6.0f} ms  fastest {min(times) * 1000:6.0f} ms"
            f"  (goal <= {goal * 1000:.0f} ms, {runs} runs)"
        )
        costs = ", ".join(f"{name} {micro / 1000:.0f} ms" for name, micro in top_imports(argv))
        print(f"{'':<22} largest imports: {costs}")


if __name__ == "__main__":
    main()
