"""The `spack` of a bootstrap test run with the real Spack (harness.make_real_spack_host):
the real Spack of the host's clone, with two test-only changes, and no other.

TEST ONLY. The harness writes it as the clone's bin/spack (the release's own script moved
to bin/spack.real): ssm_documents/bootstrap.sh puts $SPACK_ROOT/bin first on PATH, so this
is the `spack` every step runs. A builder clones Spack from GitHub and never has it.

- `install` gets `--fake`: Spack does everything an install does (concretized specs,
  install tree, database, explicit marks) but fetches and builds nothing (offline). Of
  what a build makes, only Lmod's init scripts are then added (stubs defining `module`):
  the profile step reads them.
- `-e ENV concretize -f` takes the spack.lock of an earlier real concretization of the
  same inputs (the environment, Spack's site configuration and the installed hashes,
  reuse: true reads them) from $REAL_SPACK_LOCKS; else it runs the real one and keeps its
  lock there. Solving even a small environment takes a minute of CPU.

Every call is recorded in $FAKE_LOG, as the fake spack records its calls, so a test reads
one list of calls whichever Spack ran. Usage: real_spack.py SPACK_REAL_SCRIPT ARG...
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

# Spack's global options that take a value (lib/spack/spack/main.py), as far as
# bootstrap.sh uses any: what precedes the command.
GLOBAL_VALUES = frozenset(["-e", "--env", "-D", "--env-dir", "-C", "--config-scope", "-c"])


def split_command(argv: list[str]) -> tuple[list[str], str, list[str]]:
    """(global options, command, its arguments)."""
    index = 0
    while index < len(argv) and argv[index].startswith("-"):
        index += 2 if argv[index] in GLOBAL_VALUES else 1
    if index >= len(argv):
        return argv, "", []
    return argv[:index], argv[index], argv[index + 1 :]


def environment_dir(options: list[str]) -> Path | None:
    for flag in ("-e", "--env", "-D", "--env-dir"):
        if flag in options:
            return Path(options[options.index(flag) + 1])
    return None


def lock_key(env_dir: Path, spack_root: Path) -> str:
    """What a concretization depends on, with the host's temporary directory (which
    the environment's install tree and module roots name) left out."""
    host = os.environ["REAL_SPACK_HOST"]
    spack_yaml = (env_dir / "spack.yaml").read_text()
    parts = [os.environ["REAL_SPACK_KEY"], spack_yaml]
    for scope in sorted((spack_root / "etc" / "spack").glob("*.yaml")):
        parts += [scope.name, scope.read_text()]
    config = (yaml.safe_load(spack_yaml) or {}).get("spack", {}).get("config", {})
    database = Path(config["install_tree"]["root"]) / ".spack-db" / "index.json"
    if database.is_file():
        installs = json.loads(database.read_text())["database"]["installs"]
        parts += sorted(h for h, record in installs.items() if record.get("installed"))
    text = "\n".join(parts).replace(host, "<host>")
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def concretize(real: Path, argv: list[str], env_dir: Path) -> int:
    locks = Path(os.environ["REAL_SPACK_LOCKS"])
    cached = locks / f"{lock_key(env_dir, real.parents[1])}.lock"
    if cached.is_file():
        shutil.copyfile(cached, env_dir / "spack.lock")
        print(f"==> (test) spack.lock of an earlier real concretization: {cached}")
        return 0
    status = subprocess.run([str(real), *argv], check=False).returncode
    if status == 0 and (env_dir / "spack.lock").is_file():
        locks.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(env_dir / "spack.lock", cached)
    return status


def install(real: Path, options: list[str], args: list[str], env_dir: Path | None) -> int:
    status = subprocess.run([str(real), *options, "install", "--fake", *args], check=False)
    if status.returncode != 0 or env_dir is None:
        return status.returncode
    spack_yaml = yaml.safe_load((env_dir / "spack.yaml").read_text())
    database = Path(spack_yaml["spack"]["config"]["install_tree"]["root"]) / ".spack-db"
    installs = json.loads((database / "index.json").read_text())["database"]["installs"]
    for record in installs.values():
        if record["spec"]["name"] == "lmod" and record["installed"]:
            init = Path(record["path"]) / "lmod" / "lmod" / "init"
            init.mkdir(parents=True, exist_ok=True)
            for shell, text in (("bash", SH_INIT), ("sh", SH_INIT), ("csh", CSH_INIT)):
                (init / shell).write_text(text)
    return 0


SH_INIT = "# (test) a stub of Lmod's init script\nmodule() { :; }\n"
CSH_INIT = "# (test) a stub of Lmod's init script\nalias module true\n"


def main(real: Path, argv: list[str]) -> int:
    with Path(os.environ["FAKE_LOG"]).open("a") as log:
        log.write(shlex.join(["spack", *argv]) + "\n")
    options, command, args = split_command(argv)
    env_dir = environment_dir(options)
    if command == "concretize" and env_dir is not None and args in (["-f"], ["--force"]):
        return concretize(real, argv, env_dir)
    if command == "install":
        return install(real, options, args, env_dir)
    os.execv(real, [str(real), *argv])
    return 127  # not reached


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), sys.argv[2:]))
