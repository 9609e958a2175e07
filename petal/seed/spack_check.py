"""`petal seed check`: concretize a seed's environment with the real Spack, offline.

`petal seed validate` knows Spack's package names and versions (petal.seed.spack_packages)
but not its solver. This module renders the seed's spack.yaml exactly as a build does,
concretizes it with a real Spack (a checkout, or the release tarball extracted once into
a cache) and reports, in petal's own format (file, field, what is wrong, the fix):

- what Spack refuses: unknown packages, versions no recipe declares, conflicts;
- from the resulting spack.lock, what a build must hold (`lock_properties`): every spec
  on the seed's compiler (the compiler itself may be built with the system one) and on
  the rendered generic target, every MPI built for Slurm and EFA, one version of each
  package that is linked or run, and a build stage outside /tmp (tmpfs on the builder).

Nothing reaches the network: the environment is concretized without its mirrors, its
install tree and module roots are moved into a work directory, and the seed's compilers
are declared as if installed (a build installs them first), so `%gcc@X` can be solved.
Spack concretizes for this machine's OS: the seed's `os` is not checked. A seed of the
other CPU family (arm64 on x86_64, say) is solved for its own target all the same
(`cross_environment`): only the check needs that, the builder is of the seed's family.

A concretized spack.lock is kept in the cache, keyed by the Spack, the rendered
environment and the compilers declared: the same seed is solved once.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import yaml

from petal.seed.fingerprint import fingerprint
from petal.seed.model import Seed
from petal.seed.spack_environment import (
    EFA_PREFIX,
    MPI_REQUIREMENTS,
    PORTABLE_TARGETS,
    SLURM_PREFIX,
    spack_environment,
)
from petal.seed.spack_packages import catalog
from petal.seed.spack_spec import parse_spec
from petal.validation import Problem

REPO_ROOT: Final = Path(__file__).resolve().parents[2]
# The solver Spack runs, pinned with hashes (`make lock` does not touch it; see the file).
SOLVER_LOCK: Final = REPO_ROOT / "requirements" / "spack-check.txt"
DEFAULT_TIMEOUT: Final = 1800.0
# Spack builds under $tempdir unless told otherwise: /tmp, a tmpfs of half the RAM on
# ParallelCluster's AL2023 AMIs.
_TMP_PREFIXES: Final = ("/tmp", "$tempdir", "${tempdir}", "$TMPDIR", "${TMPDIR}")  # noqa: S108

# Spack's CPU family of each seed architecture.
_FAMILY: Final = {"x86_64": "x86_64", "arm64": "aarch64"}
# Spack names a failed requirement once per package it touches: the first few say it.
MAX_REASONS: Final = 8


class SpackCheckError(Exception):
    """Spack could not be prepared or run; `problem` says what and how to fix it."""

    def __init__(self, source: str, problem: Problem) -> None:
        super().__init__(problem.format(source))
        self.source = source
        self.problem = problem


def default_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "petal" / "spack"


# --- a Spack ready to run ----------------------------------------------------------------


@dataclass(frozen=True)
class Spack:
    root: Path  # SPACK_ROOT
    python: Path  # an interpreter that imports clingo
    home: Path  # petal's directory for this Spack: config scope, caches, locks
    key: str  # what identifies the Spack in cache keys

    def environ(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SPACK_")}
        env.update(
            SPACK_ROOT=str(self.root),
            SPACK_PYTHON=str(self.python),
            SPACK_DISABLE_LOCAL_CONFIG="1",
            SPACK_USER_CACHE_PATH=str(self.home / "user-cache"),
            SPACK_COLOR="never",
        )
        return env

    def run(
        self, args: Sequence[str], *, scopes: Sequence[Path] = (), timeout: float
    ) -> subprocess.CompletedProcess[str]:
        command = [str(self.root / "bin" / "spack"), "-C", str(self.home / "config")]
        for scope in scopes:
            command += ["-C", str(scope)]
        try:
            return subprocess.run(
                [*command, *args],
                env=self.environ(),
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except OSError as error:
            raise SpackCheckError(
                str(self.root),
                Problem("", f"cannot run Spack ({error}): remove {self.home} and run again"),
            ) from None
        except subprocess.TimeoutExpired:
            raise SpackCheckError(
                str(self.root),
                Problem(
                    "",
                    f"`spack {' '.join(args)}` did not finish within {timeout:.0f} s: "
                    "raise --timeout, or check a smaller seed",
                ),
            ) from None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def prepare(
    *,
    spack_root: Path | None = None,
    tarball: Path | None = None,
    cache: Path | None = None,
    python: Path | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> Spack:
    """A Spack ready to concretize offline: extracted (once per tarball), a Python with
    the pinned clingo (once), bootstrapping off and the system compilers found (once)."""
    cache = cache or default_cache()
    if tarball is not None:
        source = str(tarball)
        if not tarball.is_file():
            raise SpackCheckError(
                source, Problem("", "does not exist: give the Spack release tarball")
            )
        key = _sha256(tarball)[:16]
        home = cache / key
        root = home / "spack"
        if not (root / "bin" / "spack").is_file():
            _extract(tarball, root)
    elif spack_root is not None:
        source = str(spack_root)
        root = spack_root.resolve()
        if not (root / "bin" / "spack").is_file():
            raise SpackCheckError(
                source,
                Problem("", "holds no bin/spack: give the root of a Spack checkout"),
            )
        key = hashlib.sha256(str(root).encode()).hexdigest()[:16]
        home = cache / f"root-{key}"
    else:
        raise SpackCheckError(
            "petal seed check",
            Problem("", "needs a Spack: --spack-root DIR, PETAL_SPACK_ROOT or --spack-tarball"),
        )
    home.mkdir(parents=True, exist_ok=True)
    spack = Spack(root=root, python=python or _solver_python(home, source), home=home, key=key)
    _configure(spack, source, timeout)
    return spack


def _extract(tarball: Path, root: Path) -> None:
    partial = root.with_name(root.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        with tarfile.open(tarball) as archive:
            archive.extractall(partial, filter="tar")
    except (OSError, tarfile.TarError) as error:
        shutil.rmtree(partial, ignore_errors=True)
        raise SpackCheckError(
            str(tarball), Problem("", f"cannot be extracted: {error}: give a Spack tarball")
        ) from None
    entries = list(partial.iterdir())
    # A GitHub archive has one top directory (spack-0.23.0/); the release tarball none.
    top = entries[0] if len(entries) == 1 and entries[0].is_dir() else partial
    if not (top / "bin" / "spack").is_file():
        shutil.rmtree(partial, ignore_errors=True)
        raise SpackCheckError(str(tarball), Problem("", "holds no bin/spack: not a Spack"))
    top.rename(root)
    shutil.rmtree(partial, ignore_errors=True)


def _solver_python(home: Path, source: str) -> Path:
    """A venv with the pinned clingo, installed with uv (the repository's) or pip."""
    venv = home / "python"
    python = venv / "bin" / "python"
    marker = venv / ".installed"
    lock = SOLVER_LOCK
    if marker.is_file() and lock.is_file() and marker.read_text() == _sha256(lock):
        return python
    if not lock.is_file():
        # An installed petal without its repository: use this interpreter if it can.
        probe = subprocess.run(
            [sys.executable, "-c", "import clingo"], capture_output=True, check=False
        )
        if probe.returncode == 0:
            return Path(sys.executable)
        raise SpackCheckError(
            source,
            Problem(
                "",
                "Spack needs the clingo solver: `pip install clingo`, or run from "
                "petal's repository (requirements/spack-check.txt pins it)",
            ),
        )
    shutil.rmtree(venv, ignore_errors=True)
    uv = REPO_ROOT / ".venv" / "uv" / "bin" / "uv"
    if uv.is_file():
        steps = [
            [sys.executable, "-m", "venv", "--without-pip", str(venv)],
            [str(uv), "pip", "sync", "--quiet", "--python", str(python), str(lock)],
        ]
    else:
        steps = [
            [sys.executable, "-m", "venv", str(venv)],
            [str(python), "-m", "pip", "install", "--quiet", "--require-hashes", "-r", str(lock)],
        ]
    for step in steps:
        result = subprocess.run(step, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            detail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["failed"]
            raise SpackCheckError(
                source,
                Problem(
                    "",
                    f"installing the solver failed ({detail[0]}): check the network or "
                    f"the package cache, then run again ({' '.join(step[:3])} ...)",
                ),
            )
    marker.write_text(_sha256(lock))
    return python


def _configure(spack: Spack, source: str, timeout: float) -> None:
    """petal's own config scope: no bootstrapping (the venv's clingo), the system
    compilers as `spack compiler find` sees them."""
    config = spack.home / "config"
    compilers = config / "compilers.yaml"
    if compilers.is_file():
        return
    config.mkdir(parents=True, exist_ok=True)
    (config / "bootstrap.yaml").write_text("bootstrap:\n  enable: false\n")
    # Command-line scopes are read-only: found into a scratch environment, then copied.
    scratch = spack.home / "compiler-find"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir()
    (scratch / "spack.yaml").write_text("spack:\n  specs: []\n")
    result = spack.run(["-e", str(scratch), "compiler", "find"], timeout=timeout)
    found = yaml.safe_load((scratch / "spack.yaml").read_text()) or {}
    entries = found.get("spack", {}).get("compilers", [])
    if result.returncode != 0 or not entries:
        raise SpackCheckError(
            source,
            Problem(
                "",
                f"`spack compiler find` found no compiler ({_last_error(result)}): "
                "install gcc and g++ on this machine",
            ),
        )
    compilers.write_text(yaml.safe_dump({"compilers": entries}, sort_keys=False))


def _last_error(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in (result.stderr + result.stdout).splitlines() if line.strip()]
    errors = [line for line in lines if "Error" in line]
    return (errors or lines or ["no output"])[-1].replace("==> ", "").strip()


# --- one seed --------------------------------------------------------------------------


@dataclass
class CheckResult:
    source: str
    problems: list[Problem] = field(default_factory=list)
    lock: dict[str, Any] | None = None
    environment: dict[str, Any] | None = None  # spack.yaml as rendered (before offline edits)
    cpu_seconds: float = 0.0
    cached: bool = False
    installed: bool | None = None  # install --fake: None when not asked
    work: Path | None = None

    @property
    def ok(self) -> bool:
        return not any(p.severity == "error" for p in self.problems)


def seed_compilers(seed: Seed) -> list[tuple[str, str]]:
    """(name, version) of the seed's compilers, as Spack's compilers.yaml names them."""
    result = []
    for text in seed.software.compilers:
        spec = parse_spec(text)
        version = (spec.root.versions or "").lstrip("=")
        name = {"llvm": "clang", "intel-oneapi-compilers": "oneapi"}.get(spec.name, spec.name)
        result.append((name, version))
    return result


def _compilers_scope(spack: Spack, seed: Seed, scope: Path, *, cross: bool) -> str:
    """A config scope declaring the seed's compilers as if installed (copies of the
    system compiler of the same family). For a seed of another CPU family (`cross`),
    every compiler is declared for `any` target: Spack then asks archspec whether it
    can build for the seed's target instead of tying it to this machine's family."""
    data = yaml.safe_load((spack.home / "config" / "compilers.yaml").read_text()) or {}
    system = [entry["compiler"] for entry in data.get("compilers", [])]
    declared = [dict(c) for c in system]
    for name, version in seed_compilers(seed):
        if any(c["spec"] == f"{name}@={version}" for c in declared):
            continue
        same = [c for c in system if c["spec"].split("@")[0] == name] or system
        if same and version:
            declared.append({**same[0], "spec": f"{name}@={version}"})
    if cross:
        declared = [{**c, "target": "any"} for c in declared]
    scope.mkdir(parents=True, exist_ok=True)
    # `compilers::` replaces the lower scopes' lists (Spack's override syntax).
    listed = yaml.safe_dump([{"compiler": c} for c in declared], sort_keys=False)
    text = "compilers::\n" + "".join(f"  {line}\n" for line in listed.splitlines())
    (scope / "compilers.yaml").write_text(text)
    return text


def offline_environment(
    environment: dict[str, Any], work: Path, *, cross_target: str | None = None
) -> dict[str, Any]:
    """The rendered environment, changed only where this machine differs from the
    builder: no mirrors (offline), install tree, module roots, stage and source cache
    in `work`; for a seed of another CPU family, `cross_environment`."""
    spack = json.loads(json.dumps(environment["spack"]))
    if cross_target:
        cross_environment(spack, cross_target)
    spack["mirrors"] = {}
    config = spack.setdefault("config", {})
    config["install_tree"] = {"root": str(work / "opt")}
    config["build_stage"] = [str(work / "stage")]
    config["source_cache"] = str(work / "source-cache")
    for module_set in spack.get("modules", {}).values():
        if isinstance(module_set, dict) and isinstance(module_set.get("roots"), dict):
            module_set["roots"] = {k: str(work / "modules" / k) for k in module_set["roots"]}
    return {"spack": spack}


def cross_environment(spack: dict[str, Any], target: str) -> None:
    """Solve for `target` of another CPU family than this machine's. Spack 0.23 offers
    the solver only this machine's family, plus, with `concretizer: targets:
    host_compatible: false`, the targets the root specs name: each root spec names the
    rendered target (which `packages: all: require:` already asks of every spec).
    The builder needs neither: it is of the seed's family."""
    concretizer = spack.setdefault("concretizer", {})
    concretizer["targets"] = {"host_compatible": False}
    for definition in spack.get("definitions", []):
        if "packages" in definition:
            definition["packages"] = [_with_target(s, target) for s in definition["packages"]]


def _with_target(spec: str, target: str) -> str:
    root, caret, dependencies = spec.partition(" ^")
    if "target=" in root:
        return spec
    return f"{root} target={target}{caret}{dependencies}"


def _cpu_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def check_seed(
    seed: Seed,
    source: str,
    spack: Spack,
    *,
    work: Path | None = None,
    install: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
    use_cache: bool = True,
) -> CheckResult:
    """Render, concretize (or reuse the cached lock) and check one seed."""
    environment = spack_environment(seed)
    result = CheckResult(source=source, environment=environment)
    cross = _FAMILY[seed.architecture] != platform.machine()
    work = work or spack.home / "work" / f"{seed.name}-{fingerprint(seed)[7:19]}"
    shutil.rmtree(work, ignore_errors=True)
    env_dir = work / "env"
    env_dir.mkdir(parents=True)
    result.work = work
    scope = work / "scope"
    compilers = _compilers_scope(spack, seed, scope, cross=cross)
    target = PORTABLE_TARGETS[seed.architecture]
    offline = offline_environment(environment, work, cross_target=target if cross else None)
    # The key leaves out the work directory, which only the offline paths name.
    key_text = json.dumps([spack.key, environment, compilers, cross], sort_keys=True)
    key = hashlib.sha256(key_text.encode()).hexdigest()[:24]
    cached_lock = spack.home / "locks" / f"{key}.lock"
    (env_dir / "spack.yaml").write_text(yaml.safe_dump(offline, sort_keys=False))
    started = _cpu_children()
    if use_cache and cached_lock.is_file():
        shutil.copyfile(cached_lock, env_dir / "spack.lock")
        result.cached = True
    else:
        run = spack.run(["-e", str(env_dir), "concretize", "-f"], scopes=[scope], timeout=timeout)
        if run.returncode != 0 or not (env_dir / "spack.lock").is_file():
            result.problems += concretize_problems(run.stderr + "\n" + run.stdout, seed)
            result.cpu_seconds = _cpu_children() - started
            return result
        cached_lock.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(env_dir / "spack.lock", cached_lock)
    result.lock = json.loads((env_dir / "spack.lock").read_text())
    for prop, messages in lock_properties(seed, result.lock, environment).items():
        result.problems += [Problem(_PROPERTY_FIELDS[prop], m) for m in messages]
    if install:
        run = spack.run(
            ["-e", str(env_dir), "install", "--fake", "--no-cache", "--fail-fast"],
            scopes=[scope],
            timeout=timeout,
        )
        result.installed = run.returncode == 0
        if not result.installed:
            message = (
                f"`spack install --fake` failed: {_last_error(run)}: "
                f"see {env_dir} and run it again with -d for Spack's log"
            )
            result.problems.append(Problem("software.packages", message))
    result.cpu_seconds = _cpu_children() - started
    return result


# --- what Spack said -------------------------------------------------------------------

_UNKNOWN = re.compile(r"Package '(?:spack\.pkg\.[\w.]*?\.)?([a-z0-9_-]+)' not found")
_REASON = re.compile(r"^\s*\d+\.\s+(.*)$")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _package_path(seed: Seed, text: str) -> str:
    """The field of the first seed spec whose name `text` mentions, else the packages."""
    for field_name, specs in (
        ("software.packages", seed.software.packages),
        ("software.compilers", seed.software.compilers),
    ):
        for index, spec in enumerate(specs):
            name = parse_spec(spec).name
            if re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", text):
                return f"{field_name}[{index}]"
    return "software.packages"


def concretize_problems(output: str, seed: Seed) -> list[Problem]:
    """Spack's refusal, as petal problems: one per reason Spack gives."""
    output = _ANSI.sub("", output)
    problems: list[Problem] = []
    for name in dict.fromkeys(_UNKNOWN.findall(output)):
        cat = catalog()
        close = cat.suggestions(name) if cat else []
        fix = f"did you mean {' or '.join(repr(c) for c in close)}?" if close else "fix the name"
        problems.append(Problem(_package_path(seed, name), f"Spack has no package {name!r}: {fix}"))
    if problems:
        return problems
    # Spack repeats each reason with its "required because" chain: one problem each.
    reasons = dict.fromkeys(
        m.group(1).strip() for line in output.splitlines() if (m := _REASON.match(line))
    )
    for reason in list(reasons)[:MAX_REASONS]:
        problems.append(Problem(_package_path(seed, reason), _explain(reason)))
    if len(reasons) > MAX_REASONS:
        more = (
            f"and {len(reasons) - MAX_REASONS} more reasons like these: "
            "`spack -e DIR concretize -f` in the work directory prints them all"
        )
        problems.append(Problem("software.packages", more))
    if not problems:
        lines = [ln.replace("==> ", "") for ln in output.splitlines() if "Error" in ln]
        first = lines[0].strip() if lines else "no error message"
        problems.append(Problem("software", f"Spack cannot concretize the environment: {first}"))
    return problems


def _explain(reason: str) -> str:
    lower = reason.lower()
    if "conflict" in lower:
        fix = "change one of the two constraints (a version or a variant), or drop one"
    elif "cannot satisfy" in lower or "version" in lower:
        fix = (
            "use a version the recipe declares (`spack versions NAME` lists them) "
            "and variant values it allows (`spack info NAME`)"
        )
    else:
        fix = "change the spec Spack names"
    return f"Spack cannot concretize: {reason}: {fix}"


# --- what the lock must hold -----------------------------------------------------------

_PROPERTY_FIELDS: Final = {
    "compiler": "software.compilers",
    "target": "architecture",
    "mpi": "software.packages",
    "one_version": "software.packages",
    "build_stage": "software",
}
PROPERTIES: Final = tuple(_PROPERTY_FIELDS)


def _nodes(lock: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return dict(lock.get("concrete_specs", {}))


def _reachable(nodes: Mapping[str, Mapping[str, Any]], roots: list[str]) -> set[str]:
    seen: set[str] = set()
    stack = list(roots)
    while stack:
        current = stack.pop()
        if current in seen or current not in nodes:
            continue
        seen.add(current)
        stack += [d["hash"] for d in nodes[current].get("dependencies", [])]
    return seen


def _build_only(nodes: Mapping[str, Mapping[str, Any]], roots: list[str]) -> set[str]:
    """The nodes reached from `roots` only through build dependencies."""
    linked = set()
    stack = list(roots)
    while stack:
        current = stack.pop()
        if current in linked or current not in nodes:
            continue
        linked.add(current)
        stack += [
            d["hash"]
            for d in nodes[current].get("dependencies", [])
            if set(d.get("parameters", {}).get("deptypes", ["link"])) - {"build"}
        ]
    return _reachable(nodes, roots) - linked


def _target(node: Mapping[str, Any]) -> str:
    target = node.get("arch", {}).get("target")
    return str(target.get("name") if isinstance(target, dict) else target)


def _compiler(node: Mapping[str, Any]) -> tuple[str | None, str | None]:
    compiler = node.get("compiler", {})
    return compiler.get("name"), compiler.get("version")


def _describe(node: Mapping[str, Any]) -> str:
    name, version = _compiler(node)
    return f"{node['name']}@{node.get('version')}%{name}@{version}"


def _names(described: Iterator[str] | list[str], limit: int = 6) -> str:
    items = list(described)
    more = f" and {len(items) - limit} more" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


def lock_properties(
    seed: Seed, lock: Mapping[str, Any], environment: Mapping[str, Any]
) -> dict[str, list[str]]:
    """What a build of `seed` needs of its concretized environment, property by
    property (see PROPERTIES): each maps to the violations found, empty when it holds."""
    nodes = _nodes(lock)
    compiler_names = {parse_spec(c).name for c in seed.software.compilers}
    roots = [r["hash"] for r in lock.get("roots", [])]
    compiler_roots = [h for h in roots if nodes.get(h, {}).get("name") in compiler_names]
    package_roots = [h for h in roots if h not in compiler_roots]
    # The packages' closure; the compilers' own toolchain is built with the system compiler.
    packages = _reachable(nodes, package_roots)
    built = [h for h in packages if "external" not in nodes[h]]
    result: dict[str, list[str]] = {p: [] for p in PROPERTIES}

    wanted = seed_compilers(seed)[:1]
    if wanted:
        name, version = wanted[0]
        off = [_describe(nodes[h]) for h in built if _compiler(nodes[h]) != (name, version)]
        if off:
            result["compiler"].append(
                f"{len(off)} of {len(built)} specs are not built with {name}@{version}: "
                f"{_names(sorted(off))}; require the compiler (packages: all: require: "
                f"'%{name}@{version}')"
            )
    target = PORTABLE_TARGETS[seed.architecture]
    off_target = sorted(
        f"{nodes[h]['name']} ({_target(nodes[h])})" for h in built if _target(nodes[h]) != target
    )
    if off_target:
        result["target"].append(
            f"{len(off_target)} of {len(built)} specs are not built for {target}: "
            f"{_names(off_target)}; require the target (packages: all: require: 'target={target}')"
        )
    result["mpi"] = _mpi_problems(nodes, packages)
    by_name: dict[str, set[str]] = {}
    for h in packages:
        by_name.setdefault(nodes[h]["name"], set()).add(h)
    # Spack's `duplicates: strategy: minimal` (its default) lets a build tool (py-cython,
    # cmake: recipes tagged build-tools) be built in two versions when packages need
    # incompatible ones, even with `unify: true`. Such a copy only runs while a package
    # is built: no module, nothing links it. What users load must be one version.
    build_only = _build_only(nodes, package_roots)
    for name, hashes in sorted(by_name.items()):
        used = hashes - build_only
        if len(used) > 1:
            versions = sorted(_describe(nodes[h]) for h in used)
            result["one_version"].append(
                f"{name} is concretized {len(used)} times ({', '.join(versions)}): the "
                "volume would hold each, linked into different packages; pin one version "
                "in the seed, or concretize with unify: true"
            )
    stage = environment.get("spack", {}).get("config", {}).get("build_stage", [])
    for entry in [stage] if isinstance(stage, str) else list(stage):
        if str(entry).startswith(_TMP_PREFIXES):
            result["build_stage"].append(
                f"config: build_stage {entry!r} is under /tmp, a tmpfs of half the RAM on "
                "the builder: large builds fill it; stage on the root disk (/var/tmp)"
            )
    return result


def _satisfies(node: Mapping[str, Any], requirement: str) -> bool:
    """Whether a concrete node has a variant requirement: `+name` or `key=value`."""
    parameters = node.get("parameters", {})
    if requirement.startswith("+"):
        return parameters.get(requirement[1:]) is True
    key, _, value = requirement.partition("=")
    have = parameters.get(key)
    return value in have if isinstance(have, list) else have == value


def _mpi_problems(nodes: Mapping[str, Mapping[str, Any]], packages: set[str]) -> list[str]:
    """Every MPI in the DAG built as petal wires it (Slurm and EFA), and Slurm and
    libfabric taken from the image, never built by Spack."""
    problems = []
    providers = {
        d["hash"]
        for h in packages
        for d in nodes[h].get("dependencies", [])
        if "mpi" in d.get("parameters", {}).get("virtuals", [])
    }
    wired = ", ".join(MPI_REQUIREMENTS)
    for h in sorted(packages, key=lambda h: nodes[h]["name"]):
        node = nodes[h]
        name = node["name"]
        requirements = MPI_REQUIREMENTS.get(name)
        if requirements is None:
            if h in providers:
                problems.append(
                    f"{name}@{node.get('version')} is the MPI, which petal does not wire to "
                    f"Slurm and EFA: use one that it does ({wired}), e.g. ^openmpi"
                )
            continue
        missing = [r for r in requirements if not _satisfies(node, r)]
        if missing:
            problems.append(
                f"{name}@{node.get('version')} is concretized without {' '.join(missing)}: it "
                "would not launch under Slurm or not use EFA; require them "
                f"(packages: {name}: require:)"
            )
    for name, prefix in (("slurm", SLURM_PREFIX), ("libfabric", EFA_PREFIX)):
        for h in packages:
            node = nodes[h]
            if node["name"] == name and node.get("external", {}).get("path") != prefix:
                problems.append(
                    f"{name}@{node.get('version')} would be built by Spack, not taken from "
                    f"the image's {prefix}: declare it an external (buildable: false)"
                )
    return problems
