"""How long validating a seed takes in process: a valid 500-package seed (the most a
seed may hold), and seeds that are refused early (over the size limit, over the package
limit, nested 5,000 deep).

    .venv/bin/python benchmarks/seed_validation.py [--runs N]

Prints the median and the fastest of N runs beside the goal (100 ms for the 500-package
seed). Every run starts with an empty spec cache, as a fresh process would.
It measures; it does not judge (the tests assert behaviour, never time).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from petal.seed import loading, spack_packages
from petal.seed.model import MAX_PACKAGES, MAX_SEED_BYTES, SeedError

GOAL_SECONDS = 0.100


def _seed(packages: int) -> bytes:
    """A seed of real Spack v0.23.0 packages at versions their recipes declare (the
    package list is checked too), each spec with variants, a compiler and a dependency."""
    shipped = spack_packages.catalog()
    assert shipped is not None, "petal/data holds the Spack package list"
    named = [(n, v[0]) for n, v in sorted(shipped.packages.items()) if v][:packages]
    named = (named * (packages // max(len(named), 1) + 1))[:packages]
    specs = "".join(
        f"    - {name}@{version} +mpi ~shared build_type=Release %gcc@13.2.0 ^zlib@1.3\n"
        for name, version in named
    )
    return f"name: big\nsoftware:\n  compilers: [gcc@13.2.0]\n  packages:\n{specs}".encode()


CASES: tuple[tuple[str, bytes, bool], ...] = (
    (f"valid, {MAX_PACKAGES} packages", _seed(MAX_PACKAGES), True),
    (f"refused, {MAX_PACKAGES * 2} packages", _seed(MAX_PACKAGES * 2), False),
    ("refused, over the size limit", b"name: a\n" + b"#" * MAX_SEED_BYTES, False),
    ("refused, 5,000 levels deep", b"name: a\ndescription: " + b"[" * 5000 + b"]" * 5000, False),
)


def _once(text: bytes, valid: bool) -> float:
    loading._parsed.cache_clear()
    began = time.perf_counter()
    try:
        loading.parse_seed(text, "bench.yaml")
        outcome = True
    except SeedError:
        outcome = False
    elapsed = time.perf_counter() - began
    if outcome != valid:
        raise SystemExit("unexpected outcome: the benchmark's seeds are out of date")
    return elapsed


def _measure(runs: int, case: Callable[[], float]) -> list[float]:
    case()  # warm up imports and the schema cache
    return [case() for _ in range(runs)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    print(f"{'case':<36} {'median':>9} {'fastest':>9}   goal")
    for name, text, valid in CASES:
        times = _measure(args.runs, lambda text=text, valid=valid: _once(text, valid))
        median, fastest = statistics.median(times), min(times)
        print(
            f"{name:<36} {median * 1000:7.1f}ms {fastest * 1000:7.1f}ms"
            f"   < {GOAL_SECONDS * 1000:.0f} ms"
        )


if __name__ == "__main__":
    main()
