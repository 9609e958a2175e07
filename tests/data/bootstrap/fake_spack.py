"""A fake `spack` for the bootstrap tests: just enough Spack for ssm_documents/bootstrap.sh.

It records every call in $FAKE_LOG, keeps registered compilers in $FAKE_STATE_DIR, lays out
what a real Spack would under $FAKE_SPACK_ROOT (compiler and Lmod prefixes, module trees),
and runs `spack python FILE` with a real Python whose `spack.util.spack_yaml` is PyYAML.

Where the real Spack would refuse what petal renders or the bootstrap does, so does the
fake (the real one was checked, docs/SEEDS.md): `concretize` fails when a required
compiler (`packages: all: require: ['%gcc@=X']`) is not registered yet, or a package is
not buildable and has no externals; `install` outside an environment fails when the
scope (-C) requires the very compiler being installed (no compiler builds itself).

Installs are written into the install tree's database (opt/spack/.spack-db/index.json,
the shape of Spack's; explicit: the roots and what is installed outside the environment,
as Spack marks them), and a package taken from a binary mirror gets the
`.spack/binary_distribution` file real Spack extracts with it. `gpg create/trust` keep
keys in $SPACK_GNUPGHOME, else in the volume's opt/spack/gpg, as Spack does; `buildcache
push` takes only the flags v0.23.0's parser has and signs only with a secret key there.

Where the real Spack v0.23.0 was seen to differ (tests/spack/test_bootstrap_real_spack.py
runs the bootstrap with it), the fake does as it does: `buildcache keys` fails when the
environment has no mirror ("Please add a spack mirror"); a lock's roots are not in the
order of spack.yaml (Spack takes them from a set: the fake sorts them); the lock holds
more than the roots (a build dependency, gmake), and only the roots are explicit; module files go under the root the configuration names (else Spack's
default under $spack/share/spack), one per install.

Behaviour switches (environment): FAKE_SPACK_FAIL (a root spec whose install fails),
FAKE_SPACK_INSTALL_SECONDS (how long each install of a root spec takes),
FAKE_SPACK_CACHED (comma-separated names a binary mirror has), FAKE_SPACK_PUSH_FAIL
(push fails).
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
        record_install(f"fakecompiler{name_version(spec)[0]}", spec, explicit=True)
    elif spec:
        print(f"==> Installing {spec}")
        time.sleep(float(os.environ.get("FAKE_SPACK_INSTALL_SECONDS", "0")))
    else:  # the whole environment
        lock = json.loads((env_dir / "spack.lock").read_text())
        roots = {root["hash"] for root in lock["roots"]}
        for spec_hash, node in lock["concrete_specs"].items():
            spec = f"{node['name']}@{node['version']}"
            record_install(spec_hash, spec, explicit=spec_hash in roots)
    return 0


def database() -> Path:
    return Path(os.environ["FAKE_SPACK_ROOT"]) / "opt" / "spack" / ".spack-db" / "index.json"


def record_install(spec_hash: str, spec: str, *, explicit: bool) -> None:
    path = database()
    empty = {"database": {"version": "7", "installs": {}}}
    data: dict[str, Any] = json.loads(path.read_text()) if path.exists() else empty
    installs: dict[str, Any] = data["database"]["installs"]
    if spec_hash in installs:
        return
    prefix = prefix_of(spec)
    (prefix / ".spack").mkdir(parents=True, exist_ok=True)
    name = name_version(spec)[0]
    if name in os.environ.get("FAKE_SPACK_CACHED", "").split(","):
        (prefix / ".spack" / "binary_distribution").write_text("relocate_textfiles: []\n")
    node_path = "/" + str(prefix.relative_to(Path(os.environ["FAKE_SPACK_ROOT"]).parents[1]))
    installs[spec_hash] = {
        "spec": {"name": name, "hash": spec_hash},
        "path": node_path,
        "installed": True,
        "explicit": explicit,
        "ref_count": 0,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


def gnupghome() -> Path:
    home = os.environ.get("SPACK_GNUPGHOME")
    return Path(home) if home else Path(os.environ["FAKE_SPACK_ROOT"]) / "opt" / "spack" / "gpg"


def cmd_gpg(args: list[str]) -> int:
    home = gnupghome()
    home.mkdir(parents=True, exist_ok=True)
    if args[0] == "create":
        options = {"--export": "", "--export-secret": "", "--comment": "", "--expires": ""}
        rest = list(args[1:])
        while rest and rest[0] in options:
            option = rest.pop(0)
            options[option] = rest.pop(0)
        if len(rest) != 2:
            print("fake spack: gpg create NAME EMAIL", file=sys.stderr)
            return 2
        (home / "secret-fake.asc").write_text("-----BEGIN PGP PRIVATE KEY BLOCK-----\nfake\n")
        if options["--export"]:
            Path(options["--export"]).write_text("-----BEGIN PGP PUBLIC KEY BLOCK-----\nfake\n")
        if options["--export-secret"]:
            Path(options["--export-secret"]).write_text(
                "-----BEGIN PGP PRIVATE KEY BLOCK-----\nfake\n"
            )
        return 0
    if args[0] == "trust":
        text = Path(args[1]).read_text()
        kind = "secret" if "PRIVATE KEY" in text else "public"
        (home / f"{kind}-{Path(args[1]).name}").write_text(text)
        return 0
    print(f"fake spack: unsupported gpg command {args[0]!r}", file=sys.stderr)
    return 2


# `spack buildcache push`'s options in v0.23.0 (lib/spack/spack/cmd/buildcache.py): those
# taking a value, and flags.
PUSH_VALUES = frozenset(
    ["--key", "-k", "--spec-file", "--only", "--base-image", "--tag", "-t", "-j", "--jobs"]
)
PUSH_FLAGS = frozenset(
    [
        "-f",
        "--force",
        "--unsigned",
        "-u",
        "--signed",
        "--update-index",
        "--rebuild-index",
        "--fail-fast",
        "--private",
        "--with-build-dependencies",
        "--without-build-dependencies",
    ]
)


def cmd_mirror_list(env_dir: Path | None) -> int:
    """`mirror list` as Spack 0.23 prints it: [sb] says what a mirror serves (source,
    binary); Spack's own spack-public serves sources only."""
    mirrors = dict(env_yaml(env_dir).get("mirrors") or {})
    lines = [f"{name:<12} [sb] {url}" for name, url in mirrors.items()]
    lines.append(f"{'spack-public':<12} [s ] https://mirror.spack.io")
    print("\n".join(lines))
    return 0


def cmd_buildcache(env_dir: Path | None, args: list[str]) -> int:
    if args[0] == "keys":
        # Spack's own mirror (spack-public) is a source mirror: no binary mirror is left.
        if not env_yaml(env_dir).get("mirrors"):
            print(
                "==> Error: Please add a spack mirror to allow download of build caches.",
                file=sys.stderr,
            )
            return 1
        return say("gpg: fake key trusted")
    if args[0] not in ("push", "create"):
        return say("gpg: fake key trusted")
    options: dict[str, str] = {}
    positional: list[str] = []
    rest = list(args[1:])
    while rest:
        word = rest.pop(0)
        if word in PUSH_VALUES:
            options[word] = rest.pop(0)
        elif word in PUSH_FLAGS:
            options[word] = ""
        elif word.startswith("-"):
            print(f"spack buildcache push: error: unrecognized argument {word}", file=sys.stderr)
            return 2
        else:
            positional.append(word)
    if options.get("--only", "package") not in ("package", "dependencies"):
        print("spack buildcache push: error: invalid choice for --only", file=sys.stderr)
        return 2
    mirror, specs = positional[0], positional[1:]
    signed = "--signed" in options or "--key" in options or "-k" in options
    if signed and not any(p.name.startswith("secret-") for p in gnupghome().glob("*")):
        print("==> Error: no signing key in the GnuPG home", file=sys.stderr)
        return 1
    if os.environ.get("FAKE_SPACK_PUSH_FAIL"):
        print(f"==> Error: cannot push to {mirror}", file=sys.stderr)
        return 1
    pushed = Path(os.environ["FAKE_STATE_DIR"]) / "pushed"
    with pushed.open("a") as out:
        out.writelines(f"{mirror} {spec}\n" for spec in specs)
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
    roots.sort()  # not spack.yaml's order, as with the real Spack (see the docstring)
    hashes = [f"fakehash{index:04d}" for index in range(len(roots))]
    system_gcc = {"name": "gcc", "version": "11.4.1"}
    parameters = {"build_system": "generic", "cflags": []}
    # As in every real lock, more than the roots: here one build dependency of each.
    tool: dict[str, Any] = {
        "name": "gmake",
        "hash": "fakehashgmake",
        "parameters": {"deptypes": ["build"]},
    }
    concrete: dict[str, Any] = {
        h: {
            "name": name_version(spec)[0],
            "version": name_version(spec)[1],
            "compiler": system_gcc,
            "parameters": parameters,
            "dependencies": [tool],
        }
        for h, spec in zip(hashes, roots, strict=True)
    }
    if roots:
        concrete[tool["hash"]] = {
            "name": "gmake",
            "version": "4.4.1",
            "compiler": system_gcc,
            "parameters": parameters,
        }
    lock = {
        "_meta": {"file-type": "spack-lockfile", "lockfile-version": 5},
        "roots": [{"hash": h, "spec": spec} for h, spec in zip(hashes, roots, strict=True)],
        "concrete_specs": concrete,
    }
    assert env_dir is not None
    (env_dir / "spack.lock").write_text(json.dumps(lock, indent=2))
    print(f"==> Concretized {len(roots)} root specs")
    return 0


def cmd_module(args: list[str], scope: Path | None) -> int:
    """`module SYSTEM refresh`: a module file per install, in the tree Spack names
    after the architecture, under the root the scope's modules.yaml configures (a node
    path: under PETAL_ROOT_PREFIX here) or Spack's default."""
    system = args[0]
    modules: dict[str, Any] = {}
    if scope is not None and (scope / "modules.yaml").exists():
        modules = yaml.safe_load((scope / "modules.yaml").read_text()) or {}
    configured = (((modules.get("modules") or {}).get("default") or {}).get("roots") or {}).get(
        system
    )
    share = Path(os.environ["FAKE_SPACK_ROOT"]) / "share" / "spack"
    default = share / {"lmod": "lmod", "tcl": "modules"}[system]
    root = Path(os.environ.get("PETAL_ROOT_PREFIX", "") + configured) if configured else default
    tree = {
        "lmod": root / "linux-amzn2023-x86_64" / "Core",
        "tcl": root / "linux-amzn2023-x86_64_v3",
    }[system]
    tree.mkdir(parents=True, exist_ok=True)
    installs = (
        json.loads(database().read_text())["database"]["installs"] if database().exists() else {}
    )
    for record in installs.values():
        name, _, version = Path(record["path"]).name.rpartition("-")
        (tree / name).mkdir(exist_ok=True)
        (tree / name / f"{version}-gcc").write_text(f"#%Module1.0\n# {record['path']}\n")
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
        "module": lambda: cmd_module(args, scope),
        "mirror": lambda: cmd_mirror_list(env_dir),
        "buildcache": lambda: cmd_buildcache(env_dir, args),
        "gpg": lambda: cmd_gpg(args),
        # The incremental build's marks and prune (real semantics: tests/spack).
        "mark": lambda: 0,
        "gc": lambda: say("==> There are no unused specs. Spack's store is clean."),
    }
    if command not in handlers:
        print(f"fake spack: unsupported command {command!r}", file=sys.stderr)
        return 2
    return handlers[command]()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
