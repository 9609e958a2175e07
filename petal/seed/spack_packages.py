"""The package names and versions of a Spack release, so `petal seed validate` catches
`zlibb` or `samtools@1.99` in milliseconds, without Spack.

The data, petal/data/spack-v0.23.0-packages.json, is generated from the release itself:

    python -m petal.seed.spack_packages generate --spack-root DIR   # DIR: v0.23.0 extracted

reads every recipe (var/spack/repos/builtin/packages/NAME/package.py) with `ast`, without
importing Spack: the names, the literal `version("x.y", ...)` calls, the virtual
packages named by `provides("mpi")` and the packages providing `mpi`. A recipe that
computes a version (in a loop, from a variable) is marked "open": its versions are not
checked here.

The checks, `package_problems`, are deliberately conservative, so they never refuse what
Spack accepts: an unknown name is an error (with the nearest names), and so is a version
no declared version can satisfy, for the forms whose meaning is plain: `@1.2` (1.2 or any
1.2.x) and `@=1.2` (exactly 1.2). Ranges (`@1.2:`, `@:1.4`) and compiler versions are left
to `petal seed check`, which concretizes with the real Spack. The data is read once,
on the first check, never at import.
"""

from __future__ import annotations

import difflib
import json
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from petal.seed.model import COMPILER_PACKAGES, MPI_PACKAGES
from petal.seed.spack_spec import Spec, SpecError, SpecNode, parse_spec
from petal.validation import Problem, Severity

if TYPE_CHECKING:
    import ast

# The Spack release whose package list petal ships; seeds of other releases are not
# checked here (`petal seed check` concretizes with whichever Spack it is given).
SPACK_VERSION: Final = "v0.23.0"
DATA_FILE: Final = f"data/spack-{SPACK_VERSION}-packages.json"
RECIPES: Final = Path("var/spack/repos/builtin/packages")
FORMAT: Final = 1
# Spack's version segments: runs of digits or letters, and what separates them.
_SEGMENT: Final = re.compile(r"([0-9]+|[a-zA-Z]+)[_.-]*")
_SHOWN_VERSIONS: Final = 8
_MAX_SUGGESTED: Final = 10
_BRANCHES: Final = frozenset({"stable", "trunk", "head", "master", "main", "develop"})


@dataclass(frozen=True)
class Catalog:
    """A release's packages: name -> declared versions (newest first, as recipes list
    them), the names whose versions are computed, and the virtual packages."""

    spack_version: str
    packages: dict[str, tuple[str, ...]]
    open: frozenset[str]
    virtuals: frozenset[str]
    deprecated: dict[str, frozenset[str]]
    mpi_providers: frozenset[str] = frozenset()

    def known(self, name: str) -> bool:
        return name in self.packages or name in self.virtuals

    def suggestions(self, name: str) -> list[str]:
        names = [*self.packages, *self.virtuals]
        return difflib.get_close_matches(name, names, n=3, cutoff=0.75)


@cache
def catalog() -> Catalog | None:
    """The shipped catalog, read once; None when the data file is missing."""
    try:
        text = resources.files("petal").joinpath(DATA_FILE).read_text()
    except (FileNotFoundError, OSError):
        return None
    return from_json(json.loads(text))


def from_json(data: dict[str, Any]) -> Catalog:
    return Catalog(
        spack_version=data["spack_version"],
        packages={name: tuple(versions) for name, versions in data["packages"].items()},
        open=frozenset(data["open"]),
        virtuals=frozenset(data["virtuals"]),
        deprecated={name: frozenset(v) for name, v in data.get("deprecated", {}).items()},
        mpi_providers=frozenset(data.get("mpi_providers", [])),
    )


# --- the checks ------------------------------------------------------------------------


def seed_package_problems(
    software: Mapping[str, Any], parse: Callable[[str], Spec | SpecError] | None = None
) -> list[Problem]:
    """The checks for a seed's (unvalidated) `software` mapping: its compilers and
    packages, the specs that parse; `parse` may be the caller's cached parser."""
    spack_version = software.get("spack_version", SPACK_VERSION)
    specs: list[tuple[str, Spec]] = []
    for field in ("compilers", "packages"):
        entries = software.get(field)
        for index, text in enumerate(entries if isinstance(entries, list) else []):
            if not isinstance(text, str):
                continue
            spec = parse(text) if parse else _parse(text)
            if isinstance(spec, Spec):
                specs.append((f"software.{field}[{index}]", spec))
    return package_problems(specs, spack_version) if specs else []


def _parse(text: str) -> Spec | SpecError:
    try:
        return parse_spec(text)
    except SpecError as error:
        return error


def package_problems(
    specs: Iterable[tuple[str, Spec]], spack_version: str, cat: Catalog | None = None
) -> list[Problem]:
    """Problems of the (field path, parsed spec) pairs: unknown names, impossible versions.

    Nothing is checked for another Spack release than the shipped one."""
    if spack_version != SPACK_VERSION:
        return []
    cat = cat or catalog()
    if cat is None:
        return []
    problems: list[Problem] = []
    for path, spec in specs:
        for node in (spec.root, *spec.dependencies):
            # A nearest name costs milliseconds: a seed of 500 unknown names gets them
            # for its first few only, and is still refused at once.
            suggest = len(problems) < _MAX_SUGGESTED
            problem = _node_problem(cat, node, suggest=suggest)
            if problem:
                problems.append(problem.at(path))
    return problems


@dataclass(frozen=True)
class _Found:
    message: str
    severity: Severity = "error"

    def at(self, path: str) -> Problem:
        return Problem(path, self.message, severity=self.severity)


def _node_problem(cat: Catalog, node: SpecNode, *, suggest: bool = True) -> _Found | None:
    release = f"Spack {cat.spack_version}"
    if not cat.known(node.name):
        close = cat.suggestions(node.name) if suggest else []
        if close:
            hint = " or ".join(repr(c) for c in close)
            return _Found(f"{node.name!r} is not a package of {release}: did you mean {hint}?")
        return _Found(
            f"{node.name!r} is not a package of {release}: fix the name "
            f"(`spack list {node.name}` searches the package names)"
        )
    # nvhpc provides MPI too, but is named as a compiler.
    if node.name in cat.mpi_providers and node.name not in (*MPI_PACKAGES, *COMPILER_PACKAGES):
        # Spack 0.23 answers a seed naming it with an "internal error" (the environment
        # requires the MPI to be one of these), or builds it without Slurm and EFA.
        return _Found(
            f"{node.name} is an MPI petal does not build for Slurm and EFA: use "
            f"{', '.join(MPI_PACKAGES[:-1])} or {MPI_PACKAGES[-1]} "
            '(docs/SEEDS.md, "MPI, Slurm and EFA")'
        )
    if node.versions is None or node.name in cat.open or node.name not in cat.packages:
        return None
    declared = cat.packages[node.name]
    deprecated = cat.deprecated.get(node.name, frozenset())
    version = node.versions.lstrip("=")
    if version in deprecated:
        # A warning: `@1.2` may still mean a 1.2.x that is not deprecated; `petal seed
        # check` says whether the rendered environment concretizes.
        wanted = _segments(version)
        kept = [v for v in declared if v not in deprecated and v not in _BRANCHES]
        kept.sort(key=lambda v: _segments(v)[: len(wanted)] != wanted)
        advice = f": use {kept[0]}" if kept else ""
        return _Found(
            f"{node.name}@{node.versions} is deprecated in {release}, whose concretizer "
            f"refuses deprecated versions{advice}",
            "warning",
        )
    if not declared or version_possible(node.versions, declared):
        return None
    # Releases, not branches (develop, main), are what a seed should pin.
    releases = [v for v in declared if v not in _BRANCHES] or list(declared)
    shown = ", ".join(releases[:_SHOWN_VERSIONS]) + (
        ", ..." if len(releases) > _SHOWN_VERSIONS else ""
    )
    major = _segments(releases[0])[0]
    return _Found(
        f"{node.name}@{node.versions}: {release}'s {node.name} has no such version "
        f"(it has {shown}): use one of those, or a range such as @{major}:"
    )


def _segments(version: str) -> list[str]:
    return _SEGMENT.findall(version) or [version]


def version_possible(versions: str, declared: Iterable[str]) -> bool:
    """Whether some declared version can satisfy the seed's `versions` (a comma list):
    True for every range, so that only a version Spack surely refuses is reported."""
    declared = list(declared)
    for item in versions.split(","):
        if ":" in item:
            return True  # a range: left to the real concretizer
        if item.startswith("="):
            if item[1:] in declared:
                return True
            continue
        # `@1.2` is 1.2 and every 1.2.x (and 1.2 prereleases): a segment prefix.
        wanted = _segments(item)
        if any(_segments(d)[: len(wanted)] == wanted for d in declared):
            return True
    return False


# --- the generator ---------------------------------------------------------------------


def _literal(node: ast.expr | None) -> str | None:
    import ast

    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return None


def _calls(tree: ast.AST, name: str) -> Iterator[ast.Call]:
    import ast

    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == name
            and node.args
        ):
            yield node


def read_recipe(source: str) -> tuple[list[str], bool, list[str], list[str]]:
    """(declared versions in order, whether some are computed, provided virtuals, the
    deprecated versions)."""
    import ast  # only the generator needs it: validation stays light

    tree = ast.parse(source)
    versions: list[str] = []
    deprecated: list[str] = []
    computed = False
    for call in _calls(tree, "version"):
        value = _literal(call.args[0])
        if value is None:
            computed = True
        elif value not in versions:
            versions.append(value)
            if any(
                k.arg == "deprecated" and isinstance(k.value, ast.Constant) and k.value.value
                for k in call.keywords
            ):
                deprecated.append(value)
    virtuals: list[str] = []
    for call in _calls(tree, "provides"):
        for arg in call.args:
            value = _literal(arg)
            if value:
                # "mpi@:3", "blas" or "fortran-rt": the name before any constraint.
                match = re.match(r"[a-z0-9][a-z0-9_-]*", value)
                if match and match.group() not in virtuals:
                    virtuals.append(match.group())
    return versions, computed, virtuals, deprecated


def generate(spack_root: Path) -> dict[str, Any]:
    recipes = spack_root / RECIPES
    if not recipes.is_dir():
        raise SystemExit(f"{recipes} does not exist: give the root of a Spack v0.23 checkout")
    packages: dict[str, list[str]] = {}
    open_names: list[str] = []
    virtuals: set[str] = set()
    mpi_providers: list[str] = []
    deprecated: dict[str, list[str]] = {}
    for recipe in sorted(recipes.glob("*/package.py")):
        name = recipe.parent.name
        versions, computed, provided, old = read_recipe(recipe.read_text(encoding="utf-8"))
        packages[name] = versions
        if old:
            deprecated[name] = old
        # No literal version at all: declared elsewhere (a base class, a loop).
        if computed or not versions:
            open_names.append(name)
        virtuals.update(provided)
        if "mpi" in provided:
            mpi_providers.append(name)
    version_file = spack_root / "lib/spack/spack/__init__.py"
    match = re.search(r'__version__ = "([^"]+)"', version_file.read_text(encoding="utf-8"))
    return {
        "format": FORMAT,
        "spack_version": f"v{match.group(1)}" if match else "unknown",
        "generated_by": "python -m petal.seed.spack_packages generate --spack-root DIR",
        "packages": packages,
        "open": open_names,
        "virtuals": sorted(virtuals - set(packages)),
        "mpi_providers": mpi_providers,
        "deprecated": deprecated,
    }


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m petal.seed.spack_packages")
    commands = parser.add_subparsers(dest="command", required=True)
    gen = commands.add_parser("generate", help="write the package list of a Spack release")
    gen.add_argument("--spack-root", required=True, type=Path, help="an extracted Spack")
    gen.add_argument("--output", type=Path, help="default: petal's own data file")
    args = parser.parse_args(argv)
    data = generate(args.spack_root)
    output = args.output or Path(__file__).resolve().parent.parent / DATA_FILE
    output.parent.mkdir(parents=True, exist_ok=True)
    # One package a line: compact, and a new release's diff is readable.
    lines = [
        f"{json.dumps(name)}:{json.dumps(versions, separators=(',', ':'))}"
        for name, versions in data["packages"].items()
    ]
    head = {k: v for k, v in data.items() if k not in ("packages", "deprecated")}
    head["deprecated"] = data["deprecated"]
    text = json.dumps(head, separators=(",", ":"))[:-1] + ',"packages":{\n' + ",\n".join(lines)
    output.write_text(text + "\n}}\n", encoding="utf-8")
    print(
        f"{output}: {len(data['packages'])} packages of Spack {data['spack_version']}, "
        f"{len(data['open'])} with computed versions, {len(data['virtuals'])} virtuals",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
