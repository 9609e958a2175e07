"""The Spack environment (spack.yaml) a build installs onto the software volume.

One environment concretized together is how Spack wants software built: dependencies
are shared, and `spack install` builds them in parallel. The bootstrap installs the
seed's compilers first (they must exist before packages can be concretized with them),
then concretizes and installs this environment.
"""

from __future__ import annotations

from typing import Any, Final

import yaml

from petal.deployment_contract import SPACK_ROOT
from petal.seed.model import Seed
from petal.seed.spack_spec import parse_spec

# Generic targets, so software built on the builder's CPU runs on every compute
# instance type of the architecture (the default would be the builder's own
# microarchitecture, e.g. znver3 on c6a, and crash with illegal instructions on c6i).
PORTABLE_TARGETS: Final = {"x86_64": "x86_64_v3", "arm64": "neoverse_n1"}
INSTALL_ROOT: Final = f"{SPACK_ROOT}/opt/spack"
MODULE_ROOTS: Final = {
    "lmod": f"{SPACK_ROOT}/share/spack/lmod",
    "tcl": f"{SPACK_ROOT}/share/spack/modules",
}


def spack_environment(seed: Seed) -> dict[str, Any]:
    software = seed.software
    packages = list(software.packages)
    if software.modules == "lmod" and "lmod" not in {parse_spec(p).name for p in packages}:
        # ParallelCluster nodes ship environment-modules; Lmod module files need Lmod,
        # so the software volume carries its own (profile.sh puts it on every node).
        packages.append("lmod")
    module_set: dict[str, Any] = {
        "enable": [software.modules],
        "roots": {software.modules: MODULE_ROOTS[software.modules]},
        software.modules: {
            "hash_length": 0,
            "hide_implicits": True,
            "all": {"autoload": "direct"},
        },
    }
    if software.modules == "lmod":
        # The bootstrap adds the builder's system compiler too, so the compiler modules
        # themselves land in the Core tree.
        module_set["lmod"]["core_compilers"] = list(software.compilers)
        module_set["lmod"]["hierarchy"] = ["mpi"]
    else:
        module_set["tcl"]["projections"] = {"all": "{name}/{version}-{compiler.name}"}
    all_packages: dict[str, Any] = {"target": [PORTABLE_TARGETS[seed.architecture]]}
    if software.compilers:
        all_packages["compiler"] = list(software.compilers)
    return {
        "spack": {
            "definitions": [
                {"compilers": list(software.compilers)},
                {"packages": packages},
            ],
            "specs": ["$compilers", "$packages"] if software.compilers else ["$packages"],
            "view": False,
            "concretizer": {"unify": "when_possible", "reuse": True},
            "packages": {"all": all_packages},
            "mirrors": {m.name: m.url for m in software.effective_mirrors},
            "config": {
                "install_tree": {"root": INSTALL_ROOT},
                # Stage and source cache stay on the builder's root disk, out of the
                # snapshot.
                "build_stage": ["$tempdir/$user/spack-stage"],
                "source_cache": "/var/tmp/spack-source-cache",  # noqa: S108 - root-only builder
            },
            "modules": {"default": module_set},
        }
    }


def render_spack_yaml(seed: Seed, fingerprint: str) -> str:
    header = (
        f"# Spack environment rendered by petal from seed '{seed.name}'\n"
        f"# fingerprint: {fingerprint}\n"
        f"# variant: {seed.os} {seed.architecture}\n"
    )
    body = yaml.safe_dump(spack_environment(seed), sort_keys=False, default_flow_style=False)
    return header + body
