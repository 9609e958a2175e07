"""The rendered spack.yaml: one environment, concretized together, under /shared/spack."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from petal.seed.fingerprint import fingerprint
from petal.seed.loading import load_seed, parse_seed
from petal.seed.spack_environment import render_spack_yaml, spack_environment

REPO = Path(__file__).resolve().parents[2]


def rendered(path: str) -> dict[str, Any]:
    seed = load_seed(REPO / path)
    text = render_spack_yaml(seed, fingerprint(seed))
    assert f"# fingerprint: {fingerprint(seed)}" in text
    spack: dict[str, Any] = yaml.safe_load(text)["spack"]
    return spack


def test_bioinformatics_environment() -> None:
    env = rendered("seeds/bioinformatics.yaml")
    definitions = {k: v for d in env["definitions"] for k, v in d.items()}
    assert definitions["compilers"] == ["gcc@=11.3.0"]
    assert definitions["packages"] == [
        "openmpi@=4.1.4",
        "samtools@=1.17",
        "bwa@=0.7.17",
        "gatk@=4.3.0.0",
        "lmod",
    ]
    # The compiler is built and registered first: no root spec.
    assert env["specs"] == ["$packages"]
    assert env["view"] is False
    assert env["concretizer"]["unify"] is True
    assert env["config"]["install_tree"]["root"] == "/shared/spack/opt/spack"
    assert env["mirrors"] == {"spack-v0.23": "https://binaries.spack.io/releases/v0.23"}
    # Requirements: with reuse, preferences lose to the system compiler (real Spack).
    assert env["packages"]["all"] == {"require": ["%gcc@=11.3.0", "target=x86_64_v3"]}
    assert env["config"]["build_stage"] == ["/var/tmp/$user/spack-stage"]
    modules = env["modules"]["default"]
    assert modules["enable"] == ["lmod"]
    assert modules["lmod"]["core_compilers"] == ["gcc@11.3.0"]
    assert modules["lmod"]["hierarchy"] == ["mpi"]
    assert modules["roots"]["lmod"].startswith("/shared/spack/")


def test_tcl_environment_has_no_lmod() -> None:
    env = rendered("seeds/testing/workload-basic.yaml")
    modules = env["modules"]["default"]
    assert modules["enable"] == ["tcl"]
    assert "lmod" not in modules
    assert env["specs"] == ["$packages"]
    packages = next(d["packages"] for d in env["definitions"] if "packages" in d)
    assert "lmod" not in packages


def test_arm64_targets_every_graviton() -> None:
    env = rendered("seeds/chemistry.yaml")
    assert env["packages"]["all"]["require"][-1] == "target=neoverse_n1"


def test_seed_mirrors_come_before_the_official_cache() -> None:
    seed = parse_seed(
        "name: a\nsoftware:\n  packages: [bwa]\n  mirrors: [{name: team, url: 's3://b/c'}]\n"
    )
    assert list(spack_environment(seed)["spack"]["mirrors"]) == ["team", "spack-v0.23"]


def test_an_explicit_lmod_is_not_added_twice() -> None:
    seed = parse_seed("name: a\nsoftware: {packages: [lmod@8.7.37, bwa]}\n")
    packages = spack_environment(seed)["spack"]["definitions"][1]["packages"]
    assert packages == ["lmod@=8.7.37", "bwa"]


def test_mpi_uses_the_images_slurm_and_efa() -> None:
    env = rendered("seeds/chemistry.yaml")
    packages = env["packages"]
    assert packages["slurm"] == {
        "buildable": False,
        "externals": [{"spec": "slurm@=24.11.5", "prefix": "/opt/slurm"}],
    }
    assert packages["libfabric"]["buildable"] is False
    assert packages["libfabric"]["externals"][0]["prefix"] == "/opt/amazon/efa"
    assert "fabrics=efa" in packages["libfabric"]["externals"][0]["spec"]
    # A package's own requirements replace those of `all`: the compiler is repeated.
    assert packages["openmpi"]["require"] == [
        "schedulers=slurm",
        "fabrics=ofi",
        "%gcc@=12.3.0",
        "target=neoverse_n1",
    ]


def test_every_environment_wires_mpi() -> None:
    """MPI arrives through packages' defaults (py-torch +distributed, valgrind +mpi): the
    wiring is there whether the seed names an MPI or not, and applies only when one is in
    the DAG. The MPI is openmpi unless the seed names another."""
    for path in ("seeds/testing/workload-basic.yaml", "seeds/machine-learning.yaml"):
        packages = rendered(path)["packages"]
        assert packages["slurm"]["buildable"] is False
        assert packages["libfabric"]["externals"][0]["prefix"] == "/opt/amazon/efa"
        assert packages["mpi"] == {"require": ["openmpi"]}
        assert packages["openmpi"]["require"][:2] == ["schedulers=slurm", "fabrics=ofi"]
    basic = rendered("seeds/testing/workload-basic.yaml")["packages"]
    assert basic["all"] == {"require": ["target=x86_64_v3"]}
    assert basic["mpich"]["require"] == ["+slurm", "netmod=ofi", "target=x86_64_v3"]


def test_the_mpi_the_seed_names_is_every_packages_mpi() -> None:
    mpich = rendered("seeds/testing/mpi-mpich.yaml")["packages"]
    assert mpich["mpi"] == {"require": ["mpich"]}
    intel = rendered("seeds/testing/mpi-intel.yaml")["packages"]
    assert intel["mpi"] == {"require": ["intel-oneapi-mpi"]}
    assert intel["intel-oneapi-mpi"]["require"] == [
        "+external-libfabric",
        "%gcc@=12.3.0",
        "target=x86_64_v3",
    ]
    both = parse_seed("name: a\nsoftware: {packages: ['hdf5 +mpi ^mpich', openmpi]}\n")
    assert spack_environment(both)["spack"]["packages"]["mpi"] == {
        "require": [{"one_of": ["mpich", "openmpi"]}]
    }


def test_several_compilers_are_one_of() -> None:
    seed = parse_seed(
        "name: a\nsoftware: {compilers: [gcc@13.2.0, llvm@17.0.6], packages: [bwa]}\n"
    )
    env = spack_environment(seed)["spack"]
    assert env["packages"]["all"]["require"][0] == {"one_of": ["%gcc@=13.2.0", "%clang@=17.0.6"]}
    assert env["modules"]["default"]["lmod"]["core_compilers"] == ["gcc@13.2.0", "clang@17.0.6"]


def test_python_module_only_when_the_seed_asks_for_python() -> None:
    tools = spack_environment(parse_seed("name: a\nsoftware: {packages: [gatk]}\n"))
    assert tools["spack"]["modules"]["default"]["lmod"]["exclude"] == ["python"]
    python = spack_environment(parse_seed("name: a\nsoftware: {packages: [py-numpy]}\n"))
    assert "exclude" not in python["spack"]["modules"]["default"]["lmod"]


def test_versions_are_exact_ranges_stay_ranges() -> None:
    seed = parse_seed(
        "name: a\nsoftware: {packages: ['hdf5@1.14.3 +mpi ^zlib@1.3', 'python@3.11:3.11']}\n"
    )
    packages = spack_environment(seed)["spack"]["definitions"][1]["packages"]
    assert packages[:2] == ["hdf5@=1.14.3 +mpi ^zlib@=1.3", "python@3.11:3.11"]
