"""Build the code asset shared by every petal Lambda function, without Docker.

The asset is `lambdas/` + `petal/` (less what Lambda never imports, `EXCLUDED_SOURCES`)
+ the third-party packages the handlers need (PyYAML, jsonschema and what they pull
in, less what the Powertools layer ships: `PROVIDED_BY_LAYER`). boto3 comes with the
Lambda runtime and
Powertools with the AWS-managed layer, so neither is bundled: bundling them would
shadow the versions AWS patches.

Dependencies are installed with pip for the Lambda platform (manylinux x86_64,
CPython 3.12) rather than for the machine running `cdk synth`, from the lock file
requirements/lambda.txt (every package pinned, transitive ones included, with its
hashes; `make lock` regenerates it from requirements/lambda.in), and cached under a
directory keyed by a hash of the pins, so a synth after the first one only copies
files. Everything is written to a temporary directory first and renamed into place,
so concurrent synths (pytest-xdist workers, the CLI test) never see a half-built
directory.

This module must stay importable without aws-cdk-lib: the CDK stack imports it, and so
do tests that check the pip step on its own.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

# One place for the Lambda Python version: the runtime, the Powertools layer name
# and the wheels pip selects must agree, or compiled extensions fail to import.
LAMBDA_PYTHON_VERSION: Final = "3.12"
LAMBDA_PLATFORM: Final = "manylinux2014_x86_64"

# Provided by the Lambda runtime or the Powertools layer; bundling them would shadow
# the patched versions AWS ships.
FORBIDDEN_DISTRIBUTIONS: Final = frozenset(
    {"boto3", "botocore", "s3transfer", "aws-lambda-powertools"}
)

# In the lock, since pip needs them to satisfy the packages that depend on them, but
# left out of the asset: the Powertools layer, which every function has, ships them
# byte-compiled, while a copy in the asset would shadow it (/var/task comes first on
# sys.path) and be compiled from source at every cold start (typing_extensions: about
# 40 ms). The layer's version satisfies the pinned packages: Powertools requires
# typing-extensions >= 4.11, jsonschema's `referencing` >= 4.4.
PROVIDED_BY_LAYER: Final = frozenset({"typing-extensions"})

# The parts of the repository that run inside Lambda.
SOURCE_PACKAGES: Final[tuple[str, ...]] = ("lambdas", "petal")
# What of them Lambda never imports (paths relative to the repository): the CLI, the
# emulator (the only part of petal that imports lambdas/), sharing and registry
# publishing (CLI commands). tests/infra/test_lambda_bundle.py checks that every
# import of every bundled module, function-level ones included, stays inside the asset.
EXCLUDED_SOURCES: Final[tuple[str, ...]] = (
    "petal/__main__.py",
    "petal/cli",
    "petal/local",
    "petal/sharing",
    "petal/registry/publish.py",
    # The real-Spack check runs on a workstation or in CI, never in a Lambda function.
    "petal/seed/spack_check.py",
)

_IGNORED_NAMES: Final = frozenset({"__pycache__", ".mypy_cache", ".pytest_cache"})
# A dependency's own test suite and benchmarks (jsonschema's, referencing's): never
# imported at run time (about 460 KB unzipped).
_DEPENDENCY_EXTRAS: Final = frozenset({"tests", "benchmarks"})
_IGNORED_SUFFIXES: Final = frozenset({".pyc", ".pyo"})
# Written last into a finished build directory; the asset excludes it.
COMPLETE_MARKER: Final = ".petal-complete"


class BundleError(RuntimeError):
    """The Lambda asset could not be built; the message says what to fix."""


# The one list of what the asset bundles: written by `make lock` for LAMBDA_PYTHON_VERSION
# and LAMBDA_PLATFORM, pinned with hashes so the asset is reproducible and the cache key
# changes exactly when the bundle's content would. `verify_dependencies` fails when pip
# installs anything the lock does not list.
LAMBDA_LOCK_FILE: Final = Path(__file__).resolve().parent.parent / "requirements" / "lambda.txt"

# `name==version`, at the start of a line of `uv pip compile` / pip-compile output; hash
# and comment lines start with blanks, options with a dash.
_PIN_LINE: Final = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)\s*(;[^\\]*)?")


def read_lock(path: Path = LAMBDA_LOCK_FILE) -> tuple[str, ...]:
    """The `name==version` pins of a lock file, in file order."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise BundleError(f"cannot read the Lambda lock file {path}: {exc}") from exc
    pins: list[str] = []
    for line in text.splitlines():
        match = _PIN_LINE.match(line)
        if not match:
            continue
        if match.group(3):
            # A marker would make the set depend on the machine running the synth; the
            # lock is compiled for one interpreter and platform, so it has none.
            raise BundleError(f"{path}: {line.strip()!r} has an environment marker")
        pins.append(f"{match.group(1)}=={match.group(2)}")
    if not pins:
        raise BundleError(f"{path} pins no package: run `make lock`")
    return tuple(pins)


LAMBDA_REQUIREMENTS: Final[tuple[str, ...]] = read_lock()


Runner = Callable[[Sequence[str]], "subprocess.CompletedProcess[str]"]


def _run(command: Sequence[str]) -> subprocess.CompletedProcess[str]:
    # PIP_REQUIRE_VIRTUALENV would refuse a --target install outside a venv; the
    # target directory is not an environment, so the setting does not apply here.
    env = {**os.environ, "PIP_REQUIRE_VIRTUALENV": "0", "PIP_NO_INPUT": "1"}
    return subprocess.run(command, capture_output=True, text=True, check=False, env=env)


def normalize_name(name: str) -> str:
    """PEP 503 normalisation, so `PyYAML` and `pyyaml` compare equal."""
    out = name.strip().lower()
    for sep in ("_", "."):
        out = out.replace(sep, "-")
    while "--" in out:
        out = out.replace("--", "-")
    return out


@dataclass(frozen=True)
class Pin:
    name: str
    version: str

    @classmethod
    def parse(cls, requirement: str) -> Pin:
        name, sep, version = requirement.partition("==")
        if not sep or not name.strip() or not version.strip():
            raise BundleError(f"Lambda requirement {requirement!r} must be pinned as name==version")
        return cls(normalize_name(name), version.strip())


def requirements_key(
    requirements: Iterable[str] = LAMBDA_REQUIREMENTS,
    python_version: str = LAMBDA_PYTHON_VERSION,
    platform: str = LAMBDA_PLATFORM,
) -> str:
    """Cache key of a dependency set: what pip is asked for, for which platform."""
    pins = sorted(f"{p.name}=={p.version}" for p in map(Pin.parse, requirements))
    text = "\n".join([f"python={python_version}", f"platform={platform}", *pins])
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def pip_install_command(
    target: Path,
    lock: Path = LAMBDA_LOCK_FILE,
    python_version: str = LAMBDA_PYTHON_VERSION,
    platform: str = LAMBDA_PLATFORM,
    python: str = sys.executable,
) -> list[str]:
    """The pip invocation that installs the lock file's packages for Lambda into `target`."""
    return [
        python,
        "-m",
        "pip",
        "install",
        "--platform",
        platform,
        "--only-binary=:all:",
        "--python-version",
        python_version,
        "--implementation",
        "cp",
        "--target",
        str(target),
        # Byte code compiled by the synth machine's Python would be for the wrong
        # interpreter; Lambda compiles on first import instead.
        "--no-compile",
        # pip otherwise checks the *calling* environment for conflicts, which says
        # nothing about the target directory and only adds noise.
        "--no-warn-conflicts",
        "--no-warn-script-location",
        "--disable-pip-version-check",
        "--retries",
        "5",
        "--timeout",
        "30",
        "--quiet",
        # Every download must match a hash in the lock, and every package pip would
        # pull in must be in it: a lock that misses one fails here, naming it.
        "--require-hashes",
        "--requirement",
        str(lock),
    ]


def installed_distributions(directory: Path) -> dict[str, str]:
    """Normalised name -> version of every distribution installed in `directory`."""
    found: dict[str, str] = {}
    for info in directory.glob("*.dist-info"):
        name, _, version = info.name.removesuffix(".dist-info").rpartition("-")
        if name:
            found[normalize_name(name)] = version
    return found


def verify_dependencies(
    directory: Path,
    requirements: Sequence[str] = LAMBDA_REQUIREMENTS,
    python_version: str = LAMBDA_PYTHON_VERSION,
) -> None:
    """Fail unless `directory` holds exactly the pinned set, built for Lambda."""
    wanted = {p.name: p.version for p in map(Pin.parse, requirements)}
    found = installed_distributions(directory)
    problems: list[str] = []
    for name, version in sorted(wanted.items()):
        if name not in found:
            problems.append(f"{name}=={version} is missing")
        elif found[name] != version:
            problems.append(f"{name} is {found[name]}, expected {version}")
    extra = sorted(set(found) - set(wanted))
    if extra:
        problems.append(
            f"pip installed unpinned distributions {extra}: "
            "add them to requirements/lambda.in and run `make lock`"
        )
    forbidden = sorted(set(found) & FORBIDDEN_DISTRIBUTIONS)
    if forbidden:
        problems.append(f"{forbidden} must come from the Lambda runtime or layer, not the bundle")
    # A wheel for the synth machine's interpreter would import fine locally and fail
    # in Lambda, so every compiled extension must carry the Lambda interpreter's tag.
    abi = "cpython-" + python_version.replace(".", "")
    for ext in sorted(directory.rglob("*.so")):
        if abi not in ext.name and ".abi3." not in ext.name:
            problems.append(f"{ext.relative_to(directory)} is not built for {abi}")
        elif "x86_64" not in ext.name and ".abi3." not in ext.name:
            problems.append(f"{ext.relative_to(directory)} is not built for x86_64")
    if problems:
        raise BundleError("Lambda dependencies are wrong:\n  " + "\n  ".join(problems))


def bundled_requirements(requirements: Sequence[str] = LAMBDA_REQUIREMENTS) -> tuple[str, ...]:
    """The pins whose packages the asset holds: the lock's, less PROVIDED_BY_LAYER."""
    return tuple(r for r in requirements if Pin.parse(r).name not in PROVIDED_BY_LAYER)


def _drop_layer_provided(directory: Path) -> None:
    """Remove the distributions of PROVIDED_BY_LAYER from an installed `directory`:
    every file their RECORD lists, then their dist-info."""
    for info in directory.glob("*.dist-info"):
        name = info.name.removesuffix(".dist-info").rpartition("-")[0]
        if normalize_name(name) not in PROVIDED_BY_LAYER:
            continue
        record = info / "RECORD"
        listed = record.read_text().splitlines() if record.is_file() else []
        root = directory.resolve()
        files = [(directory / line.split(",")[0]).resolve() for line in listed]
        for path in files:
            # Only the package's own files: not its dist-info (removed whole below), nor
            # a script RECORD lists outside the directory (../../bin/...).
            if path.is_file() and root in path.parents and info.resolve() not in path.parents:
                path.unlink()
        shutil.rmtree(info)
        # A package's folders, deepest first, once their files are gone.
        for folder in sorted({p.parent for p in files}, key=lambda p: -len(p.parts)):
            if root in folder.parents and folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()


def _publish(tmp: Path, final: Path) -> Path:
    """Move a finished build into place; if another process won the race, use theirs."""
    (tmp / COMPLETE_MARKER).write_text("ok\n")
    try:
        tmp.rename(final)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not (final / COMPLETE_MARKER).is_file():
            raise
    return final


# Finished bundles older than this are removed when a new one is built (each source
# change makes one); temporary directories older than an hour are crashed builds.
STALE_BUNDLE_SECONDS: Final = 7 * 24 * 3600
STALE_SCRATCH_SECONDS: Final = 3600


def prune(parent: Path, keep: Path, now: float | None = None) -> list[Path]:
    """Remove stale builds under `parent` (never `keep`); returns what was removed."""
    current = time.time() if now is None else now
    removed: list[Path] = []
    for path in parent.iterdir() if parent.is_dir() else ():
        if path == keep or not path.is_dir():
            continue
        limit = STALE_SCRATCH_SECONDS if path.name.startswith(".tmp-") else STALE_BUNDLE_SECONDS
        if current - path.stat().st_mtime > limit:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def _scratch(parent: Path, name: str) -> Path:
    parent.mkdir(parents=True, exist_ok=True)
    path = parent / f".tmp-{name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    path.mkdir()
    return path


def install_dependencies(
    cache_root: Path,
    lock: Path = LAMBDA_LOCK_FILE,
    python_version: str = LAMBDA_PYTHON_VERSION,
    platform: str = LAMBDA_PLATFORM,
    runner: Runner = _run,
) -> Path:
    """Return a directory holding the lock file's packages for Lambda, installing if needed."""
    # Read now rather than at import, so a `make lock` during a session takes effect.
    requirements = read_lock(lock)
    final = cache_root / requirements_key(requirements, python_version, platform)
    if (final / COMPLETE_MARKER).is_file():
        return final
    if final.exists():
        # Left behind by a build that died between rename and marker: start over.
        shutil.rmtree(final, ignore_errors=True)
    tmp = _scratch(cache_root, final.name)
    try:
        command = pip_install_command(tmp, lock, python_version, platform)
        result = runner(command)
        if result.returncode != 0:
            raise BundleError(
                "pip could not install the Lambda dependencies "
                f"(exit {result.returncode}):\n{' '.join(command)}\n"
                f"{result.stdout}{result.stderr}".rstrip()
            )
        # Console scripts are for a shell, not for a Lambda import path.
        shutil.rmtree(tmp / "bin", ignore_errors=True)
        verify_dependencies(tmp, requirements, python_version)
        return _publish(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _ignore(_directory: str, names: list[str]) -> set[str]:
    return {
        n for n in names if n in _IGNORED_NAMES or any(n.endswith(s) for s in _IGNORED_SUFFIXES)
    }


def _ignore_in_dependencies(root: Path) -> Callable[[str, list[str]], set[str]]:
    """`_ignore`, and in each top-level package of `root`, its test suite and benchmarks."""

    def ignore(directory: str, names: list[str]) -> set[str]:
        ignored = _ignore(directory, names)
        if Path(directory).parent == root:
            ignored |= {n for n in names if n in _DEPENDENCY_EXTRAS}
        return ignored

    return ignore


def _excluded(rel: Path) -> bool:
    return any(rel == Path(e) or Path(e) in rel.parents for e in EXCLUDED_SOURCES)


def source_files(repo_root: Path) -> list[Path]:
    """Files of the repository that go into the asset, relative to `repo_root`."""
    files: list[Path] = []
    for package in SOURCE_PACKAGES:
        root = repo_root / package
        if not root.is_dir():
            raise BundleError(f"{root} does not exist: the Lambda asset needs it")
        for path in sorted(root.rglob("*")):
            rel = path.relative_to(repo_root)
            if path.is_file() and not _ignore("", list(rel.parts)) and not _excluded(rel):
                files.append(rel)
    return files


def bundle_key(repo_root: Path, dependencies_key: str) -> str:
    digest = hashlib.sha256(dependencies_key.encode())
    for rel in source_files(repo_root):
        digest.update(b"\0" + rel.as_posix().encode() + b"\0")
        digest.update((repo_root / rel).read_bytes())
    return digest.hexdigest()[:20]


def build_bundle(
    repo_root: Path,
    build_dir: Path,
    lock: Path = LAMBDA_LOCK_FILE,
    runner: Runner = _run,
) -> Path:
    """Assemble the Lambda asset directory and return it.

    The result is keyed by a hash of the dependencies and the source files, so an
    unchanged tree reuses the previous directory and CDK's asset hash stays stable.
    """
    deps = install_dependencies(build_dir / "lambda-deps", lock, runner=runner)
    parent = build_dir / "lambda-bundle"
    final = parent / bundle_key(repo_root, deps.name)
    if (final / COMPLETE_MARKER).is_file():
        # In use: keep it out of reach of `prune` for another week.
        os.utime(final)
        return final
    prune(parent, keep=final)
    if final.exists():
        shutil.rmtree(final, ignore_errors=True)
    tmp = _scratch(parent, final.name)
    try:
        shutil.copytree(deps, tmp, dirs_exist_ok=True, ignore=_ignore_in_dependencies(deps))
        (tmp / COMPLETE_MARKER).unlink()
        _drop_layer_provided(tmp)
        for rel in source_files(repo_root):
            dest = tmp / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(repo_root / rel, dest)
        return _publish(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def lambda_interpreter() -> str | None:
    """A Python of LAMBDA_PYTHON_VERSION on this machine (on PATH, or installed by
    pyenv), to import the asset as Lambda would: its compiled wheels need it."""
    version = LAMBDA_PYTHON_VERSION
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    candidates = [
        f"python{version}",
        *map(str, sorted(pyenv.glob(f"{version}*/bin/python{version}"))),
    ]
    for candidate in candidates:
        found = shutil.which(candidate)
        if not found:
            continue
        probe = subprocess.run(
            [found, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            check=False,
        )
        if probe.returncode == 0 and probe.stdout.strip() == version:
            return found
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m petal.lambda_bundle [build_dir]`: build the asset, print its path."""
    args = list(sys.argv[1:] if argv is None else argv)
    repo_root = Path(__file__).resolve().parent.parent
    build_dir = Path(args[0]) if args else repo_root / "build"
    print(build_bundle(repo_root, build_dir))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
