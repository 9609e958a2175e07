"""ssm_documents/bootstrap.sh run with the real Spack v0.23.0, offline, on the test seed
(seeds/testing/workload-basic.yaml, Tcl modules) and on it with Lmod modules (what the
example seeds use): the script and bootstrap_helper.py as shipped, the environment as
petal renders it (tests/data/bootstrap/harness.py make_real_spack_host: an empty local
binary mirror for the seed's, the install tree and module roots under the test's root
prefix). Each run goes through every step to `done`.

What runs for real, step by step (REAL_SPACK_STEPS: the steps that run `spack`):
- spack: `spack --version` of the release (the clone is a copy of it: git is fake);
  `spack python` runs the helper, as in every step below that uses it;
- cache: the helper reads the (empty) install tree's database;
- mirrors: `mirror list`, `buildcache keys --install --trust` on the local mirror;
- compilers: `mark --implicit --all`, `compiler find --scope site` (this machine's gcc),
  `config add` of the Lmod core compilers;
- environment: the helper sets the image's Slurm and libfabric versions, `config get`;
- concretize: `concretize -f`, or the lock of an earlier real concretization of the same
  inputs (real_spack.py; the cache sits with the extracted Spack, ~/.cache/petal/spack);
- install: `install` of each root and of the environment, with `--fake` added by the
  clone's bin/spack (real_spack.py, test only): nothing is fetched or built, so the
  wrapper adds the one thing of a build the script reads, Lmod's init scripts (stubs);
- push: the helper sorts the installs by source; no build cache (it needs S3 and gpg);
- prune: `gc --yes-to-all --keep-build-dependencies`;
- modules: `module tcl|lmod refresh --delete-tree -y` writes the module files (a fake
  install of tcl lacks init.tcl: Spack warns and skips tcl's own module file);
- profile: `location -i lmod`; profile, manifest: from what Spack wrote; the manifest's
  copy goes to the fake S3.
Fake: the device, mkfs, mount and umount, dnf, git, the instance identity, S3.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import subprocess
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import pytest
import yaml

from petal.build.log_markers import read_log
from petal.seed import spack_check
from petal.seed.loading import load_seed
from petal.seed.model import Seed
from petal.seed.spack_environment import spack_environment
from tests.data.bootstrap import harness

REPO = Path(__file__).resolve().parents[2]
TEST_SEED = REPO / "seeds" / "testing" / "workload-basic.yaml"
TIMEOUT = 1800.0
REAL_SPACK_STEPS = [
    "spack",
    "mirrors",
    "compilers",
    "environment",
    "concretize",
    "install",
    "prune",
    "modules",
]
# A module system's tree under /shared and the module file of a root spec in it: the
# seed's naming, without hash (petal.seed.spack_environment._module_set).
MODULE_TREES = {
    "tcl": r"/shared/spack/share/spack/modules/linux-[a-z0-9.]+-x86_64_v3",
    "lmod": r"/shared/spack/share/spack/lmod/linux-[a-z0-9.]+-x86_64/Core",
}
MODULE_FILES = {"tcl": "{name}/{version}-{compiler}", "lmod": "{name}/{version}.lua"}
pytestmark = pytest.mark.spack


def _seed(modules: Literal["lmod", "tcl"]) -> Seed:
    seed = load_seed(str(TEST_SEED))
    return replace(seed, software=replace(seed.software, modules=modules))


@dataclass(frozen=True)
class Run:
    modules: Literal["lmod", "tcl"]
    host: harness.FakeHost
    result: subprocess.CompletedProcess[str]
    lock: dict[str, Any]
    installs: dict[str, Any]  # the install tree's database: hash -> record
    manifest: dict[str, Any]

    def path(self, node_path: str) -> Path:
        """Where the run wrote a path a cluster node sees."""
        return Path(f"{self.host.root}{node_path}")


def _outcome(host: harness.FakeHost) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """spack.lock, the install tree's database records and the manifest a run left."""
    lock = json.loads((host.shared / "petal" / "env" / "spack.lock").read_text())
    database = host.shared / "spack" / "opt" / "spack" / ".spack-db" / "index.json"
    installs = json.loads(database.read_text())["database"]["installs"]
    manifest = json.loads((host.shared / "petal" / "manifest.json").read_text())
    return lock, installs, manifest


@pytest.fixture(scope="module", params=["tcl", "lmod"])
def run(
    request: pytest.FixtureRequest,
    spack: spack_check.Spack,
    tmp_path_factory: pytest.TempPathFactory,
) -> Run:
    modules: Literal["lmod", "tcl"] = request.param
    environment = spack_environment(_seed(modules))
    host = harness.make_real_spack_host(tmp_path_factory.mktemp(modules), spack, environment)
    result = host.run(timeout=TIMEOUT)
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-4000:]
    return Run(modules, host, result, *_outcome(host))


def _step_outputs(stdout: str) -> dict[str, str]:
    """The output of each step, from its PETAL-STEP marker to the next."""
    outputs: dict[str, str] = {}
    step = ""
    for line in stdout.splitlines():
        if line.startswith("PETAL-STEP "):
            step = harness.verified(line).removeprefix("PETAL-STEP ")
            outputs[step] = ""
        elif step:
            outputs[step] += line + "\n"
    return outputs


def test_every_step_runs_and_these_run_the_real_spack(run: Run) -> None:
    markers = harness.marker_lines(run.result.stdout)
    assert [m.removeprefix("PETAL-STEP ") for m in markers if "-STEP " in m] == harness.STEPS
    assert "PETAL-FAILED" not in run.result.stdout
    outputs = _step_outputs(run.result.stdout)
    running_spack = [step for step, text in outputs.items() if "\n+ spack " in "\n" + text]
    assert running_spack == REAL_SPACK_STEPS
    assert re.search(r"^0\.23\.0 \([0-9a-f]+\)$", outputs["spack"], re.MULTILINE)
    assert not (run.host.bin / "spack").exists()  # no fake spack anywhere on PATH
    assert all(run.host.calls(fake) for fake in ("mkfs.ext4", "mount", "dnf", "git", "umount"))


def test_install_is_the_production_command_with_fake_added(run: Run) -> None:
    """The calls are the script's own (no --fake: the clone's bin/spack adds it), and
    each root of the lock is installed, in the lock's order."""
    installs = [c for c in run.host.calls("spack") if " install " in c]
    assert installs and not [c for c in installs if "--fake" in c]
    roots = [root["spec"] for root in run.lock["roots"]]
    env = run.host.shared / "petal" / "env"
    assert installs == [
        *(f"spack -e {env} install --fail-fast -j 4 {spec}" for spec in roots),
        f"spack -e {env} install --fail-fast -j 4",
    ]
    log = read_log(run.result.stdout, key=harness.LOG_KEY, build_id=harness.BUILD_ID)
    assert [e.spec for e in log.events if e.kind == "progress"] == roots
    lmod = ["lmod"] if run.modules == "lmod" else []
    assert sorted(roots) == ["bzip2@=1.0.8", *lmod, "xz@=5.4.6", "zlib@=1.3.1"]
    installed = _step_outputs(run.result.stdout)["install"].count("Successfully installed")
    assert installed == len([n for n in run.lock["concrete_specs"].values() if "external" not in n])


def test_the_lock_has_every_property_a_build_needs(run: Run) -> None:
    seed = _seed(run.modules)
    properties = spack_check.lock_properties(seed, run.lock, spack_environment(seed))
    assert properties == {name: [] for name in spack_check.PROPERTIES}


def test_the_image_versions_of_the_externals_reach_the_environment(run: Run) -> None:
    written = run.host.shared / "petal" / "env" / "spack.yaml"
    packages = yaml.safe_load(written.read_text())["spack"]["packages"]
    assert packages["slurm"]["externals"][0]["spec"] == f"slurm@={harness.SLURM_VERSION}"
    assert packages["libfabric"]["externals"][0]["spec"] == (
        f"libfabric@={harness.LIBFABRIC_VERSION} fabrics=efa"
    )


def test_the_install_tree_holds_exactly_the_lock_after_the_prune(run: Run) -> None:
    installed = {h for h, record in run.installs.items() if record["installed"]}
    assert installed == set(run.lock["concrete_specs"])
    explicit = {h for h, record in run.installs.items() if record["explicit"]}
    assert explicit == {root["hash"] for root in run.lock["roots"]}
    for spec_hash, record in run.installs.items():
        if "external" not in run.lock["concrete_specs"][spec_hash]:
            assert (Path(record["path"]) / ".spack" / "spec.json").is_file()
    assert "no unused specs" in _step_outputs(run.result.stdout)["prune"]


def test_the_module_files_are_spacks_and_the_profile_finds_them(run: Run) -> None:
    (tree,) = run.manifest["module_paths"]
    assert re.fullmatch(MODULE_TREES[run.modules], tree)
    profile = (run.host.shared / "petal" / "profile.sh").read_text()
    assert f"for _petal_dir in '{tree}'; do" in profile
    nodes = run.lock["concrete_specs"]
    for root in run.lock["roots"]:
        node = nodes[root["hash"]]
        name = MODULE_FILES[run.modules].format(
            name=node["name"], version=node["version"], compiler=node["compiler"]["name"]
        )
        text = (run.path(tree) / name).read_text()
        assert text.startswith("#%Module1.0" if run.modules == "tcl" else "-- -*- lua -*-")
        assert run.installs[root["hash"]]["path"] in text  # its prefix, from the database
    csh = (run.host.shared / "petal" / "profile.csh").read_text()
    assert f"setenv MODULEPATH '{tree}'" in csh


def test_the_lmod_profile_sources_the_lmod_spack_installed(run: Run) -> None:
    profile = (run.host.shared / "petal" / "profile.sh").read_text()
    (lmod,) = [r["path"] for r in run.installs.values() if r["spec"]["name"] == "lmod"] or [""]
    if run.modules == "tcl":
        assert not lmod and "_petal_lmod" not in profile
        return
    init = lmod.removeprefix(str(run.host.root)) + "/lmod/lmod/init"
    assert f"_petal_lmod_bash='{init}/bash'" in profile
    assert f"_petal_lmod_sh='{init}/sh'" in profile
    # The system compiler the real `compiler find` registered is an Lmod core compiler.
    written = yaml.safe_load((run.host.shared / "petal" / "env" / "spack.yaml").read_text())
    core = written["spack"]["modules"]["default"]["lmod"]["core_compilers"]
    assert core == run.manifest["core_compilers"]


def test_the_manifest_is_the_real_lock(run: Run) -> None:
    manifest, lock = run.manifest, run.lock
    assert manifest["lock"] == lock
    assert manifest["root_specs"] == [root["spec"] for root in lock["roots"]]
    nodes = lock["concrete_specs"]
    assert manifest["install_sources"] == {
        h: "external" if "external" in node else "built" for h, node in nodes.items()
    }
    compilers = yaml.safe_load(
        (run.host.shared / "spack" / "etc" / "spack" / "compilers.yaml").read_text()
    )["compilers"]
    system = [c["compiler"]["spec"].replace("@=", "@") for c in compilers]
    assert manifest["core_compilers"] == system
    # Every package on the system compiler the real `compiler find` registered.
    assert {f"{n['compiler']['name']}@{n['compiler']['version']}" for n in nodes.values()} == set(
        system
    )
    assert manifest["compilers"] == []
    assert manifest["modules"] == run.modules
    assert manifest["fingerprint"] == harness.FINGERPRINT
    assert manifest["spack_version"] == harness.SPACK_VERSION
    assert manifest["builder_image"] == harness.IMAGE_ID
    # The copy uploaded (fake S3) is the file, and its marker names its SHA-256.
    path = run.host.shared / "petal" / "manifest.json"
    bucket_key = harness.MANIFEST_URL.removeprefix("s3://")
    uploaded = (run.host.tmp / "aws" / "s3" / bucket_key).read_bytes()
    assert uploaded == path.read_bytes()
    sha = "sha256:" + hashlib.sha256(uploaded).hexdigest()
    assert f"PETAL-MANIFEST {sha}" in harness.marker_lines(run.result.stdout)


def _observed(host: harness.FakeHost, stdout: str) -> dict[str, Any]:
    """What the unit tests assert of a fake run, as this run shows it with either Spack."""
    lock, installs, manifest = _outcome(host)
    log = read_log(stdout, key=harness.LOG_KEY, build_id=harness.BUILD_ID)
    calls = [
        re.sub(r"gcc@[0-9.]+", "gcc@X", re.sub(r"(-[eC]) \S+", r"\1 DIR", call))
        for call in host.calls("spack")
        if not call.startswith("spack python") and " install " not in call
    ]
    return {
        "steps": [e.step for e in log.events if e.kind == "step"],
        "progress is the lock's roots": [e.spec for e in log.events if e.kind == "progress"]
        == [root["spec"] for root in lock["roots"]],
        "roots": sorted(root["spec"] for root in lock["roots"]),
        "explicit are the roots": {h for h, r in installs.items() if r["explicit"]}
        == {root["hash"] for root in lock["roots"]},
        "installed is the lock": set(installs) == set(lock["concrete_specs"]),
        "manifest fields": sorted(manifest),
        "module trees": [re.sub(r"linux-[^/]+", "ARCH", p) for p in manifest["module_paths"]],
        "spack calls but installs": calls,
    }


def test_the_fake_spack_shows_what_the_real_one_does(run: Run, tmp_path: Path) -> None:
    """The unit tests' fake (tests/data/bootstrap/fake_spack.py) on the same seed: what
    they assert of a run is what the real Spack gives."""
    host = harness.make_host(tmp_path)
    environment = spack_environment(_seed(run.modules))
    rendered = yaml.safe_dump(environment, sort_keys=False)
    host.env["PETAL_SPACK_YAML_BASE64"] = base64.b64encode(rendered.encode()).decode()
    fake = host.run()
    assert fake.returncode == 0, fake.stdout + fake.stderr
    assert _observed(host, fake.stdout) == _observed(run.host, run.result.stdout)


def test_buildcache_keys_fails_without_a_mirror_with_either_spack(
    spack: spack_check.Spack, tmp_path: Path
) -> None:
    """The mirrors step's `buildcache keys --install --trust` needs a binary mirror in the
    environment (Spack's own spack-public is a source mirror): the fake refuses too."""
    env = tmp_path / "env"
    env.mkdir()
    (env / "spack.yaml").write_text("spack:\n  specs: []\n  mirrors: {}\n")
    command = ["-e", str(env), "buildcache", "keys", "--install", "--trust"]
    real = spack.run(command, timeout=TIMEOUT)
    (tmp_path / "fake").mkdir()
    host = harness.make_host(tmp_path / "fake")
    fake = host.run(["spack", *command])
    message = "Please add a spack mirror to allow download of build caches."
    assert (real.returncode, message in real.stderr) == (1, True), real.stderr
    assert (fake.returncode, message in fake.stderr) == (1, True), fake.stderr


def test_mirror_list_marks_binary_mirrors_alike_with_either_spack(
    spack: spack_check.Spack, tmp_path: Path
) -> None:
    """The mirrors step reads `[sb]` / `[s ]` from `mirror list` to decide whether there
    are keys to trust: the fake prints them as the real Spack does."""
    env = tmp_path / "env"
    env.mkdir()
    (env / "spack.yaml").write_text(
        "spack:\n  specs: []\n  mirrors:\n    mine: file:///nonexistent/mirror\n"
    )
    command = ["-e", str(env), "mirror", "list"]
    real = spack.run(command, timeout=TIMEOUT)
    (tmp_path / "fake").mkdir()
    fake = harness.make_host(tmp_path / "fake").run(["spack", *command])
    assert real.returncode == fake.returncode == 0, real.stderr + fake.stderr

    def flags(output: str) -> dict[str, str]:
        return {
            line.split()[0]: line[line.index("[") : line.index("]") + 1]
            for line in output.splitlines()
            if "[" in line
        }

    assert flags(real.stdout) == flags(fake.stdout) == {"mine": "[sb]", "spack-public": "[s ]"}
