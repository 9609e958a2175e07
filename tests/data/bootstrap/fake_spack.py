"""A fake `spack` for the bootstrap tests: just enough Spack for ssm_documents/bootstrap.sh.

It records every call in $FAKE_LOG, keeps registered compilers in $FAKE_STATE_DIR, lays out
what a real Spack would under $FAKE_SPACK_ROOT (compiler and Lmod prefixes, module trees),
and runs `spack python FILE` with a real Python whose `spack.util.spack_yaml` is PyYAML.

Where the real Spack would refuse what petal renders or the bootstrap does, so does the
fake (the real one was checked, docs/SEEDS.md): `concretize` fails when a required
compiler (`packages: all: require: ['%gcc@=X']`) is not registered yet, or a package is
not buildable and has no externals; `install` outside an environment fails when the
scope (-C) requires the very compiler being installed (no compiler builds itself).

Behaviour switches (environment): FAKE_SPACK_FAIL (a root spec whose install fails),
FAKE_SPACK_INSTALL_SECONDS (how long each install of a root spec takes).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

SYSTEM_COMPILER = {"spec": "gcc@=11.4.1", "paths": {"cc": "/usr/bin/gcc", "cxx": "/usr/bin/g++"}}


def record(argv: list[str]) -> None:
    with Path(os.environ["FAKE_LOG"]).open("a") as log:
        log.write(shlex.join(["spack", *argv]) + "\n")


def name_version(spec: str) -> tuple[str, str]:
    match = re.match(r"(?P<name>[A-Za-z0-9_-]+)(?:@=?(?P<version>[A-Za-z0-9_.-]+))?", spec)
    if match is None:
        raise SystemExit(f"fake spack: cannot parse spec {spec!r}")
    return match["name"], match["version"] or "1.0"


def prefix_of(spec: str) -> Path:
    name, version = name_version(spec)
    return (
        Path(os.environ["FAKE_SPACK_ROOT"]) / "opt" / "spack" / "linux-fake" / f"{name}-{version}"
    )


def compilers_state() -> Path:
    return Path(os.environ["FAKE_STATE_DIR"]) / "compilers.json"


def registered_compilers() -> list[dict[str, Any]]:
    path = compilers_state()
    return list(json.loads(path.read_text())) if path.exists() else []


def env_yaml(env_dir: Path | None) -> dict[str, Any]:
    if env_dir is None:
        raise SystemExit("fake spack: this command needs -e")
    data = yaml.safe_load((env_dir / "spack.yaml").read_text())
    return dict(data["spack"])


def definitions(env: dict[str, Any], name: str) -> list[str]:
    found: list[str] = []
    for definition in env.get("definitions") or []:
        found.extend(definition.get(name) or [])
    return found


def cmd_config(env_dir: Path | None, args: list[str]) -> int:
    if args[0] == "add":
        return 0
    section = args[1] if len(args) > 1 else None
    if section is None:
        print((env_dir / "spack.yaml").read_text() if env_dir else "")
    elif section == "compilers":
        print(yaml.safe_dump({"compilers": [{"compiler": c} for c in registered_compilers()]}))
    else:
        value = env_yaml(env_dir).get(section, {}) if env_dir else {}
        print(yaml.safe_dump({section: value}))
    return 0


def cmd_compiler(args: list[str]) -> int:
    paths = [arg for arg in args[1:] if arg.startswith("/")]
    compilers = registered_compilers()
    if not paths:
        found = [SYSTEM_COMPILER]
    else:
        name, version = Path(paths[0]).name.rsplit("-", 1)
        found = [{"spec": f"{name}@={version}", "paths": {"cc": f"{paths[0]}/bin/gcc"}}]
    compilers.extend(c for c in found if c not in compilers)
    compilers_state().write_text(json.dumps(compilers))
    return 0


def compiler_requirements(packages: dict[str, Any]) -> list[str]:
    """The compilers `packages: all: require:` asks for (`%gcc@=13.2.0` -> gcc@=13.2.0)."""
    found: list[str] = []
    for item in ((packages or {}).get("all") or {}).get("require") or []:
        group = item.get("one_of") or item.get("any_of") or [] if isinstance(item, dict) else [item]
        found.extend(str(member)[1:] for member in group if str(member).startswith("%"))
    return found


def is_registered(compiler: str) -> bool:
    name, version = name_version(compiler)
    return any(c["spec"] == f"{name}@={version}" for c in registered_compilers())


def scope_packages(scope: Path | None) -> dict[str, Any]:
    if scope is None or not (scope / "packages.yaml").exists():
        return {}
    data = yaml.safe_load((scope / "packages.yaml").read_text()) or {}
    return dict(data.get("packages") or {})


def cmd_install(env_dir: Path | None, args: list[str], scope: Path | None = None) -> int:
    words = [arg for arg in args if not arg.startswith("-")]
    if "-j" in args:
        words.remove(args[args.index("-j") + 1])
    spec = " ".join(words)
    if spec and spec == os.environ.get("FAKE_SPACK_FAIL"):
        print(f"==> Error: Failed to install {name_version(spec)[0]}", file=sys.stderr)
        return 1
    if env_dir is None:  # a seed compiler
        for compiler in compiler_requirements(scope_packages(scope)):
            if not is_registered(compiler):
                print(f"==> Error: cannot satisfy the requirement %{compiler}", file=sys.stderr)
                return 1
        (prefix_of(spec) / "bin").mkdir(parents=True, exist_ok=True)
    elif spec:
        print(f"==> Installing {spec}")
        time.sleep(float(os.environ.get("FAKE_SPACK_INSTALL_SECONDS", "0")))
    return 0


def cmd_location(args: list[str]) -> int:
    prefix = prefix_of(args[-1])
    if args[-1].startswith("lmod"):
        init = prefix / "lmod" / "lmod" / "init"
        init.mkdir(parents=True, exist_ok=True)
        for shell in ("bash", "sh", "csh", "tcsh"):
            (init / shell).write_text("module() { :; }\n")
    print(prefix)
    return 0


def cmd_concretize(env_dir: Path | None) -> int:
    env = env_yaml(env_dir)
    packages = env.get("packages") or {}
    for compiler in compiler_requirements(packages):
        if not is_registered(compiler):
            print(f"==> Error: no compiler satisfies the requirement %{compiler}", file=sys.stderr)
            return 1
    for name, settings in packages.items():
        if (settings or {}).get("buildable") is False and not settings.get("externals"):
            print(f"==> Error: {name} is not buildable and has no externals", file=sys.stderr)
            return 1
    roots: list[str] = []
    for entry in env.get("specs") or []:  # "$name" expands a definition; no matrices
        is_reference = isinstance(entry, str) and entry.startswith("$")
        roots.extend(definitions(env, entry[1:]) if is_reference else [entry])
    hashes = [f"fakehash{index:04d}" for index in range(len(roots))]
    lock = {
        "_meta": {"file-type": "spack-lockfile", "lockfile-version": 5},
        "roots": [{"hash": h, "spec": spec} for h, spec in zip(hashes, roots, strict=True)],
        "concrete_specs": {
            h: {"name": name_version(spec)[0]} for h, spec in zip(hashes, roots, strict=True)
        },
    }
    assert env_dir is not None
    (env_dir / "spack.lock").write_text(json.dumps(lock, indent=2))
    print(f"==> Concretized {len(roots)} root specs")
    return 0


def cmd_module(args: list[str]) -> int:
    share = Path(os.environ["FAKE_SPACK_ROOT"]) / "share" / "spack"
    tree = {
        "lmod": share / "lmod" / "linux-amzn2023-x86_64" / "Core",
        "tcl": share / "modules" / "linux-amzn2023-x86_64_v3",
    }[args[0]]
    tree.mkdir(parents=True, exist_ok=True)
    return 0


def say(text: str) -> int:
    print(text)
    return 0


def main(argv: list[str]) -> int:
    record(argv)
    env_dir: Path | None = None
    scope: Path | None = None
    while argv and argv[0].startswith("-"):
        option = argv.pop(0)
        if option == "-e":
            env_dir = Path(argv.pop(0))
        elif option == "-C":
            scope = Path(argv.pop(0))
        elif option == "--version":
            print("0.23.0 (fake)")
            return 0
    command, args = argv[0], argv[1:]
    if command == "python":
        environ = dict(os.environ, PYTHONPATH=os.environ["FAKE_SPACK_PYTHONPATH"])
        os.execve(sys.executable, [sys.executable, *args], environ)
    handlers: dict[str, Callable[[], int]] = {
        "config": lambda: cmd_config(env_dir, args),
        "compiler": lambda: cmd_compiler(args),
        "install": lambda: cmd_install(env_dir, args, scope),
        "location": lambda: cmd_location(args),
        "concretize": lambda: cmd_concretize(env_dir),
        "module": lambda: cmd_module(args),
        "mirror": lambda: say("petal-test    https://example.invalid/buildcache"),
        "buildcache": lambda: say("gpg: fake key trusted"),
    }
    if command not in handlers:
        print(f"fake spack: unsupported command {command!r}", file=sys.stderr)
        return 2
    return handlers[command]()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
