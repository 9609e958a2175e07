"""How long the real Spack takes to concretize each example seed, and what it reports.

    .venv/bin/python benchmarks/spack_concretize.py [--spack-tarball FILE] [SEED ...]

Concretizes every seed under seeds/ (or the ones named) with Spack v0.23.0 from the
tarball (default ../shared/tools/spack-v0.23.0.tar.gz), offline, never from the lock
cache, and prints per seed the CPU seconds Spack used, the number of concrete specs and
the problems `petal seed check` would report (Spack's refusals and the properties of
the lock). CI (`make spack-check`, tests/spack/test_real_spack.py) checks every seed
too, but solves one only when it or the Spack changed (the lock cache in
~/.cache/petal/spack): this always solves, to time each seed. It measures; it does not
judge.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from petal.seed import spack_check
from petal.seed.loading import load_seed

DEFAULT_TARBALL = Path("../shared/tools/spack-v0.23.0.tar.gz")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("seeds", nargs="*", type=Path)
    parser.add_argument("--spack-tarball", type=Path, default=DEFAULT_TARBALL)
    parser.add_argument("--timeout", type=float, default=3600)
    args = parser.parse_args()
    seeds = args.seeds or sorted(Path("seeds").glob("**/*.yaml"))
    began = time.monotonic()
    spack = spack_check.prepare(tarball=args.spack_tarball, timeout=args.timeout)
    print(f"Spack ready in {time.monotonic() - began:.0f} s ({spack.root})")
    print(f"{'seed':<40} {'CPU':>7} {'wall':>6} {'specs':>6}  result")
    total = 0.0
    for path in seeds:
        seed = load_seed(path)
        began = time.monotonic()
        result = spack_check.check_seed(
            seed, str(path), spack, timeout=args.timeout, use_cache=False
        )
        wall = time.monotonic() - began
        total += result.cpu_seconds
        specs = len((result.lock or {}).get("concrete_specs", {}))
        verdict = "ok" if result.ok else f"{len(result.problems)} problem(s)"
        print(
            f"{path!s:<40} {result.cpu_seconds:6.0f}s {wall:5.0f}s {specs:>6}  {verdict}",
            flush=True,
        )
        for problem in result.problems:
            print(f"    {problem.format(str(path))}")
    print(f"{'total':<40} {total:6.0f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
