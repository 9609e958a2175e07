"""`petal seed validate | fingerprint | render`: check a seed before anything is built."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from typing import Any

from petal.cli.commands import command
from petal.cli.output import print_json
from petal.errors import EXIT_INVALID, EXIT_OK
from petal.seed.fingerprint import canonical_form, fingerprint
from petal.seed.loading import load_seed
from petal.seed.model import Seed, SeedError
from petal.seed.spack_environment import render_spack_yaml
from petal.validation import Problem


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    seed = command("seed").add_parser(
        subparsers,
        description="Work with seed files (see docs/SEEDS.md) without touching AWS.",
    )
    commands = seed.add_subparsers(dest="seed_command", metavar="COMMAND", required=True)

    validate = commands.add_parser(
        "validate",
        help="check seeds; exit 0 when all are valid, 2 otherwise",
        description="Check one or more seed files. Every problem is printed with the "
        "file, the line, the field and what is allowed.",
    )
    validate.add_argument("files", nargs="+", metavar="FILE", help="seed YAML file(s)")
    validate.add_argument("--json", action="store_true", help="machine-readable result")
    validate.set_defaults(func=_validate)

    fp = commands.add_parser(
        "fingerprint",
        help="print the seed's fingerprint (sha256:...)",
        description="Print the fingerprint that tags the seed's snapshot. It covers what "
        "decides the bytes on the volume: Spack version, compilers, packages, mirrors and "
        "module system; not the name, description, os, architecture, volume or cluster.",
    )
    fp.add_argument("file", metavar="FILE", help="seed YAML file")
    fp.add_argument("--json", action="store_true", help="also print the hashed canonical form")
    fp.set_defaults(func=_fingerprint)

    render = commands.add_parser(
        "render",
        help="print the spack.yaml the builder will install",
        description="Print the Spack environment (spack.yaml) a build of this seed installs "
        "under /shared/spack.",
    )
    render.add_argument("file", metavar="FILE", help="seed YAML file")
    render.add_argument("--json", action="store_true", help="wrap the result in JSON")
    render.set_defaults(func=_render)

    check = commands.add_parser(
        "check",
        help="concretize seeds with the real Spack; exit 0 when all concretize as needed",
        description="Render each seed's spack.yaml and concretize it with a real Spack, "
        "offline (see docs/SEEDS.md, 'Checking a seed with the real Spack'): unknown "
        "packages, impossible versions, conflicts, duplicate packages and a build stage "
        "in /tmp are reported like `validate` does. The Spack is a checkout "
        "(--spack-root, or PETAL_SPACK_ROOT) or a release tarball (--spack-tarball, or "
        "PETAL_SPACK_TARBALL), extracted once into ~/.cache/petal/spack.",
    )
    check.add_argument("files", nargs="+", metavar="FILE", help="seed YAML file(s)")
    where = check.add_mutually_exclusive_group()
    where.add_argument("--spack-root", metavar="DIR", help="a Spack checkout")
    where.add_argument("--spack-tarball", metavar="FILE", help="a Spack release tarball")
    check.add_argument(
        "--install-fake",
        action="store_true",
        help="then `spack install --fake` the environment (installs nothing real)",
    )
    check.add_argument(
        "--timeout", type=float, default=1800, metavar="SECONDS", help="per Spack command"
    )
    check.add_argument(
        "--no-cache", action="store_true", help="concretize even when a lock is cached"
    )
    check.add_argument("--json", action="store_true", help="machine-readable result")
    check.set_defaults(func=_check)


def _problem_json(problem: Problem) -> dict[str, Any]:
    return {"line": problem.line, "path": problem.path, "message": problem.message}


def _load(file: str, as_json: bool) -> Seed | SeedError:
    """The seed, or the error; problems and warnings go to stderr unless `as_json`."""
    try:
        seed = load_seed(file)
    except SeedError as failure:
        if not as_json:
            sys.stderr.write(str(failure) + "\n")
        return failure
    if not as_json:
        for warning in seed.warnings:
            sys.stderr.write(warning.format(file) + "\n")
    return seed


def _invalid_json(file: str, failure: SeedError) -> dict[str, Any]:
    return {"file": file, "valid": False, **_problems_json(failure.problems)}


def _problems_json(problems: list[Problem] | tuple[Problem, ...]) -> dict[str, Any]:
    return {
        "errors": [_problem_json(p) for p in problems if p.severity == "error"],
        "warnings": [_problem_json(p) for p in problems if p.severity == "warning"],
    }


def _loaded(
    files: list[str], as_json: bool, results: list[dict[str, Any]]
) -> Iterator[tuple[str, Seed]]:
    """Each file's seed; a file that is no valid seed is reported (and its JSON result
    added to `results`) instead."""
    for file in files:
        seed = _load(file, as_json)
        if isinstance(seed, SeedError):
            results.append(_invalid_json(file, seed))
            continue
        yield file, seed


def _validate(args: argparse.Namespace) -> int:
    results: list[dict[str, Any]] = []
    for file, seed in _loaded(args.files, args.json, results):
        results.append(
            {
                "file": file,
                "valid": True,
                "name": seed.name,
                "fingerprint": fingerprint(seed),
                "variant": {"os": seed.os, "architecture": seed.architecture},
                **_problems_json(seed.warnings),
            }
        )
        if not args.json:
            packages = len(seed.software.packages)
            print(f"{file}: valid ({seed.name}, {packages} packages, {fingerprint(seed)})")
    if args.json:
        print_json(results if len(results) > 1 else results[0])
    return EXIT_OK if all(r["valid"] for r in results) else EXIT_INVALID


def _fingerprint(args: argparse.Namespace) -> int:
    seed = _load(args.file, args.json)
    if isinstance(seed, SeedError):
        if args.json:
            print_json(_invalid_json(args.file, seed))
        return EXIT_INVALID
    if args.json:
        print_json(
            {
                "file": args.file,
                "fingerprint": fingerprint(seed),
                "canonical_form": canonical_form(seed),
            }
        )
    else:
        print(fingerprint(seed))
    return EXIT_OK


def _render(args: argparse.Namespace) -> int:
    seed = _load(args.file, args.json)
    if isinstance(seed, SeedError):
        if args.json:
            print_json(_invalid_json(args.file, seed))
        return EXIT_INVALID
    text = render_spack_yaml(seed, fingerprint(seed))
    if args.json:
        print_json({"file": args.file, "fingerprint": fingerprint(seed), "spack_yaml": text})
    else:
        sys.stdout.write(text)
    return EXIT_OK


def _check(args: argparse.Namespace) -> int:
    import os
    from pathlib import Path

    from petal.seed import spack_check

    root = args.spack_root or os.environ.get("PETAL_SPACK_ROOT")
    tarball = args.spack_tarball or (
        None if args.spack_root else os.environ.get("PETAL_SPACK_TARBALL")
    )
    try:
        spack = spack_check.prepare(
            spack_root=Path(root) if root and not tarball else None,
            tarball=Path(tarball) if tarball else None,
            timeout=args.timeout,
        )
    except spack_check.SpackCheckError as error:
        if args.json:
            print_json({"valid": False, "source": error.source, **_problems_json([error.problem])})
        else:
            sys.stderr.write(f"{error}\n")
        return EXIT_INVALID
    results: list[dict[str, Any]] = []
    for file, seed in _loaded(args.files, args.json, results):
        try:
            result = spack_check.check_seed(
                seed,
                file,
                spack,
                install=args.install_fake,
                timeout=args.timeout,
                use_cache=not args.no_cache,
            )
        except spack_check.SpackCheckError as error:
            result = spack_check.CheckResult(source=file, problems=[error.problem])
        nodes = len((result.lock or {}).get("concrete_specs", {}))
        results.append(
            {
                "file": file,
                "valid": result.ok,
                "specs": nodes,
                "cpu_seconds": round(result.cpu_seconds, 1),
                "cached": result.cached,
                "installed": result.installed,
                **_problems_json(result.problems),
            }
        )
        if args.json:
            continue
        for problem in result.problems:
            sys.stderr.write(problem.format(file) + "\n")
        if result.ok:
            how = "a cached lock" if result.cached else f"{result.cpu_seconds:.0f} s of CPU"
            fake = ", installed with --fake" if result.installed else ""
            print(f"{file}: concretized by Spack ({nodes} specs, {how}{fake})")
    if args.json:
        print_json(results if len(results) > 1 else results[0])
    return EXIT_OK if all(r["valid"] for r in results) else EXIT_INVALID
