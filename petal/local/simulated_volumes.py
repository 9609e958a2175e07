"""What the SIMULATED builder keeps on the software volumes it "builds", and how long
each package takes, so that an incremental build (`petal build --from`) on the emulator
installs only what its parent lacks, removes what the seed no longer names, and takes
the time that saves.

The simulated builder knows a stack by the root specs of the rendered spack.yaml (it
runs no Spack, so it has no dependency graph). A root stands for a package and
everything it alone pulls in; its identity is its spec with the requirements that
change what Spack would build: `packages: all: require` (the seed's compiler and target)
and the package's own `require`. So a compiler change is a change of every package, as
with Spack, where a package's hash includes its compiler; a dependency shared by two
roots is not modelled (tests/spack/test_incremental.py shows Spack's own behaviour).

Where the durations come from: a seed's size is its compilers and packages. A fresh
build's install step (80% of `SimulatedInstall.minutes`, as before) is shared among the
roots by weight: a compiler counts COMPILER_WEIGHT packages, because building GCC from
source (its bootstrap, three stages) is the long pole of a stack, several times an
ordinary package such as samtools or bwa. The weight is this module's assumption, not a
measurement; a root on the volume already costs nothing. The data a root writes (and an
incremental snapshot stores, EBS keeping only changed blocks) is modelled the same way:
proportional to its weight.
"""

from __future__ import annotations

import base64
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import yaml

# A compiler's install, in packages (see the module's docstring).
COMPILER_WEIGHT: Final = 5
PACKAGE_WEIGHT: Final = 1

# The line the simulated builder ends its install report with (parsed by
# `install_report`): what it installed, what the volume had already, what it removed.
REPORT_PREFIX: Final = "petal local mode: install report:"
_REPORT: Final = re.compile(
    rf"^{re.escape(REPORT_PREFIX)} installed (?P<installed>\d+) of (?P<total>\d+) root specs, "
    r"kept (?P<kept>\d+) from the parent, removed (?P<removed>\d+); "
    r"install (?P<minutes>[0-9.]+) of (?P<fresh>[0-9.]+) min, "
    r"written (?P<written>\d+) of (?P<units>\d+) units$"
)


@dataclass(frozen=True)
class Package:
    spec: str  # the root spec as spack.yaml lists it
    identity: str  # spec + the requirements that make it another build
    weight: int


@dataclass(frozen=True)
class InstallPlan:
    """One simulated bootstrap's install: the stack's packages, and what the volume
    already holds."""

    packages: tuple[Package, ...]
    on_volume: frozenset[str]  # identities the volume held when the build began

    def installs(self, package: Package) -> bool:
        return package.identity not in self.on_volume

    @property
    def removed(self) -> list[str]:
        """What the volume held that this stack does not name (the prune step's)."""
        wanted = {p.identity for p in self.packages}
        return sorted(self.on_volume - wanted)

    @property
    def identities(self) -> frozenset[str]:
        return frozenset(p.identity for p in self.packages)

    @property
    def total_weight(self) -> int:
        return sum(p.weight for p in self.packages) or 1

    def share(self, package: Package) -> float:
        """The package's share of a fresh build's install time."""
        return package.weight / self.total_weight

    def report(self, fresh_install_minutes: float) -> str:
        installed = [p for p in self.packages if self.installs(p)]
        written = sum(p.weight for p in installed)
        minutes = fresh_install_minutes * written / self.total_weight
        return (
            f"{REPORT_PREFIX} installed {len(installed)} of {len(self.packages)} root specs, "
            f"kept {len(self.packages) - len(installed)} from the parent, removed "
            f"{len(self.removed)}; install {minutes:.1f} of {fresh_install_minutes:.1f} min, "
            f"written {written} of {self.total_weight} units"
        )


@dataclass(frozen=True)
class InstallReport:
    """The report line, read back (benchmarks/incremental.py, the workflow tests)."""

    installed: int
    total: int
    kept: int
    removed: int
    install_minutes: float
    fresh_install_minutes: float
    written_units: int
    total_units: int


def install_report(lines: Sequence[str]) -> InstallReport | None:
    """The last install report among a build log's lines, if any."""
    for line in reversed(lines):
        match = _REPORT.match(line.strip())
        if match:
            return InstallReport(
                installed=int(match["installed"]),
                total=int(match["total"]),
                kept=int(match["kept"]),
                removed=int(match["removed"]),
                install_minutes=float(match["minutes"]),
                fresh_install_minutes=float(match["fresh"]),
                written_units=int(match["written"]),
                total_units=int(match["units"]),
            )
    return None


def packages_of(spack_yaml_base64: str) -> tuple[Package, ...]:
    """The rendered environment's root specs, in the order the bootstrap installs them
    (compilers first), with their identities and weights; none if it is unreadable."""
    try:
        document = yaml.safe_load(base64.b64decode(spack_yaml_base64))
        env = document["spack"]
        definitions = env["definitions"]
    except (ValueError, TypeError, KeyError, yaml.YAMLError):
        return ()
    settings = env.get("packages") or {}
    common = _requirements(settings.get("all"))
    packages: list[Package] = []
    for definition in definitions:
        for name, values in definition.items():
            compiler = name == "compilers"
            for value in values or ():
                spec = str(value)
                own = _requirements(settings.get(_package_name(spec)))
                # A compiler is built with the system compiler: only the target applies.
                applied = [r for r in common if not (compiler and r.startswith("%"))]
                packages.append(
                    Package(
                        spec=spec,
                        identity=" ".join([spec, *applied, *own]),
                        weight=COMPILER_WEIGHT if compiler else PACKAGE_WEIGHT,
                    )
                )
    return tuple(packages)


def _requirements(settings: Any) -> list[str]:
    if not isinstance(settings, Mapping):
        return []
    require = settings.get("require") or []
    return [str(r) for r in (require if isinstance(require, list) else [require])]


def _package_name(spec: str) -> str:
    return re.split(r"[@%+~\s^]", spec, maxsplit=1)[0]


class SimulatedVolumes:
    """What each simulated software volume holds (root identities), by volume id. A
    volume created from a snapshot starts with what the snapshot's volume held when it
    was snapshotted: moto keeps the volume a snapshot was taken of."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._contents: dict[str, frozenset[str]] = {}

    def at_start(self, ec2_backend: Any, volume_id: str) -> frozenset[str]:
        volume = ec2_backend.volumes.get(volume_id)
        snapshot_id = getattr(volume, "snapshot_id", None)
        if not snapshot_id:
            return frozenset()
        snapshot = ec2_backend.snapshots.get(snapshot_id)
        source = getattr(getattr(snapshot, "volume", None), "id", None)
        with self._lock:
            return self._contents.get(str(source), frozenset())

    def finished(self, volume_id: str, identities: frozenset[str]) -> None:
        with self._lock:
            self._contents[volume_id] = identities
