"""What `petal build list` costs as the history grows: 10, 100, 1,000 and 10,000 build
records in the embedded AWS emulator (moto, in this process, as `petal --local`).

    .venv/bin/python benchmarks/build_list.py [--runs N] [--sizes 10,100,1000,10000]

For each size: the CPU time (time.process_time, median of N calls) of one page of the
builds table (`BuildTable.list_page`, 20 builds, as `build list` asks), of a filtered
page (`--status RUNNING` when only the oldest build runs, so the page finds one build
at most), and of the whole command `petal build list --json` in this process (builds,
software volumes from EC2, the JSON). It measures, it does not judge.

The promise is that a listing costs a page, not the history. Every call reads a
bounded number of records, however many there are (READ_BOUND): a page reads 21 (its
20 and one more, which says whether another page exists); a filtered page, which
DynamoDB filters after reading, reads at most 2 Queries of 500 records
(petal.build.table.MAX_PAGE_READS x FILTERED_READ, about a DynamoDB response each)
and then ends short, with a cursor. Below its bound a call reads every record there
is, so it costs less (at 10 records a page holds 10 builds; a filtered page reads all
of them up to 1,000). The goals, per call: from the first size at which it reads its
whole bound (its "full" size) up to the largest, the cost stays within 2x its cost at
the full size (flat: more history costs nothing more); and it stays within 100 ms at
every size (the command, which also asks EC2, has no such goal).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
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
from petal.build.table import FILTERED_READ, MAX_PAGE_READS  # noqa: E402
from petal.cli.main import main as petal  # noqa: E402
from petal.local.deploy import STACK_NAME  # noqa: E402
from petal.local.emulator import LocalAws  # noqa: E402
from petal.local.server import publish_stack  # noqa: E402

PAGE_GOAL_MS = 100.0
FLAT_GOAL = 2.0  # the cost at any size over the cost at the call's full size
PAGE = 20
PAGE_CASE, FILTERED_CASE, COMMAND_CASE = "page of 20", "filtered page", "petal build list --json"
# The most records each call reads, however long the history (see the docstring).
READ_BOUND = {
    PAGE_CASE: PAGE + 1,
    FILTERED_CASE: MAX_PAGE_READS * FILTERED_READ,
    COMMAND_CASE: PAGE + 1,
}
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
    parser.add_argument("--runs", type=int, default=15)
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
                PAGE_CASE: lambda: aws.table.list_page(PAGE),
                FILTERED_CASE: lambda: aws.table.list_page(PAGE, status="RUNNING"),
                COMMAND_CASE: command,
            }
            results: dict[str, dict[int, float]] = {case: {} for case in cases}
            have = 0
            for size in sizes:
                fill(aws, have, size)
                have = size
                gc.collect()  # the fill's garbage, not the listing's
                for case, call in cases.items():
                    call()  # first call of a size: moto's caches, not the listing
                    results[case][size] = cpu_ms(call, options.runs)
    print(f"petal build list on the emulator, CPU ms per call (median of {options.runs})")
    print(f"{'records':>8}  " + "  ".join(f"{case:>24}" for case in results))
    for size in sizes:
        print(f"{size:>8,}  " + "  ".join(f"{results[c][size]:>24.1f}" for c in results))
    for case, by_size in results.items():
        print(verdict(case, by_size))


def verdict(case: str, by_size: dict[int, float]) -> str:
    """The call's goals, judged on its figures."""
    bound = READ_BOUND[case]
    full = [size for size in by_size if size >= bound]
    line = f"{case}: reads at most {bound:,} records"
    if not full:
        line += f"; no size reaches it (goal <= {FLAT_GOAL:.0f}x from there: not measured)"
    else:
        base, largest = min(full), max(full)
        ratio = max(by_size[size] for size in full) / by_size[base]
        flat = "met" if ratio <= FLAT_GOAL else "MISSED"
        line += (
            f"; from {base:,} to {largest:,} records at most {ratio:.2f}x its cost at {base:,}"
            f" (goal <= {FLAT_GOAL:.0f}x: {flat})"
        )
        below = ", ".join(
            f"{by_size[size] / by_size[base]:.2f}x at {size:,}" for size in by_size if size < base
        )
        if below:
            line += f"; reading every record below {base:,}: {below}"
    if case != COMMAND_CASE:
        slowest = max(by_size.values())
        line += f"; slowest {slowest:.1f} ms (goal <= {PAGE_GOAL_MS:.0f} ms: "
        line += ("met" if slowest <= PAGE_GOAL_MS else "MISSED") + ")"
    return line


if __name__ == "__main__":
    main()
