"""Run ssm_documents/bootstrap.sh on a fake host: fake commands first on PATH, a fake
/dev/disk/by-id tree and PETAL_ROOT_PREFIX, so nothing outside tmp_path is touched.

Shared by tests/unit/test_bootstrap_script.py and tests/unit/test_build_log_markers.py.
"""

from __future__ import annotations

import base64
import shutil
import stat
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

DATA = Path(__file__).resolve().parent
REPO = DATA.parents[2]
SCRIPT = REPO / "ssm_documents" / "bootstrap.sh"

VOLUME_ID = "vol-0123456789abcdef0"
SERIAL = "vol0123456789abcdef0"
BUILD_ID = "build-20250101-abc123"
FINGERPRINT = "sha256:" + "ab" * 32
SPACK_VERSION = "v0.23.0"
# Root specs of tests/data/bootstrap/spack.yaml, in order.
ROOT_SPECS = ["samtools@=1.17", "bwa@=0.7.17", "openmpi@=4.1.6 fabrics=ofi", "lmod"]
# What a ParallelCluster image has: Slurm's header and EFA's fi_info (see add_system_software).
SLURM_VERSION = "23.11.10"
LIBFABRIC_VERSION = "1.22.0"
STEPS = [
    "device",
    "format",
    "mount",
    "prerequisites",
    "spack",
    "mirrors",
    "compilers",
    "environment",
    "concretize",
    "install",
    "modules",
    "profile",
    "manifest",
    "unmount",
    "done",
]


@dataclass
class FakeHost:
    """A builder instance made of a temporary directory."""

    tmp: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def bin(self) -> Path:
        return self.tmp / "bin"

    @property
    def root(self) -> Path:
        """PETAL_ROOT_PREFIX: /shared of the fake host is root / "shared"."""
        return self.tmp / "root"

    @property
    def by_id(self) -> Path:
        return self.tmp / "dev" / "disk" / "by-id"

    @property
    def device(self) -> Path:
        return self.tmp / "dev" / "nvme1n1"

    @property
    def link(self) -> Path:
        return self.by_id / f"nvme-Amazon_Elastic_Block_Store_{SERIAL}"

    @property
    def shared(self) -> Path:
        return self.root / "shared"

    @property
    def log(self) -> Path:
        return self.tmp / "calls.log"

    def calls(self, command: str | None = None) -> list[str]:
        """Calls of the fake commands, in order ("mkfs.ext4 -q -L ..."); of one command if given."""
        lines = self.log.read_text().splitlines() if self.log.exists() else []
        if command is None:
            return lines
        return [line for line in lines if line.split(" ", 1)[0] == command]

    def attach(self) -> None:
        """Attach the volume: its device and by-id link appear."""
        self.device.parent.mkdir(parents=True, exist_ok=True)
        self.device.touch()
        self.by_id.mkdir(parents=True, exist_ok=True)
        if not self.link.is_symlink():
            self.link.symlink_to(Path("../..") / self.device.name)

    def run(
        self, command: list[str] | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """Run the bootstrap (or `command`) on the host."""
        return subprocess.run(
            command or ["bash", str(SCRIPT)],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.tmp,
            check=False,
        )

    def run_function(self, body: str) -> subprocess.CompletedProcess[str]:
        """Source the script (which then only defines functions) and run bash code."""
        code = f'set -Eeuo pipefail; source "$1"; init_settings; {body}'
        return self.run(["bash", "-c", code, "bash", str(SCRIPT)])


def make_host(
    tmp_path: Path,
    *,
    spack_yaml: str = "spack.yaml",
    os_release: str = "os-release-amzn",
    attach: bool = True,
) -> FakeHost:
    """A fake builder with the volume attached (unless attach=False) and blank."""
    host = FakeHost(tmp_path)
    host.bin.mkdir()
    for fake in (DATA / "bin").iterdir():
        target = host.bin / fake.name
        shutil.copyfile(fake, target)
        target.chmod(stat.S_IRWXU)
    spack = host.bin / "spack"
    spack.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{DATA / "fake_spack.py"}" "$@"\n')
    spack.chmod(stat.S_IRWXU)
    for directory in ("home", "tmp", "state", "root"):
        (tmp_path / directory).mkdir()
    if attach:
        host.attach()
    add_system_software(host.root)
    spack_yaml_text = (DATA / spack_yaml).read_text()
    host.env = {
        "PATH": f"{host.bin}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(tmp_path / "home"),
        "TMPDIR": str(tmp_path / "tmp"),
        "LANG": "C.UTF-8",
        # the document's parameters
        "PETAL_VOLUME_ID": VOLUME_ID,
        "PETAL_MOUNT_DIR": "/shared",
        "PETAL_SPACK_VERSION": SPACK_VERSION,
        "PETAL_SPACK_YAML_BASE64": base64.b64encode(spack_yaml_text.encode()).decode(),
        "PETAL_BUILD_ID": BUILD_ID,
        "PETAL_FINGERPRINT": FINGERPRINT,
        "PETAL_HEARTBEAT_SECONDS": "300",
        # test-only overrides
        "PETAL_DEVICE_WAIT_SECONDS": "5",
        "PETAL_DISK_BY_ID_DIR": str(host.by_id),
        "PETAL_OS_RELEASE": str(DATA / os_release),
        "PETAL_ROOT_PREFIX": str(host.root),
        # the fakes
        "FAKE_LOG": str(host.log),
        "FAKE_LSBLK_SERIAL": SERIAL,
        "FAKE_STATE_DIR": str(tmp_path / "state"),
        "FAKE_SPACK_ROOT": str(host.shared / "spack"),
        "FAKE_SPACK_PYTHONPATH": str(DATA / "spack_python"),
    }
    return host


def add_system_software(root: Path) -> None:
    """/opt/slurm and /opt/amazon/efa of a ParallelCluster image, as far as the bootstrap
    reads them."""
    header = root / "opt/slurm/include/slurm/slurm_version.h"
    header.parent.mkdir(parents=True)
    header.write_text(
        f'#define SLURM_VERSION_NUMBER 0x170b0a\n#define SLURM_VERSION_STRING "{SLURM_VERSION}"\n'
    )
    fi_info = root / "opt/amazon/efa/bin/fi_info"
    fi_info.parent.mkdir(parents=True)
    fi_info.write_text(
        "#!/bin/sh\n"
        f"printf 'fi_info: {LIBFABRIC_VERSION}amzn4.0\\nlibfabric: {LIBFABRIC_VERSION}amzn4.0\\n"
        "libfabric api: 1.22\\n'\n"
    )
    fi_info.chmod(stat.S_IRWXU)


def marker_lines(stdout: str, *, heartbeats: bool = False) -> list[str]:
    """The PETAL-* lines of an output (without heartbeats unless asked)."""
    return [
        line
        for line in stdout.splitlines()
        if line.startswith("PETAL-") and (heartbeats or not line.startswith("PETAL-HEARTBEAT"))
    ]
