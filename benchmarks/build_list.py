"""What `petal build list` costs as the history grows: 10, 100, 1,000 and 10,000 build
records in the embedded AWS emulator (moto, in this process, as `petal --local`).

    .venv/bin/python benchmarks/build_list.py [--runs N] [--sizes 10,100,1000,10000]

For each size: the CPU time (time.process_time, median of N calls) of one page of the
builds table (`BuildTable.list_page`, 20 builds, as `build list` asks), of a filtered
page (`--status RUNNING` when only the oldest build runs: the reads are bounded), and
of the whole command `petal build list --json` in this process (builds, software
volumes from EC2, the JSON). The goal: a flat cost, each call at 10,000 records within
2x the same call at 10 records, and a page within 100 ms. It measures, it does not judge.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from petal.build.records import BuildRecord, iso, to_dynamo  # noqa: E402
from petal.cli.main import main as petal  # noqa: E402
from petal.local.deploy import STACK_NAME  # noqa: E402
from petal.local.emulator import LocalAws  # noqa: E402
from petal.local.server import publish_stack  # noqa: E402

PAGE_GOAL_MS = 100.0
FLAT_GOAL = 2.0  # the 10,000-record cost over the 10-record cost
START = datetime(2025, 1, 1, tzinfo=UTC)


def fill(aws: LocalAws, have: int, want: int) -> None:
    """Records `have` .. `want`-1, written 25 at a time; only b0000000 is RUNNING."""
    client = aws.client("dynamodb")
    table = aws.table.table_name
    items = [
        BuildRecord(
            build_id=f"b{n:07d}",
            status="RUNNING" if n == 0 else "SUCCEEDED",
            started_at=iso(START + timedelta(seconds=n)),
            seed_name="bioinformatics" if n % 2 else "chemistry",
            fingerprint="sha256:" + f"{n % 50:064x}",
            os="alinux2023",
            architecture="x86_64",
            execution_arn=f"arn:aws:states:us-east-1:123456789012:execution:petal-build:b{n}",
            snapshot_id=None if n == 0 else f"snap-{n:017x}",
        ).to_item()
        for n in range(have, want)
    ]
    for i in range(0, len(items), 25):
        batch = [{"PutRequest": {"Item": to_dynamo(item)}} for item in items[i : i + 25]]
        client.batch_write_item(RequestItems={table: batch})


def cpu_ms(call: Callable[[], object], runs: int) -> float:
    costs = []
    for _ in range(runs):
        began = time.process_time()
        call()
        costs.append((time.process_time() - began) * 1000)
    return statistics.median(costs)


def command() -> None:
    with contextlib.redirect_stdout(io.StringIO()):
        code = petal(
            ["build", "list", "--json", "--stack-name", STACK_NAME, "--region", "us-east-1"]
        )
    assert code == 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--sizes", default="10,100,1000,10000")
    options = parser.parse_args()
    sizes = sorted(int(s) for s in options.sizes.split(","))
    with tempfile.TemporaryDirectory() as home:
        os.environ["PETAL_CONFIG"] = str(Path(home) / "absent.yaml")
        for name in ("PETAL_STACK_NAME", "PETAL_REGION", "AWS_PROFILE", "AWS_ENDPOINT_URL"):
            os.environ.pop(name, None)
        with LocalAws(REPO_ROOT) as aws:
            publish_stack(aws)
            cases: dict[str, Callable[[], object]] = {
                "page of 20": lambda: aws.table.list_page(20),
                "filtered page": lambda: aws.table.list_page(20, status="RUNNING"),
                "petal build list --json": command,
            }
            results: dict[str, dict[int, float]] = {case: {} for case in cases}
            have = 0
            for size in sizes:
                fill(aws, have, size)
                have = size
                for case, call in cases.items():
                    call()  # first call of a size: moto's caches, not the listing
                    results[case][size] = cpu_ms(call, options.runs)
    print(f"petal build list on the emulator, CPU ms per call (median of {options.runs})")
    print(f"{'records':>8}  " + "  ".join(f"{case:>24}" for case in results))
    for size in sizes:
        print(f"{size:>8,}  " + "  ".join(f"{results[c][size]:>24.1f}" for c in results))
    first, last = sizes[0], sizes[-1]
    for case, by_size in results.items():
        ratio = by_size[last] / by_size[first]
        flat = "met" if ratio <= FLAT_GOAL else "MISSED"
        line = f"{case}: {last:,} / {first:,} records = {ratio:.2f}x"
        line += f" (goal <= {FLAT_GOAL:.0f}x: {flat})"
        if case != "petal build list --json":
            worst = max(by_size.values())
            line += f"; slowest {worst:.1f} ms (goal <= {PAGE_GOAL_MS:.0f} ms: "
            line += ("met" if worst <= PAGE_GOAL_MS else "MISSED") + ")"
        print(line)
    print(
        "Each page asks DynamoDB for 21 items (Limit), a filtered one for at most 2 reads of"
        " 500; moto itself scans and sorts the whole table on every Query."
    )


if __name__ == "__main__":
    main()
