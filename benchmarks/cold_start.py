"""Cold start of every petal Lambda handler: importing `lambdas.<name>` in a fresh
process from the built code asset, with only what Lambda provides beside it.

    .venv/bin/python benchmarks/cold_start.py [--runs N] [--top K] [--handlers a,b]

What runs is what Lambda runs: the asset from `petal.lambda_bundle.build_bundle` (no
byte code: /var/task is read-only, so Lambda compiles its sources at every cold start)
on a path with nothing but the "runtime" (boto3 and aws-lambda-powertools[tracer], the
versions of requirements/local.txt, byte-compiled as AWS ships them), installed once
for the Lambda Python version under build/cold-start-runtime/ (pip, from the package
index). The process runs isolated (`-I -S`) with the environment a function has in
AWS (LAMBDA_TASK_ROOT, AWS_LAMBDA_FUNCTION_NAME...), so Powertools' Tracer is on, as
it is in AWS.

Prints, per handler, the median of N imports (each a new process, after one untimed
warm-up for the file cache) beside the goal, and the K modules that cost most in one
`-X importtime` run (own time summed per package; petal and lambdas per module group);
then the asset's zipped size. It measures; it does not judge. The goal is on the CPU
time of the import (time.process_time): a function has its own share of a CPU in
Lambda, while this machine is shared, and the wall time printed beside it also counts
the time the other processes take.

The handlers import PyYAML and jsonschema where they are used, not at import. A
handler that uses them in its invocations (FIRST_CALLS: prepare and intake validate a
seed in every one; resolver validates the seed an event carries and renders the
ParallelCluster config of every snapshot it finds) loads them in its first invocation
instead, so for it the benchmark also prints what that first use costs after a fresh
import (median of N): that part of a cold start moved out of the import, it is not
saved, and the goal does not count it.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from petal import deployment_contract as contract  # noqa: E402
from petal.lambda_bundle import (  # noqa: E402
    COMPLETE_MARKER,
    LAMBDA_PYTHON_VERSION,
    build_bundle,
    lambda_interpreter,
)

GOAL_SECONDS = 0.300
SEED = REPO_ROOT / "seeds" / "testing" / "workload-basic.yaml"
# What an invocation does first that loads a module the import left out:
# (what it is, setup code, the timed statement).
SEED_VALIDATION = (
    "the first seed validation (it loads what of PyYAML, jsonschema and the Spack package "
    "list the import did not)",
    "from petal.seed.loading import parse_seed",
    f"parse_seed({SEED.read_bytes()!r}, 'seed')",
)
CONFIG_RENDER = (
    "the first ParallelCluster config it generates and renders (PyYAML's dumper)",
    "from petal.cluster.config import generate_config, render_config\n"
    "from petal.cluster.settings import ClusterOverrides, cluster_settings\n"
    "overrides = ClusterOverrides(subnet_id='subnet-0123456789abcdef0', "
    "node_setup_uri='s3://petal-seeds-123456789012/node-setup/petal-node-setup.sh')",
    "render_config(generate_config(cluster_settings(None, overrides, "
    "default_region='us-east-1'), snapshot_id='snap-0123456789abcdef0', "
    "snapshot_size_gb=100, fingerprint='sha256:' + 'ab' * 32), ['petal'])",
)
FIRST_CALLS = {
    contract.STEP_FUNCTIONS["PrepareFunctionArn"]: (SEED_VALIDATION,),
    contract.INTAKE_FUNCTION: (SEED_VALIDATION,),
    contract.RESOLVER_FUNCTION: (
        (f"{SEED_VALIDATION[0]}, if its event carries a seed", *SEED_VALIDATION[1:]),
        CONFIG_RENDER,
    ),
}
HANDLERS = (
    *contract.STEP_FUNCTIONS.values(),
    contract.CALLBACK_FUNCTION,
    contract.LOG_HEARTBEAT_FUNCTION,
    contract.INTAKE_FUNCTION,
    contract.JANITOR_FUNCTION,
    contract.RESOLVER_FUNCTION,
)
# What the Lambda runtime and the Powertools layer provide; versions as the tests use.
RUNTIME_DISTRIBUTIONS = ("boto3", "aws-lambda-powertools")
RUNTIME_EXTRAS = {"aws-lambda-powertools": "[tracer]"}
LOCK = REPO_ROOT / "requirements" / "local.txt"
BUILD_DIR = REPO_ROOT / "build"
# The environment of a function in AWS, minus credentials: Powertools decides from
# LAMBDA_TASK_ROOT whether tracing is on.
LAMBDA_ENVIRONMENT = {
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EXECUTION_ENV": f"AWS_Lambda_python{LAMBDA_PYTHON_VERSION}",
    "AWS_LAMBDA_FUNCTION_NAME": "petal-cold-start",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
    "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
    "POWERTOOLS_SERVICE_NAME": "petal",
    "POWERTOOLS_METRICS_NAMESPACE": "Petal",
    "LANG": "en_US.UTF-8",
    "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
}


def lambda_python() -> str:
    """lambda_interpreter(), else the running one (with a warning)."""
    found = lambda_interpreter()
    if found is not None:
        return found
    print(
        f"warning: no Python {LAMBDA_PYTHON_VERSION} found; using {sys.executable} "
        "(imports of the asset's compiled wheels may fail)",
        file=sys.stderr,
    )
    return sys.executable


def runtime_requirements() -> list[str]:
    text = LOCK.read_text()
    pins = []
    for name in RUNTIME_DISTRIBUTIONS:
        match = re.search(rf"^{re.escape(name)}==(\S+)", text, re.M)
        if not match:
            raise SystemExit(f"{LOCK} pins no {name}")
        pins.append(f"{name}{RUNTIME_EXTRAS.get(name, '')}=={match.group(1)}")
    return pins


def runtime_dir(python: str) -> Path:
    """boto3 + Powertools with tracing, installed once per interpreter and versions."""
    requirements = runtime_requirements()
    version = subprocess.run(
        [python, "-c", "import sys; print(sys.version)"], capture_output=True, text=True
    ).stdout
    key = hashlib.sha256("\n".join([version, *requirements]).encode()).hexdigest()[:16]
    final = BUILD_DIR / "cold-start-runtime" / key
    if (final / COMPLETE_MARKER).is_file():
        return final
    shutil.rmtree(final, ignore_errors=True)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=final.parent))
    print(f"installing {' '.join(requirements)} for {python} into {final}", file=sys.stderr)
    env = {**os.environ, "PIP_REQUIRE_VIRTUALENV": "0", "PIP_NO_INPUT": "1"}
    subprocess.run(
        [
            *(python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"),
            *("--no-warn-script-location", "--target", str(tmp), *requirements),
        ],
        check=True,
        env=env,
    )
    # AWS ships the runtime's boto3 and the layer byte-compiled.
    subprocess.run([python, "-m", "compileall", "-q", str(tmp)], check=True)
    (tmp / COMPLETE_MARKER).write_text("ok\n")
    tmp.rename(final)
    return final


def probe_code(paths: list[Path], module: str) -> str:
    return (
        f"import sys; sys.path[:0] = {[str(p) for p in paths]!r}\n"
        "import time; began = time.perf_counter(), time.process_time()\n"
        f"import {module}\n"
        f"{_PRINT_ELAPSED}\n"
    )


def run(python: str, code: str, bundle: Path, *options: str) -> subprocess.CompletedProcess[str]:
    env = {**LAMBDA_ENVIRONMENT, "LAMBDA_TASK_ROOT": str(bundle)}
    return subprocess.run(
        # -I: no user site, no PYTHON* variables, no script directory; -S: no site
        # packages; -B: the asset's sources compiled at each start, as in Lambda.
        [python, "-I", "-S", "-B", *options, "-c", code],
        capture_output=True,
        text=True,
        check=False,
        env=env,
        cwd=bundle,
    )


# The probes' last line: wall and CPU seconds since `began`.
_PRINT_ELAPSED = "print(time.perf_counter() - began[0], time.process_time() - began[1])"


def import_seconds(python: str, paths: list[Path], module: str) -> tuple[float, float]:
    return seconds(python, paths, probe_code(paths, module), f"importing {module}")


def seconds(python: str, paths: list[Path], code: str, what: str) -> tuple[float, float]:
    """(wall, CPU) seconds, as the probe `code` prints them."""
    result = run(python, code, paths[0])
    if result.returncode != 0:
        raise SystemExit(f"{what} failed:\n{result.stderr}")
    wall, cpu = result.stdout.strip().splitlines()[-1].split()
    return float(wall), float(cpu)


def medians(samples: list[tuple[float, float]]) -> tuple[float, float]:
    """Median wall and median CPU seconds."""
    return statistics.median(s[0] for s in samples), statistics.median(s[1] for s in samples)


def first_call_code(paths: list[Path], module: str, setup: str, call: str) -> str:
    """After importing the handler and running `setup`: time `call`, as its first
    invocation runs it."""
    return (
        f"import sys; sys.path[:0] = {[str(p) for p in paths]!r}\n"
        f"import {module}\n"
        f"{setup}\n"
        "import time; began = time.perf_counter(), time.process_time()\n"
        f"{call}\n"
        f"{_PRINT_ELAPSED}\n"
    )


def group(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] in {"petal", "lambdas"} else parts[0]


def top_imports(python: str, paths: list[Path], module: str, count: int) -> list[tuple[str, int]]:
    """The groups of modules whose own import time was largest (µs)."""
    result = run(python, probe_code(paths, module), paths[0], "-X", "importtime")
    costs: dict[str, int] = {}
    for line in result.stderr.splitlines():
        match = re.match(r"import time:\s+(\d+) \|\s+\d+ \| *(\S+)", line)
        if match:
            name = group(match.group(2))
            costs[name] = costs.get(name, 0) + int(match.group(1))
    return sorted(costs.items(), key=lambda item: -item[1])[:count]


def zipped_size(bundle: Path) -> int:
    with tempfile.TemporaryDirectory() as scratch:
        archive = Path(scratch) / "asset.zip"
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as out:
            for path in sorted(bundle.rglob("*")):
                if path.is_file() and path.name != COMPLETE_MARKER:
                    out.write(path, path.relative_to(bundle).as_posix())
        return archive.stat().st_size


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--top", type=int, default=5)
    parser.add_argument("--handlers", default=",".join(HANDLERS))
    parser.add_argument(
        "--bytecode",
        action="store_true",
        help="compile the asset first (what shipping .pyc files in it would give)",
    )
    args = parser.parse_args()
    built = build_bundle(REPO_ROOT, BUILD_DIR)
    python = lambda_python()
    runtime = runtime_dir(python)
    with tempfile.TemporaryDirectory(prefix="petal-asset-") as scratch:
        # A copy without __pycache__, so nothing compiled earlier is reused.
        bundle = Path(scratch) / "task"
        shutil.copytree(built, bundle, ignore=shutil.ignore_patterns("__pycache__"))
        if args.bytecode:
            subprocess.run(
                [
                    python,
                    "-m",
                    "compileall",
                    "-q",
                    "--invalidation-mode",
                    "unchecked-hash",
                    str(bundle),
                ],
                check=True,
            )
        paths = [bundle, runtime]
        print(f"asset {built}; Python {python}; runtime {runtime}")
        if args.bytecode:
            print("asset compiled to byte code first (--bytecode): not what Lambda runs today")
        print(
            f"cold start = import of the handler module, median of {args.runs} fresh "
            "processes: CPU ms (goal), wall ms"
        )
        goal = f"goal <= {GOAL_SECONDS * 1000:.0f} ms"
        worst = 0.0
        for name in args.handlers.split(","):
            module = f"lambdas.{name}"
            import_seconds(python, paths, module)  # file cache
            wall, cpu = medians([import_seconds(python, paths, module) for _ in range(args.runs)])
            worst = max(worst, cpu)
            costs = ", ".join(
                f"{group_name} {micro / 1000:.0f}"
                for group_name, micro in top_imports(python, paths, module, args.top)
            )
            print(
                f"{name:<15} {cpu * 1000:5.0f} ms CPU ({goal}), {wall * 1000:4.0f} ms wall"
                f"  top imports, ms: {costs}"
            )
            for what, setup, call in FIRST_CALLS.get(name, ()):
                code = first_call_code(paths, module, setup, call)
                first_wall, first_cpu = medians(
                    [seconds(python, paths, code, f"{what} in {module}") for _ in range(args.runs)]
                )
                print(
                    f"{'':<15} + {first_cpu * 1000:3.0f} ms CPU, {first_wall * 1000:4.0f} ms wall "
                    f"in its first invocation: {what}; not in the goal"
                )
        print(f"slowest handler {worst * 1000:.0f} ms CPU ({goal})")
    size = zipped_size(built)
    files = sum(1 for p in built.rglob("*") if p.is_file())
    print(f"asset zipped: {size / 1e6:.2f} MB ({files} files)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
