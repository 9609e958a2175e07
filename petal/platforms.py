"""Operating systems and CPU architectures: the one place their names are mapped.

ParallelCluster's names (``alinux2023``) are what seeds, configs and snapshot tags use;
the registry format uses short names (``al2023``); the official AMIs use a name part
(``amzn2023-hvm``). Nothing else in petal spells these out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal

Architecture = Literal["x86_64", "arm64"]
ARCHITECTURES: Final[tuple[Architecture, ...]] = ("x86_64", "arm64")


@dataclass(frozen=True)
class OperatingSystem:
    name: str  # ParallelCluster's Image.Os
    registry_name: str  # the registry format's short name
    ami_name_part: str  # aws-parallelcluster-<version>-<part>-<arch>*
    # False where AWS publishes no official ParallelCluster AMI (pcluster/constants.py
    # PRIVATE_OSES): the builder then boots a user-built image, and clusters need it
    # as Image.CustomAmi.
    official_ami: bool = True


OPERATING_SYSTEMS: Final[dict[str, OperatingSystem]] = {
    os.name: os
    for os in (
        OperatingSystem("alinux2023", "al2023", "amzn2023-hvm"),
        OperatingSystem("ubuntu2204", "ubuntu2204", "ubuntu-2204-lts-hvm"),
        OperatingSystem("ubuntu2404", "ubuntu2404", "ubuntu-2404-lts-hvm"),
        OperatingSystem("rhel8", "rhel8", "rhel8-hvm"),
        OperatingSystem("rocky8", "rocky8", "rocky8-hvm", official_ami=False),
        OperatingSystem("rhel9", "rhel9", "rhel9-hvm"),
        OperatingSystem("rocky9", "rocky9", "rocky9-hvm", official_ami=False),
    )
}
_BY_REGISTRY_NAME: Final = {os.registry_name: os for os in OPERATING_SYSTEMS.values()}


class UnknownOperatingSystem(ValueError):
    pass


def operating_system(name: str) -> OperatingSystem:
    """Look up an OS by its ParallelCluster name or its registry short name."""
    found = OPERATING_SYSTEMS.get(name) or _BY_REGISTRY_NAME.get(name)
    if found is None:
        allowed = ", ".join(OPERATING_SYSTEMS)
        raise UnknownOperatingSystem(f"unknown operating system {name!r}; use one of: {allowed}")
    return found


def needs_builder_image(os_name: str) -> bool:
    """Whether a build for this OS needs a builder image the user supplies."""
    found = OPERATING_SYSTEMS.get(os_name) or _BY_REGISTRY_NAME.get(os_name)
    return found is not None and not found.official_ami


def builder_image_advice(os_name: str) -> str:
    """Why an OS without an official AMI needs a builder image, and how to get one."""
    return (
        f"AWS publishes no official ParallelCluster AMI for {os_name} (ParallelCluster "
        "supports it only with a custom AMI): build one with `pcluster build-image` "
        f"(a {os_name} ParentImage), then set build.image: ami-... in the seed or pass "
        "`petal build --builder-ami ami-...`"
    )


def official_ami_name_pattern(pcluster_version: str, os_name: str, arch: Architecture) -> str:
    """The DescribeImages name filter ParallelCluster's own CLI uses for its AMIs."""
    part = operating_system(os_name).ami_name_part
    return f"aws-parallelcluster-{pcluster_version}-{part}-{arch}*"


DEFAULT_INSTANCE_TYPES: Final[dict[str, dict[Architecture, str]]] = {
    "builder": {"x86_64": "c6a.4xlarge", "arm64": "c7g.4xlarge"},
    "head_node": {"x86_64": "c6a.xlarge", "arm64": "c7g.xlarge"},
    "compute": {"x86_64": "c6a.8xlarge", "arm64": "c7g.8xlarge"},
}

_INSTANCE_TYPE = re.compile(r"^(?P<family>[a-z]+)(?P<generation>\d+)(?P<attrs>[a-z0-9-]*)\.(\w+)$")


def instance_architecture(instance_type: str) -> Architecture | None:
    """The CPU architecture of an EC2 instance type, None if it is not one.

    Graviton types carry a 'g' among the attributes after the generation (c7g, m6gd,
    c6gn, im4gn, x2gd, hpc7g, g5g) and the first Graviton family is a1; every other
    current family is x86_64. Mac instances are not offered by ParallelCluster.
    """
    match = _INSTANCE_TYPE.match(instance_type)
    if match is None or match.group("family") == "mac":
        return None
    if match.group("family") == "a" or "g" in match.group("attrs").split("-")[0]:
        return "arm64"
    return "x86_64"
