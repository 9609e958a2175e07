"""What a registry lookup (`find` of a fingerprint) costs at 100, 1,000 and 10,000
stacks: cold (empty cache), warm (within the TTL, in a new process and again in the
same one) and revalidated (after the TTL: conditional requests answered 304).

    .venv/bin/python benchmarks/registry.py [--runs N] [--sizes 100,1000,10000]

The registry is generated and served over real HTTP on 127.0.0.1 by
tests/data/registry/registry_server.py, in a child process, so the CPU time measured
here (time.process_time, median of N runs) is the client's alone. A "new process" is
simulated by forgetting the parsed documents kept in memory: only the cache on disk
remains. Prints each figure beside its goal; it measures, it does not judge.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from petal.registry.client import RegistryClient, forget_parsed_documents  # noqa: E402
from tests.data.registry.registry_server import RegistryServer  # noqa: E402

WARM_GOAL_MS = 20.0
TTL = 600


def generate(stacks: int) -> tuple[dict[str, bytes], str]:
    """A registry of `stacks` entries and the fingerprint of its last one."""
    files: dict[str, bytes] = {}
    index: list[dict[str, object]] = []
    for n in range(stacks):
        name = f"stack-{n:05d}-v1"
        fingerprint = f"sha256:{n:064x}"
        index.append(
            {
                "name": name,
                "fingerprint": fingerprint,
                "metadata_url": f"{name}.json",
                "description": f"Software stack {n}: compilers, MPI and I/O libraries",
                "packages": ["gcc@13.2.0", "openmpi@5.0.3", "hdf5@1.14.3+mpi", "netcdf-c"],
            }
        )
        entry = {
            "name": name,
            "fingerprint": fingerprint,
            "aws_account": "999888777666",
            "snapshots": [
                {
                    "region": region,
                    "snapshot_id": f"snap-{n:017x}"[:-1] + str(i),
                    "os": "al2023",
                    "architecture": "x86_64",
                    "size_gb": 500,
                }
                for i, region in enumerate(("us-east-1", "us-west-2", "eu-west-1"))
            ],
        }
        files[f"snapshots/{name}.json"] = json.dumps(entry, indent=2).encode()
    document = {"version": "1.0", "snapshots": index}
    files["snapshots/index.json"] = json.dumps(document, indent=2).encode()
    return files, f"sha256:{stacks - 1:064x}"


def serve(files: dict[str, bytes], conn: Connection) -> None:
    """The child process: serve `files`, answer "hits" with the statuses since the
    last ask, stop on "stop"."""
    server = RegistryServer(files)
    conn.send(server.url)
    while True:
        command = conn.recv()
        if command == "hits":
            conn.send([h.status for h in server.hits])
            server.reset_hits()
        else:
            server.close()
            return


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def measure(lookup: Callable[[], object]) -> float:
    began = time.process_time()
    found = lookup()
    spent = time.process_time() - began
    assert found is not None, "the fingerprint should be found"
    return spent * 1000


def run(stacks: int, runs: int) -> dict[str, tuple[float, list[int]]]:
    files, fingerprint = generate(stacks)
    size = len(files["snapshots/index.json"])
    if runs > 1:
        print(f"{stacks:>7,}  index.json {size / 1e6:.2f} MB")
    context = multiprocessing.get_context("fork")
    parent, child = context.Pipe()
    process = context.Process(target=serve, args=(files, child), daemon=True)
    process.start()
    url = parent.recv()

    def hits() -> list[int]:
        parent.send("hits")
        statuses: list[int] = parent.recv()
        return statuses

    results: dict[str, list[tuple[float, list[int]]]] = {}
    try:
        for _ in range(runs):
            with tempfile.TemporaryDirectory() as cache:
                clock = Clock()

                def client(clock: Clock = clock, cache: str = cache) -> RegistryClient:
                    return RegistryClient(url, cache_dir=Path(cache), ttl_seconds=TTL, clock=clock)

                forget_parsed_documents()
                hits()
                cost = measure(lambda: client().find(fingerprint))
                results.setdefault("cold", []).append((cost, hits()))
                forget_parsed_documents()
                cost = measure(lambda: client().find(fingerprint))
                results.setdefault("warm, new process", []).append((cost, hits()))
                cost = measure(lambda: client().find(fingerprint))
                results.setdefault("warm, same process", []).append((cost, hits()))
                clock.now += TTL + 1
                forget_parsed_documents()
                cost = measure(lambda: client().find(fingerprint))
                results.setdefault("revalidated (304)", []).append((cost, hits()))
    finally:
        parent.send("stop")
        process.join(timeout=10)
    return {
        case: (statistics.median(c for c, _ in rows), rows[-1][1]) for case, rows in results.items()
    }


GOALS = {
    "cold": (None, "<= 2 requests"),
    "warm, new process": (WARM_GOAL_MS, "0 requests"),
    "warm, same process": (WARM_GOAL_MS, "0 requests"),
    "revalidated (304)": (WARM_GOAL_MS, "<= 2 requests, all 304"),
}


def meets(case: str, cost: float, statuses: list[int]) -> bool:
    cpu_goal = GOALS[case][0]
    if cpu_goal is not None and cost > cpu_goal:
        return False
    if case == "cold":
        return len(statuses) <= 2
    if case.startswith("warm"):
        return not statuses
    return len(statuses) <= 2 and all(s == 304 for s in statuses)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sizes", default="100,1000,10000")
    options = parser.parse_args()
    sizes = [int(s) for s in options.sizes.split(",")]
    run(10, 1)  # imports, the schema validators: paid once per process, not per lookup
    print(f"registry lookup (find), CPU of the client, median of {options.runs} run(s)")
    print(f"{'stacks':>7}  {'case':<20} {'CPU ms':>8}  {'requests':<14} goal")
    for stacks in sizes:
        for case, (cost, statuses) in run(stacks, options.runs).items():
            cpu_goal, request_goal = GOALS[case]
            goal = (f"<= {cpu_goal:.0f} ms, " if cpu_goal is not None else "") + request_goal
            requests = f"{len(statuses)} {statuses}" if statuses else "0"
            verdict = "met" if meets(case, cost, statuses) else "MISSED"
            print(f"{stacks:>7,}  {case:<20} {cost:>8.1f}  {requests:<14} {goal} ({verdict})")


if __name__ == "__main__":
    main()
