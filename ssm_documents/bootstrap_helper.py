"""petal bootstrap queries: spack python bootstrap_helper.py COMMAND ARG...

bootstrap.sh runs this file, which lies next to it, with Spack's own Python: its spack_yaml
reads YAML where the builder's python3 may lack PyYAML (a file: `spack python -c` takes a
single statement). Python 3.6 compatible (Spack's oldest, RHEL 8's python3): Python never
evaluates the annotations (quoted, or of local variables), so mypy alone imports their names.
"""

import datetime
import json
import os
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from typing import Any, NoReturn


def load_yaml(path: str) -> "Any":
    import spack.util.spack_yaml as syaml

    with Path(path).open() as stream:
        return syaml.load(stream) or {}


def env_section(spack_yaml: str) -> "dict[str, Any]":
    data = load_yaml(spack_yaml)
    if not isinstance(data, dict) or not isinstance(data.get("spack"), dict):
        sys.exit(f"{spack_yaml}: no top-level 'spack:' mapping")
    section: dict[str, Any] = data["spack"]
    return section


def print_lines(items: "Iterable[object]") -> None:
    for item in items:
        print(str(item))


def seed_compilers(spack_yaml: str) -> None:
    """The specs of the environment's `compilers` definition."""
    specs: list[str] = []
    for definition in env_section(spack_yaml).get("definitions") or []:
        specs.extend((definition or {}).get("compilers") or [])
    print_lines(specs)


def module_systems(spack_yaml: str) -> None:
    """lmod and/or tcl, from modules:default:enable."""
    modules = env_section(spack_yaml).get("modules") or {}
    enabled = (modules.get("default") or {}).get("enable") or []
    print_lines(name for name in enabled if name in ("lmod", "tcl"))


def system_compilers(compilers_yaml: str, spack_root: str) -> None:
    """Compilers Spack did not install (their cc is outside SPACK_ROOT)."""
    inside = os.path.realpath(spack_root) + os.sep
    for item in load_yaml(compilers_yaml).get("compilers") or []:
        compiler = item.get("compiler") or {}
        cc = (compiler.get("paths") or {}).get("cc") or ""
        if cc and not os.path.realpath(cc).startswith(inside):
            # gcc@=11.4.1 (an exact version) -> gcc@11.4.1, the form modules.yaml uses
            print(str(compiler.get("spec", "")).replace("@=", "@"))


# The image's packages an environment may use as externals (bootstrap.sh finds versions).
SYSTEM_EXTERNALS = ("slurm", "libfabric")
_VERSION = re.compile(r"^[0-9]+(?:\.[0-9]+)*$")


def external_packages(spack_yaml: str) -> None:
    packages = env_section(spack_yaml).get("packages") or {}
    for name in SYSTEM_EXTERNALS:
        settings = packages.get(name) or {}
        if settings.get("buildable") is False and settings.get("externals"):
            print(name)


def set_externals(spack_yaml: str, *assignments: str) -> None:
    """NAME=VERSION...: the versions of the image's externals replace the rendered ones."""
    import spack.util.spack_yaml as syaml

    versions: dict[str, str] = {}
    for assignment in assignments:
        name, _, version = assignment.partition("=")
        if name not in SYSTEM_EXTERNALS or not _VERSION.match(version):
            sys.exit(f"set-externals: {assignment!r} is not NAME=VERSION of a system external")
        versions[name] = version
    data = load_yaml(spack_yaml)
    packages = (data.get("spack") or {}).get("packages") or {}
    for name, version in versions.items():
        externals = (packages.get(name) or {}).get("externals") or []
        if not externals:
            sys.exit(f"set-externals: {spack_yaml} declares no external {name}")
        for external in externals:
            spec = str(external["spec"])
            external["spec"] = re.sub(
                r"^" + re.escape(name) + r"(@=?[^\s%^]*)?", f"{name}@={version}", spec
            )
    tmp = Path(spack_yaml + ".tmp")
    with tmp.open("w") as stream:
        syaml.dump(data, stream)
    tmp.chmod(0o644)
    tmp.replace(spack_yaml)


def _is_compiler_requirement(item: "object") -> "bool":
    if isinstance(item, str):
        return item.lstrip().startswith("%")
    if isinstance(item, dict):
        group = item.get("one_of") or item.get("any_of") or []
        return bool(group) and all(_is_compiler_requirement(member) for member in group)
    return False


def without_compiler_requirements(packages_yaml: str, out: str) -> None:
    """packages.yaml without compiler requirements (no compiler builds itself), as JSON."""
    data = load_yaml(packages_yaml)
    for settings in (data.get("packages") or {}).values():
        if isinstance(settings, dict) and isinstance(settings.get("require"), list):
            settings["require"] = [
                item for item in settings["require"] if not _is_compiler_requirement(item)
            ]
    with Path(out).open("w") as stream:
        json.dump(data, stream, indent=1)
        stream.write("\n")


def lock_roots(lock: str) -> "list[str]":
    with Path(lock).open() as stream:
        return [str(root["spec"]) for root in json.load(stream).get("roots") or []]


def roots(lock: str) -> None:
    print_lines(lock_roots(lock))


def has_package(lock: str, name: str) -> "NoReturn":
    with Path(lock).open() as stream:
        concrete = json.load(stream).get("concrete_specs") or {}
    found = any(spec.get("name") == name for spec in concrete.values())
    sys.exit(0 if found else 1)


def read_lines(path: str) -> "list[str]":
    with Path(path).open() as stream:
        return [line.rstrip("\n") for line in stream if line.strip()]


def manifest(
    out: str,
    lock: str,
    seeds_file: str,
    core_file: str,
    modules: str,
    module_paths_file: str,
    spack_commit: str,
) -> None:
    env = os.environ
    mount_dir = env["PETAL_MOUNT_DIR"]
    data = {
        "format": 1,
        "fingerprint": env["PETAL_FINGERPRINT"],
        "build_id": env["PETAL_BUILD_ID"],
        "spack_version": env["PETAL_SPACK_VERSION"],
        "spack_commit": spack_commit,
        # datetime.UTC is Python 3.11+.
        "created_at": datetime.datetime.now(datetime.timezone.utc).strftime(  # noqa: UP017
            "%Y-%m-%dT%H:%M:%SZ"
        ),
        "root_specs": lock_roots(lock),
        "compilers": read_lines(seeds_file),
        "core_compilers": read_lines(core_file),
        "modules": modules,
        "module_paths": read_lines(module_paths_file),
        "mount_dir": mount_dir,
        "spack_root": mount_dir + "/spack",
        "environment": mount_dir + "/petal/env",
        "spack_lock": mount_dir + "/petal/env/spack.lock",
        "profile": mount_dir + "/petal/profile.sh",
        "os": {"id": env.get("PETAL_OS_ID", ""), "version_id": env.get("PETAL_OS_VERSION_ID", "")},
        "arch": os.uname().machine,
    }
    tmp = Path(out + ".tmp")
    with tmp.open("w") as stream:
        json.dump(data, stream, indent=2, sort_keys=True)
        stream.write("\n")
    tmp.chmod(0o644)
    tmp.replace(out)


COMMANDS: "dict[str, Callable[..., None]]" = {
    "seed-compilers": seed_compilers,
    "module-systems": module_systems,
    "system-compilers": system_compilers,
    "roots": roots,
    "has-package": has_package,
    "external-packages": external_packages,
    "set-externals": set_externals,
    "without-compiler-requirements": without_compiler_requirements,
    "manifest": manifest,
}

if __name__ == "__main__":
    COMMANDS[sys.argv[1]](*sys.argv[2:])
