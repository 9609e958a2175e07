"""The seed: a YAML file that says which software a volume holds, and how to build it.

These are the seed's types; petal.seed.loading reads and validates a seed file (or the
inline mapping of a build request) into a `Seed`, or raises `SeedError` listing every
problem with its line, field path and what is allowed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Final, Literal

from petal.errors import EXIT_INVALID, PetalError
from petal.platforms import Architecture
from petal.validation import Problem

# Packages that Spack can install and then register as compilers.
COMPILER_PACKAGES = frozenset(
    {"gcc", "llvm", "aocc", "nvhpc", "intel-oneapi-compilers", "intel-oneapi-compilers-classic"}
)
# The MPI implementations petal builds for Slurm and EFA (petal.seed.spack_environment,
# MPI_REQUIREMENTS, says how); a seed naming another MPI is refused.
MPI_PACKAGES = ("openmpi", "mpich", "intel-oneapi-mpi")
OFFICIAL_BUILDCACHE_URL = "https://binaries.spack.io/releases/{series}"
GP3_MIBPS_PER_IOPS = 0.25
# The one size limit of a seed, in bytes: of the file (`petal seed validate`, the S3
# intake, Prepare reading seed_uri) and of the seed as JSON (how `petal build` sends it
# inline in the execution input, which Step Functions caps at 256 KiB; the rest leaves room
# for the request's other fields). A seed that validates therefore fits everywhere.
# 500 packages of 200 characters are 100 KiB: only comments or aliases get near it.
MAX_SEED_BYTES: Final = 192 * 1024
STEP_FUNCTIONS_INPUT_BYTES: Final = 256 * 1024
MAX_PACKAGES: Final = 500  # the schema's software.packages maxItems


class SeedError(ValueError, PetalError):
    """A seed that cannot be used; `problems` holds every error (and warning) found."""

    exit_code = EXIT_INVALID
    is_report = True

    def __init__(self, source: str, problems: list[Problem]) -> None:
        self.source = source
        self.problems = problems
        super().__init__("\n".join(p.format(source) for p in problems))

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]


@dataclass(frozen=True)
class Mirror:
    name: str
    url: str


@dataclass(frozen=True)
class Software:
    spack_version: str
    compilers: tuple[str, ...]
    packages: tuple[str, ...]
    mirrors: tuple[Mirror, ...]
    official_buildcache: bool
    modules: Literal["lmod", "tcl"]

    @property
    def official_mirror(self) -> Mirror | None:
        if not self.official_buildcache:
            return None
        series = ".".join(self.spack_version.split(".")[:2])
        return Mirror(f"spack-{series}", OFFICIAL_BUILDCACHE_URL.format(series=series))

    @property
    def effective_mirrors(self) -> tuple[Mirror, ...]:
        """The seed's own mirrors first (Spack tries mirrors in order), then the official."""
        official = self.official_mirror
        return (*self.mirrors, official) if official else self.mirrors


@dataclass(frozen=True)
class Volume:
    size_gb: int
    type: str
    iops: int
    throughput: int
    encrypted: bool
    kms_key_id: str | None


@dataclass(frozen=True)
class Build:
    instance_type: str
    timeout_minutes: int
    parallelcluster_version: str
    # A user-built ParallelCluster AMI the builder boots; None: the official AMI.
    image: str | None = None


@dataclass(frozen=True)
class HeadNode:
    instance_type: str
    subnet_id: str | None


@dataclass(frozen=True)
class Queue:
    name: str
    instance_type: str
    min_count: int
    max_count: int
    subnet_ids: tuple[str, ...]


@dataclass(frozen=True)
class Cluster:
    region: str | None
    key_name: str | None
    head_node: HeadNode
    queues: tuple[Queue, ...]


@dataclass(frozen=True)
class Seed:
    name: str
    description: str
    software: Software
    os: str
    architecture: Architecture
    volume: Volume
    build: Build
    cluster: Cluster
    warnings: tuple[Problem, ...] = field(default=(), compare=False)

    def to_document(self) -> dict[str, Any]:
        """The seed as a plain mapping, defaults filled in; `parse_seed_mapping` reads it."""
        document = asdict(self)
        del document["warnings"]
        for queue in document["cluster"]["queues"]:
            if not queue["subnet_ids"]:
                del queue["subnet_ids"]  # absent means "the head node's subnet"
        return dict(_drop_none(document))


def _drop_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_drop_none(v) for v in value]
    return value
