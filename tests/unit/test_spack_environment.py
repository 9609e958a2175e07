"""The rendered spack.yaml: one environment, concretized together, under /shared/spack."""

from __future__ import annotations

from pathlib import Path

import yaml

from petal.seed.fingerprint import fingerprint
from petal.seed.loading import load_seed, parse_seed
from petal.seed.spack_environment import render_spack_yaml, spack_environment

REPO = Path(__file__).resolve().parents[2]


def rendered(path: str) -> dict:
    seed = load_seed(REPO / path)
    text = render_spack_yaml(seed, fingerprint(seed))
    assert f"# fingerprint: {fingerprint(seed)}" in text
    return yaml.safe_load(text)["spack"]


def test_bioinformatics_environment() -> None:
    env = rendered("seeds/bioinformatics.yaml")
    definitions = {k: v for d in env["definitions"] for k, v in d.items()}
    assert definitions["compilers"] == ["gcc@11.3.0"]
    assert definitions["packages"] == [
        "openmpi@4.1.4",
        "samtools@1.17",
        "bwa@0.7.17",
        "gatk@4.3.0",
        "lmod",
    ]
    assert env["specs"] == ["$compilers", "$packages"]
    assert env["view"] is False
    assert env["concretizer"]["unify"] == "when_possible"
    assert env["config"]["install_tree"]["root"] == "/shared/spack/opt/spack"
    assert env["mirrors"] == {"spack-v0.23": "https://binaries.spack.io/releases/v0.23"}
    assert env["packages"]["all"]["compiler"] == ["gcc@11.3.0"]
    assert env["packages"]["all"]["target"] == ["x86_64_v3"]
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
    assert env["packages"]["all"]["target"] == ["neoverse_n1"]


def test_seed_mirrors_come_before_the_official_cache() -> None:
    seed = parse_seed(
        "name: a\nsoftware:\n  packages: [bwa]\n  mirrors: [{name: team, url: 's3://b/c'}]\n"
    )
    assert list(spack_environment(seed)["spack"]["mirrors"]) == ["team", "spack-v0.23"]


def test_an_explicit_lmod_is_not_added_twice() -> None:
    seed = parse_seed("name: a\nsoftware: {packages: [lmod@8.7.37, bwa]}\n")
    packages = spack_environment(seed)["spack"]["definitions"][1]["packages"]
    assert packages == ["lmod@8.7.37", "bwa"]
