"""The Spack environment (spack.yaml) a build installs onto the software volume.

One environment concretized together is how Spack wants software built: dependencies
are shared, and `spack install` builds them in parallel. The bootstrap installs the
seed's compilers first, outside the environment (they must be installed and registered
before packages can be concretized with them), then concretizes and installs this
environment. What real Spack showed and this file therefore renders (docs/SEEDS.md,
"The Spack environment"):

- requirements (`require:`), not preferences, for the compiler and the target: with
  `reuse: true` a preference loses to any reusable spec built with the system compiler;
- exact versions (`@=`): in Spack `@4.3.0` is a range that also takes 4.3.0.0;
- `unify: true`: a seed that cannot be one consistent stack fails to concretize instead
  of silently installing two versions of a package on one PYTHONPATH;
- Slurm and EFA's libfabric as the builder's externals, and every MPI Spack may pick
  built with both, whether the seed names it or a package pulls it in.
"""

from __future__ import annotations

from typing import Any, Final

from petal.deployment_contract import SPACK_ROOT
from petal.seed.model import Seed
from petal.seed.spack_spec import Spec, exact_versions, parse_spec

# Generic targets, so software built on the builder's CPU runs on every compute
# instance type of the architecture (the default would be the builder's own
# microarchitecture, e.g. znver3 on c6a, and crash with illegal instructions on c6i).
PORTABLE_TARGETS: Final = {"x86_64": "x86_64_v3", "arm64": "neoverse_n1"}
INSTALL_ROOT: Final = f"{SPACK_ROOT}/opt/spack"
MODULE_ROOTS: Final = {
    "lmod": f"{SPACK_ROOT}/share/spack/lmod",
    "tcl": f"{SPACK_ROOT}/share/spack/modules",
}
# On the builder's root disk (at least 100 GiB, petal.aws.ec2_builder), out of the
# snapshot; not $tempdir: /tmp is a tmpfs of half the RAM on Amazon Linux 2023.
BUILD_STAGE: Final = "/var/tmp/$user/spack-stage"  # noqa: S108 - root-only builder
SOURCE_CACHE: Final = "/var/tmp/spack-source-cache"  # noqa: S108 - root-only builder

# The compiler a compiler package provides, as `%name@version` names it.
COMPILER_OF_PACKAGE: Final = {
    "gcc": "gcc",
    "llvm": "clang",
    "aocc": "aocc",
    "nvhpc": "nvhpc",
    "intel-oneapi-compilers": "oneapi",
    "intel-oneapi-compilers-classic": "intel",
}

# ParallelCluster images carry Slurm and EFA's libfabric; MPI must use both. The
# versions here are placeholders that keep the rendered environment concretizable
# anywhere (`petal seed check`): the bootstrap replaces them with the versions it finds
# on the builder (bootstrap_helper.py set-externals) before it concretizes.
SLURM_PREFIX: Final = "/opt/slurm"
EFA_PREFIX: Final = "/opt/amazon/efa"
SYSTEM_EXTERNALS: Final = {
    "slurm": {"version": "24.11.5", "prefix": SLURM_PREFIX, "variants": ""},
    "libfabric": {"version": "1.22.0", "prefix": EFA_PREFIX, "variants": "fabrics=efa"},
}
# What each MPI of MPI_PACKAGES is built with. Each was concretized with the real Spack
# (tests/spack); another MPI is refused by `petal seed validate` when the seed names it
# (petal.seed.spack_packages) and reported by `petal seed check` when it is in the DAG.
MPI_REQUIREMENTS: Final = {
    "openmpi": ["schedulers=slurm", "fabrics=ofi"],
    "mpich": ["+slurm", "netmod=ofi"],
    # Intel's binary: its mpirun finds the Slurm allocation itself (Hydra's Slurm
    # bootstrap); +external-libfabric makes it use EFA's libfabric instead of its own.
    "intel-oneapi-mpi": ["+external-libfabric"],
}
# Without them, `mpirun` of a Slurm-enabled Open MPI is a stub telling users to use srun.
MPI_PREFERENCES: Final = {"openmpi": ["+legacylaunchers"]}
# The MPI of a seed that names none (Spack's own default provider).
DEFAULT_MPI: Final = "openmpi"


def compiler_spec(compiler: str, *, exact: bool = False) -> str:
    """The compiler a seed's compiler package provides, as `%` names it:
    `llvm@17.0.6` -> `clang@17.0.6` (`clang@=17.0.6` when exact)."""
    node = parse_spec(compiler).root
    name = COMPILER_OF_PACKAGE.get(node.name, node.name)
    if not node.versions:
        return name
    return f"{name}@{exact_versions(node.versions) if exact else node.versions}"


def asks_for_python(specs: list[Spec]) -> bool:
    return any(spec.name == "python" or spec.name.startswith("py-") for spec in specs)


def _requirements(seed: Seed) -> list[Any]:
    """What every package must satisfy: the seed's compiler and the portable target."""
    requirements: list[Any] = []
    compilers = ["%" + compiler_spec(c, exact=True) for c in seed.software.compilers]
    if len(compilers) == 1:
        requirements.append(compilers[0])
    elif compilers:
        # The first is the default; a package may name another with `%`.
        requirements.append({"one_of": compilers})
    requirements.append(f"target={PORTABLE_TARGETS[seed.architecture]}")
    return requirements


def seed_mpis(specs: list[Spec]) -> list[str]:
    """The MPI implementations a seed names (as a package or a `^dependency`), in order."""
    named = (node.name for spec in specs for node in spec.nodes())
    return list(dict.fromkeys(name for name in named if name in MPI_REQUIREMENTS))


def _mpi_requirement(specs: list[Spec]) -> list[Any]:
    """Which MPI every package that needs one uses: the one the seed names (one of them,
    the first the default, when it names several), else DEFAULT_MPI. A requirement on
    the virtual, so Spack never picks an MPI petal does not wire (mvapich2, say), and
    never a second one for a package of the same stack."""
    named = seed_mpis(specs) or [DEFAULT_MPI]
    return [named[0]] if len(named) == 1 else [{"one_of": named}]


def _package_settings(seed: Seed, specs: list[Spec]) -> dict[str, Any]:
    requirements = _requirements(seed)
    packages: dict[str, Any] = {"all": {"require": requirements}}
    # Always, not only when the seed names an MPI: MPI also arrives through packages'
    # default variants (py-torch +distributed, valgrind +mpi, hdf5 +mpi). A package's
    # settings apply only when it is in the DAG: a stack without MPI solves the same.
    for name, external in SYSTEM_EXTERNALS.items():
        spec = f"{name}@={external['version']} {external['variants']}".strip()
        packages[name] = {
            "buildable": False,
            "externals": [{"spec": spec, "prefix": external["prefix"]}],
        }
    packages["mpi"] = {"require": _mpi_requirement(specs)}
    for name, mpi_requirements in MPI_REQUIREMENTS.items():
        # A package's own `require` replaces the one of `all`: repeat the compiler's.
        packages[name] = {"require": [*mpi_requirements, *requirements]}
        if name in MPI_PREFERENCES:
            packages[name]["prefer"] = list(MPI_PREFERENCES[name])
    return packages


def _module_set(seed: Seed, specs: list[Spec]) -> dict[str, Any]:
    software = seed.software
    system = software.modules
    settings: dict[str, Any] = {
        "hash_length": 0,
        "hide_implicits": True,
        "all": {"autoload": "direct"},
    }
    if not asks_for_python(specs):
        # A tool that runs on Spack's python would autoload its module and replace the
        # user's python3; without a module it keeps running on its own (RPATH, shebang).
        settings["exclude"] = ["python"]
    if system == "lmod":
        # The bootstrap adds the builder's system compiler too, so the compiler modules
        # themselves land in the Core tree.
        settings["core_compilers"] = [compiler_spec(c) for c in software.compilers]
        settings["hierarchy"] = ["mpi"]
    else:
        settings["projections"] = {"all": "{name}/{version}-{compiler.name}"}
    return {"enable": [system], "roots": {system: MODULE_ROOTS[system]}, system: settings}


def spack_environment(seed: Seed) -> dict[str, Any]:
    software = seed.software
    specs = [parse_spec(p) for p in software.packages]
    if software.modules == "lmod" and "lmod" not in {s.name for s in specs}:
        # ParallelCluster nodes ship environment-modules; Lmod module files need Lmod,
        # so the software volume carries its own (profile.sh puts it on every node).
        specs.append(parse_spec("lmod"))
    packages = list(dict.fromkeys(spec.spack_form() for spec in specs))
    compilers = [parse_spec(c).spack_form() for c in software.compilers]
    return {
        "spack": {
            # The compilers are a definition, not root specs: the bootstrap installs and
            # registers them before the environment, whose packages all require them,
            # is concretized (a compiler cannot be built with itself).
            "definitions": [{"compilers": compilers}, {"packages": packages}],
            "specs": ["$packages"],
            "view": False,
            # true: one version of each package, or an error before anything is built.
            "concretizer": {"unify": True, "reuse": True},
            "packages": _package_settings(seed, specs),
            "mirrors": {m.name: m.url for m in software.effective_mirrors},
            "config": {
                "install_tree": {"root": INSTALL_ROOT},
                "build_stage": [BUILD_STAGE],
                "source_cache": SOURCE_CACHE,
            },
            "modules": {"default": _module_set(seed, specs)},
        }
    }


def render_spack_yaml(seed: Seed, fingerprint: str) -> str:
    header = (
        f"# Spack environment rendered by petal from seed '{seed.name}'\n"
        f"# fingerprint: {fingerprint}\n"
        f"# variant: {seed.os} {seed.architecture}\n"
    )
    import yaml  # here: a handler importing this module pays for PyYAML only if it renders

    body = yaml.safe_dump(spack_environment(seed), sort_keys=False, default_flow_style=False)
    return header + body
