"""Spack's package names and versions in `petal seed validate`, the generator of that
list, and the parts of `petal seed check` that need no Spack: reading Spack's errors and
the properties of a spack.lock."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from petal.seed import spack_check
from petal.seed.loading import load_seed, parse_seed
from petal.seed.model import MPI_PACKAGES, SeedError
from petal.seed.spack_environment import MPI_REQUIREMENTS, spack_environment
from petal.seed.spack_packages import (
    SPACK_VERSION,
    catalog,
    from_json,
    generate,
    package_problems,
    version_possible,
)
from petal.seed.spack_spec import parse_spec

REPO = Path(__file__).resolve().parents[2]
SEEDS = sorted(p.relative_to(REPO) for p in (REPO / "seeds").glob("**/*.yaml"))


@pytest.fixture(autouse=True)
def _in_the_repository(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)  # the seeds and data are named relative to it


MINIMAL = """
name: typo
software:
  spack_version: {version}
  compilers: [{compilers}]
  packages: [{packages}]
"""


def _errors(packages: str, compilers: str = "", version: str = SPACK_VERSION) -> list[str]:
    text = MINIMAL.format(packages=packages, compilers=compilers, version=version)
    try:
        parse_seed(text, "typo.yaml")
    except SeedError as error:
        return [p.format("typo.yaml") for p in error.errors]
    return []


def test_the_shipped_list_is_spack_v0_23_0() -> None:
    cat = catalog()
    assert cat is not None
    assert cat.spack_version == SPACK_VERSION == "v0.23.0"
    assert len(cat.packages) > 8000
    assert "1.3.1" in cat.packages["zlib"]
    assert {"mpi", "blas", "lapack"} <= cat.virtuals | set(cat.packages)


@pytest.mark.parametrize("seed", SEEDS, ids=str)
def test_example_seeds_name_only_known_packages(seed: Path) -> None:
    load_seed(seed)  # raises on an unknown name or version


@pytest.mark.parametrize(
    ("spec", "suggestion"),
    [("zlibb", "'zlib'"), ("openmpii@4.1.4", "'openmpi'"), ("py-numpy ^openblass", "'openblas'")],
)
def test_a_misspelt_package_is_an_error_with_the_nearest_name(spec: str, suggestion: str) -> None:
    (error,) = _errors(f'"{spec}"')
    assert error.startswith("typo.yaml:6: software.packages[0]: ")
    assert "is not a package of Spack v0.23.0: did you mean " + suggestion in error


def test_a_name_nothing_resembles_says_how_to_search() -> None:
    (error,) = _errors("qqqqqqqqqq")
    assert "`spack list qqqqqqqqqq`" in error


@pytest.mark.parametrize(
    "spec",
    [
        "samtools@1.17",
        "samtools@=1.17",
        "gatk@4.3.0",  # 4.3.0.0: `@4.3.0` includes it
        "samtools@1.99:",  # ranges are left to the real solver
        "samtools@:1.2",
        "samtools@1.99,1.17",
        "openmpi@main",
        "hdf5 ^mpi",  # a virtual package
    ],
)
def test_versions_spack_may_accept_pass(spec: str) -> None:
    assert _errors(f'"{spec}"') == []


@pytest.mark.parametrize("spec", ["samtools@1.99", "samtools@=1.1", "zlib@1.3.1 ^bzip2@9"])
def test_a_version_no_recipe_declares_is_an_error(spec: str) -> None:
    (error,) = _errors(f'"{spec}"')
    assert "has no such version (it has " in error
    assert "use one of those, or a range such as @" in error


def test_compiler_versions_are_checked_too() -> None:
    (error,) = _errors("zlib", compilers="gcc@11.99")
    assert "software.compilers[0]: gcc@11.99: Spack v0.23.0's gcc has no such version" in error
    assert "master" not in error  # branches are not offered


def test_another_spack_release_is_not_checked() -> None:
    assert _errors("zlibb", version="v0.22.0") == []


def test_version_semantics() -> None:
    declared = ["1.19.2", "1.17", "1.3rc1"]
    assert version_possible("1.19", declared)
    assert not version_possible("1.1", declared)  # 1.1 is not a prefix of 1.17
    assert not version_possible("=1.19", declared)
    assert version_possible("1.3", declared)
    assert version_possible("2:", declared)


def test_checks_nothing_without_the_data() -> None:
    spec = parse_spec("zlibb")
    assert package_problems([("p", spec)], SPACK_VERSION, from_json(_empty())) != []
    assert package_problems([("p", spec)], "v0.22.0", from_json(_empty())) == []


def _empty() -> dict[str, object]:
    return {"spack_version": SPACK_VERSION, "packages": {}, "open": [], "virtuals": []}


def test_spack_reasons_are_capped() -> None:
    output = "".join(
        f"  {i}. cannot satisfy a requirement for package 'p{i}'.\n" for i in range(1, 30)
    )
    problems = spack_check.concretize_problems(output, _seed("zlib"))
    assert len(problems) == spack_check.MAX_REASONS + 1
    assert problems[-1].message.startswith("and 21 more reasons like these")


def test_a_seed_of_the_other_cpu_family_is_solved_for_its_target(tmp_path: Path) -> None:
    """Spack 0.23 offers only this machine's family unless host_compatible is false and
    the root specs name the target (spack/solver/asp.py, target_defaults)."""
    env = spack_environment(load_seed("seeds/chemistry.yaml"))
    cross = spack_check.offline_environment(env, tmp_path, cross_target="neoverse_n1")["spack"]
    assert cross["concretizer"]["targets"] == {"host_compatible": False}
    packages = next(d["packages"] for d in cross["definitions"] if "packages" in d)
    assert packages[0] == "openmpi@=4.1.6 fabrics=ofi target=neoverse_n1"
    assert all(" target=neoverse_n1" in p for p in packages)
    ml = spack_environment(load_seed("seeds/machine-learning.yaml"))
    cross = spack_check.offline_environment(ml, tmp_path, cross_target="neoverse_n1")["spack"]
    packages = next(d["packages"] for d in cross["definitions"] if "packages" in d)
    # the target goes on the root, not on the ^dependency
    assert "py-numpy@=1.26.4 target=neoverse_n1 ^openblas" in packages
    # what the builder gets is left alone: it is of the seed's family
    assert "targets" not in env["spack"]["concretizer"]


def test_a_build_tool_twice_is_accepted_a_library_twice_is_not() -> None:
    """Spack's default `duplicates: strategy: minimal` builds a build tool twice when
    packages need incompatible versions (py-pandas@2.1 needs py-cython@:2, py-scipy@1.13
    py-cython@3:): nothing links or loads them. A linked package twice is refused."""
    seed = _seed("py-a", "py-b")
    build = {"parameters": {"deptypes": ["build"]}}
    link = {"parameters": {"deptypes": ["build", "link"]}}
    lock = {
        "roots": [{"hash": "a"}, {"hash": "b"}],
        "concrete_specs": {
            "a": {
                **_node("py-a"),
                "dependencies": [
                    {"name": "c", "hash": "c1", **build},
                    {"name": "z", "hash": "z1", **link},
                ],
            },
            "b": {
                **_node("py-b"),
                "dependencies": [
                    {"name": "c", "hash": "c2", **build},
                    {"name": "z", "hash": "z2", **link},
                ],
            },
            "c1": _node("py-cython", version="0.29"),
            "c2": _node("py-cython", version="3.0"),
            "z1": _node("zlib", version="1.2"),
            "z2": _node("zlib", version="1.3"),
        },
    }
    env = spack_environment(seed)
    (message,) = spack_check.lock_properties(seed, lock, env)["one_version"]
    assert message.startswith("zlib is concretized 2 times")


def test_the_generator_reads_recipes_without_spack(tmp_path: Path) -> None:
    packages = tmp_path / "var/spack/repos/builtin/packages"
    (tmp_path / "lib/spack/spack").mkdir(parents=True)
    (tmp_path / "lib/spack/spack/__init__.py").write_text('__version__ = "0.23.0"\n')
    for name, body in {
        "foo": 'class Foo(Package):\n    version("2.0", sha256="x")\n    version("1.0", deprecated=True)\n'
        '    provides("mpi@:3")\n',
        "bar": "class Bar(Package):\n    for v in V:\n        version(v)\n",
    }.items():
        (packages / name).mkdir(parents=True)
        (packages / name / "package.py").write_text(body)
    data = generate(tmp_path)
    assert data["spack_version"] == "v0.23.0"
    assert data["packages"] == {"bar": [], "foo": ["2.0", "1.0"]}
    assert data["open"] == ["bar"]
    assert data["virtuals"] == ["mpi"]
    assert data["mpi_providers"] == ["foo"]
    assert data["deprecated"] == {"foo": ["1.0"]}


def test_a_deprecated_version_is_a_warning_naming_a_kept_one() -> None:
    seed = parse_seed(MINIMAL.format(packages="lammps@20230802", compilers="", version="v0.23.0"))
    (warning,) = [p for p in seed.warnings if "deprecated" in p.message]
    assert warning.message == (
        "lammps@20230802 is deprecated in Spack v0.23.0, whose concretizer refuses "
        "deprecated versions: use 20230802.4"
    )


def test_the_shipped_list_is_the_generators_format() -> None:
    path = Path("petal/data/spack-v0.23.0-packages.json")
    data = json.loads(path.read_text())
    assert set(data) == {
        "format",
        "spack_version",
        "generated_by",
        "open",
        "virtuals",
        "mpi_providers",
        "deprecated",
        "packages",
    }


@pytest.mark.parametrize("spec", ["mvapich2@2.3.7", "osu-micro-benchmarks ^mvapich2", "intel-mpi"])
def test_an_mpi_petal_does_not_wire_is_refused(spec: str) -> None:
    """Spack 0.23 answers `^mvapich2` with an internal error (the environment requires
    the MPI to be one petal wires): validate says why instead."""
    with pytest.raises(SeedError) as caught:
        parse_seed(MINIMAL.format(packages=f"'{spec}'", compilers="", version="v0.23.0"))
    name = "intel-mpi" if spec == "intel-mpi" else "mvapich2"
    assert [p.message for p in caught.value.problems] == [
        f"{name} is an MPI petal does not build for Slurm and EFA: use openmpi, mpich or "
        'intel-oneapi-mpi (docs/SEEDS.md, "MPI, Slurm and EFA")'
    ]


def test_the_mpis_petal_wires_are_named_once() -> None:
    assert tuple(MPI_REQUIREMENTS) == MPI_PACKAGES
    cat = catalog()
    assert cat is not None
    assert set(MPI_PACKAGES) <= cat.mpi_providers
    # nvhpc provides MPI, but is a compiler: a seed's nvhpc compiler stays valid.
    nvhpc = MINIMAL.format(packages="zlib", compilers="nvhpc@24.7", version="v0.23.0")
    assert parse_seed(nvhpc).software.compilers == ("nvhpc@24.7",)


# --- petal seed check, without Spack ---------------------------------------------------

ERRORS = """==> Error: failed to concretize `py-scipy@:1.12 ^openblas@0.3.26:`, `samtools@1.99` for the following reasons:
     1. Cannot satisfy 'samtools@1.99'
     2. py-scipy: '^openblas@0.3.26:' conflicts with '@:1.12'
     3. Cannot satisfy 'samtools@1.99'
        required because samtools@1.99 requested explicitly
"""


def _seed(*packages: str, compilers: tuple[str, ...] = ()):  # type: ignore[no-untyped-def]
    seed = load_seed("seeds/testing/workload-basic.yaml")
    software = replace(seed.software, packages=packages, compilers=compilers)
    return replace(seed, software=software)


def test_spack_refusals_become_problems_on_the_seed_field() -> None:
    seed = _seed("samtools@1.99", "py-scipy@:1.12 ^openblas@0.3.26:")
    problems = spack_check.concretize_problems(ERRORS, seed)
    assert [p.path for p in problems] == ["software.packages[0]", "software.packages[1]"]
    assert "Cannot satisfy 'samtools@1.99': use a version the recipe declares" in str(problems[0])
    assert "conflicts with '@:1.12': change one of the two constraints" in str(problems[1])


def test_an_unknown_package_from_spack_gets_a_suggestion() -> None:
    output = "==> Error: Package 'spack.pkg.builtin.zlibb' not found.\n"
    (problem,) = spack_check.concretize_problems(output, _seed("zlibb"))
    assert (
        str(problem) == "software.packages[0]: Spack has no package 'zlibb': did you mean 'zlib'?"
    )


def _node(name: str, deps: tuple[str, ...] = (), **extra: object) -> dict[str, object]:
    return {
        "name": name,
        "version": extra.pop("version", "1.0"),
        "arch": {
            "platform": "linux",
            "platform_os": "debian12",
            "target": extra.pop("target", "x86_64_v3"),
        },
        "compiler": {"name": "gcc", "version": extra.pop("cv", "12.3.0")},
        "parameters": extra.pop("parameters", {}),
        "dependencies": [{"name": d.split("-")[0], "hash": d} for d in deps],
        **extra,
    }


def test_lock_properties() -> None:
    seed = _seed("openmpi@4.1.6", "zlib", compilers=("gcc@12.3.0",))
    lock = {
        "roots": [{"hash": "gcc-h"}, {"hash": "openmpi-h"}, {"hash": "zlib-h"}],
        "concrete_specs": {
            # the compiler and its toolchain: built with the system compiler, not checked
            "gcc-h": _node("gcc", ("zlib-old",), cv="12.2.0", version="12.3.0"),
            "zlib-old": _node("zlib", cv="12.2.0", target="x86_64"),
            "openmpi-h": _node(
                "openmpi",
                ("zlib-h", "glibc-h", "libfabric-h"),
                parameters={"schedulers": ["none"], "fabrics": ["ofi"]},
            ),
            "libfabric-h": _node("libfabric"),
            "zlib-h": _node("zlib", ("zlib-2",)),
            "zlib-2": _node("zlib", version="1.2", target="zen3", cv="12.2.0"),
            "glibc-h": _node("glibc", cv="12.2.0", external={"path": "/usr"}),
        },
    }
    env = spack_environment(seed)
    env["spack"]["config"]["build_stage"] = ["$tempdir/$user/spack-stage"]
    found = spack_check.lock_properties(seed, lock, env)
    assert set(found) == set(spack_check.PROPERTIES)
    assert found["compiler"] == [
        "1 of 4 specs are not built with gcc@12.3.0: zlib@1.2%gcc@12.2.0; require the compiler "
        "(packages: all: require: '%gcc@12.3.0')"
    ]
    assert found["target"][0].startswith("1 of 4 specs are not built for x86_64_v3: zlib (zen3)")
    assert found["mpi"] == [
        "openmpi@1.0 is concretized without schedulers=slurm: it would not launch under "
        "Slurm or not use EFA; require them (packages: openmpi: require:)",
        "libfabric@1.0 would be built by Spack, not taken from the image's /opt/amazon/efa: "
        "declare it an external (buildable: false)",
    ]
    assert found["one_version"][0].startswith("zlib is concretized 2 times")
    assert "is under /tmp" in found["build_stage"][0]


def test_a_good_lock_has_no_violations() -> None:
    seed = _seed("openmpi@4.1.6", compilers=("gcc@12.3.0",))
    lock = {
        "roots": [{"hash": "o"}],
        "concrete_specs": {
            "o": _node(
                "openmpi",
                ("f",),
                parameters={"schedulers": ["slurm"], "fabrics": ["ofi"]},
            ),
            "f": _node("libfabric", external={"path": "/opt/amazon/efa"}),
        },
    }
    env = spack_environment(seed)
    env["spack"]["config"]["build_stage"] = ["/var/tmp/$user/spack-stage"]
    assert spack_check.lock_properties(seed, lock, env) == {p: [] for p in spack_check.PROPERTIES}


def test_every_mpi_in_the_dag_is_checked_not_only_the_seeds() -> None:
    """py-torch pulls an MPI the seed never names: it must be wired all the same."""
    seed = _seed("py-torch", compilers=("gcc@12.3.0",))
    mpi = {"parameters": {"deptypes": ["build", "link"], "virtuals": ["mpi"]}}
    nodes: dict[str, object] = {
        "t": {**_node("py-torch"), "dependencies": [{"name": "m", "hash": "m", **mpi}]},
        "m": _node("mvapich2", ("s",)),
        "s": _node("slurm"),
    }
    lock = {"roots": [{"hash": "t"}], "concrete_specs": nodes}
    env = spack_environment(seed)
    assert spack_check.lock_properties(seed, lock, env)["mpi"] == [
        "mvapich2@1.0 is the MPI, which petal does not wire to Slurm and EFA: use one that "
        "it does (openmpi, mpich, intel-oneapi-mpi), e.g. ^openmpi",
        "slurm@1.0 would be built by Spack, not taken from the image's /opt/slurm: declare "
        "it an external (buildable: false)",
    ]
    nodes["m"] = _node("mpich", parameters={"slurm": True, "netmod": "tcp"})
    assert spack_check.lock_properties(seed, lock, env)["mpi"] == [
        "mpich@1.0 is concretized without netmod=ofi: it would not launch under Slurm or not "
        "use EFA; require them (packages: mpich: require:)"
    ]


def test_the_check_runs_offline_in_its_work_directory(tmp_path: Path) -> None:
    env = spack_environment(load_seed("seeds/bioinformatics.yaml"))
    offline = spack_check.offline_environment(env, tmp_path)["spack"]
    assert offline["mirrors"] == {}
    assert offline["config"]["install_tree"] == {"root": str(tmp_path / "opt")}
    assert all(str(tmp_path) in r for r in offline["modules"]["default"]["roots"].values())
    assert env["spack"]["mirrors"]  # the rendered one is left as it is


def test_check_without_a_spack_is_a_problem_not_a_traceback(tmp_path: Path) -> None:
    with pytest.raises(spack_check.SpackCheckError) as caught:
        spack_check.prepare(spack_root=tmp_path, cache=tmp_path / "cache")
    assert str(caught.value) == f"{tmp_path}: holds no bin/spack: give the root of a Spack checkout"
    with pytest.raises(spack_check.SpackCheckError) as missing:
        spack_check.prepare(tarball=tmp_path / "nope.tar.gz", cache=tmp_path / "cache")
    assert "does not exist" in str(missing.value)


def test_seed_check_without_a_spack_says_how_to_give_one(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from petal.cli.main import main

    monkeypatch.delenv("PETAL_SPACK_ROOT", raising=False)
    monkeypatch.delenv("PETAL_SPACK_TARBALL", raising=False)
    assert main(["seed", "check", "seeds/testing/workload-basic.yaml"]) == 2
    assert capsys.readouterr().err == (
        "petal seed check: needs a Spack: --spack-root DIR, PETAL_SPACK_ROOT or --spack-tarball\n"
    )
