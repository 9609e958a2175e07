"""Run ssm_documents/bootstrap.sh on a fake host: fake commands first on PATH, a fake
/dev/disk/by-id tree and PETAL_ROOT_PREFIX, so nothing outside tmp_path is touched.

Shared by tests/unit/test_bootstrap_script.py and tests/unit/test_build_log_markers.py
(the fake `spack`, fake_spack.py) and tests/spack/test_bootstrap_real_spack.py
(make_real_spack_host: the real Spack, offline).
"""

from __future__ import annotations

import base64
import copy
import json
import secrets
import shlex
import shutil
import stat
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from petal.build.log_markers import sign_line
from petal.deployment_contract import MAC_FIELD

if TYPE_CHECKING:
    from petal.seed.spack_check import Spack

DATA = Path(__file__).resolve().parent
REPO = DATA.parents[2]
SCRIPT = REPO / "ssm_documents" / "bootstrap.sh"

VOLUME_ID = "vol-0123456789abcdef0"
SERIAL = "vol0123456789abcdef0"
BUILD_ID = "build-20250101-abc123"
FINGERPRINT = "sha256:" + "ab" * 32
# The build's log key: bytes that XOR to 0 with HMAC's pads (0x36, 0x5c), a NUL and 0xff,
# the edge cases of bootstrap.sh's hand-made HMAC.
LOG_KEY = ("365c00ff" * 4) + secrets.token_hex(16)
SPACK_VERSION = "v0.23.0"
MANIFEST_URL = f"s3://petal-seeds-test/manifests/{BUILD_ID}.json"
CACHE_URL = "s3://petal-cache-test/build-cache"
SIGNING_KEY_SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:petal/cache-key-AbCdEf"
IMAGE_ID = "ami-0123456789abcdef0"
# Root specs of tests/data/bootstrap/spack.yaml, in the order of the fake's spack.lock
# (sorted: Spack's own order is no order, see fake_spack.py), which the bootstrap follows.
ROOT_SPECS = ["bwa@=0.7.17", "lmod", "openmpi@=4.1.6 fabrics=ofi", "samtools@=1.17"]
# What a ParallelCluster image has: Slurm's header and EFA's fi_info (see add_system_software).
SLURM_VERSION = "23.11.10"
LIBFABRIC_VERSION = "1.22.0"
STEPS = [
    "device",
    "format",
    "mount",
    "prerequisites",
    "spack",
    "cache",
    "mirrors",
    "compilers",
    "environment",
    "concretize",
    "install",
    "push",
    "prune",
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
        "PETAL_LOG_KEY": LOG_KEY,
        "PETAL_FINGERPRINT": FINGERPRINT,
        "PETAL_HEARTBEAT_SECONDS": "300",
        "PETAL_PARENT_SNAPSHOT": "",
        "PETAL_MANIFEST_URL": MANIFEST_URL,
        # No build cache unless a test enables it (enable_build_cache).
        "PETAL_BUILD_CACHE_URL": "",
        "PETAL_SIGNING_KEY_SECRET": "",
        # test-only overrides
        "PETAL_DEVICE_WAIT_SECONDS": "5",
        "PETAL_DISK_BY_ID_DIR": str(host.by_id),
        "PETAL_OS_RELEASE": str(DATA / os_release),
        "PETAL_ROOT_PREFIX": str(host.root),
        "PETAL_INSTANCE_IDENTITY": str(DATA / "instance-identity.json"),
        # the fakes
        "FAKE_LOG": str(host.log),
        "FAKE_LSBLK_SERIAL": SERIAL,
        "FAKE_STATE_DIR": str(tmp_path / "state"),
        "FAKE_SPACK_ROOT": str(host.shared / "spack"),
        "FAKE_SPACK_PYTHONPATH": str(DATA / "spack_python"),
        "FAKE_AWS_DIR": str(tmp_path / "aws"),
    }
    (tmp_path / "aws" / "secrets").mkdir(parents=True)
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


def verified(line: str, key: str = LOG_KEY) -> str:
    """The text of a marker line the bootstrap printed, after checking that its tag is
    what petal computes for it (petal.build.log_markers)."""
    text, found, _ = line.rpartition(f" {MAC_FIELD}=")
    assert found, f"not tagged: {line!r}"
    assert sign_line(key, BUILD_ID, text) == line, f"its tag does not verify: {line!r}"
    return text


def marker_lines(stdout: str, *, heartbeats: bool = False) -> list[str]:
    """The texts of the PETAL-* lines of an output (without heartbeats unless asked),
    each of whose tags verifies."""
    return [
        verified(line)
        for line in stdout.splitlines()
        if line.startswith("PETAL-") and (heartbeats or not line.startswith("PETAL-HEARTBEAT"))
    ]


def enable_build_cache(host: FakeHost, secret_value: str = "no key yet") -> None:
    """Give the bootstrap petal:buildCache: the cache URL and its key's secret, as
    CloudFormation created it (holding no key)."""
    host.env["PETAL_BUILD_CACHE_URL"] = CACHE_URL
    host.env["PETAL_SIGNING_KEY_SECRET"] = SIGNING_KEY_SECRET
    name = SIGNING_KEY_SECRET.replace("/", "_").replace(":", "_")
    state = {"versions": {"cloudformation": secret_value}, "current": "cloudformation"}
    (host.tmp / "aws" / "secrets" / name).write_text(json.dumps(state))


# --- the real Spack ------------------------------------------------------------------------


def make_real_spack_host(tmp_path: Path, spack: Spack, environment: dict[str, Any]) -> FakeHost:
    """A fake builder whose `spack` is the real one (`spack`: the release, extracted by
    petal.seed.spack_check.prepare), building `environment` (as
    petal.seed.spack_environment renders it) offline.

    Only what cannot run here stays fake: the block device, mkfs and mount, dnf, the
    network (git clone copies the release; an empty local mirror for the seed's; S3 and
    Secrets Manager through the fake boto3) and the instance metadata. The clone's
    bin/spack runs real_spack.py (test only): the real Spack, with `install --fake` and
    concretizations kept."""
    host = make_host(tmp_path)
    (host.bin / "spack").unlink()  # no fake: every `spack` is the clone's
    release = tmp_path / "spack-release"
    # cp -a keeps the files' times: Spack's package index in its user cache stays valid.
    subprocess.run(["cp", "-a", str(spack.root), str(release)], check=True)
    (release / "bin" / "spack").rename(release / "bin" / "spack.real")
    wrapper = release / "bin" / "spack"
    wrapper.write_text(
        "#!/bin/sh\n"
        "# TEST ONLY (tests/data/bootstrap/harness.py): the real Spack, see real_spack.py.\n"
        f"SPACK_PYTHON={shlex.quote(str(spack.python))}\n"
        f"SPACK_USER_CACHE_PATH={shlex.quote(str(spack.home / 'user-cache'))}\n"
        f"REAL_SPACK_LOCKS={shlex.quote(str(spack.home / 'bootstrap-locks'))}\n"
        f"REAL_SPACK_KEY={shlex.quote(spack.key)}\n"
        f"REAL_SPACK_HOST={shlex.quote(str(tmp_path))}\n"
        "SPACK_COLOR=never\n"
        "export SPACK_PYTHON SPACK_USER_CACHE_PATH REAL_SPACK_LOCKS REAL_SPACK_KEY "
        "REAL_SPACK_HOST SPACK_COLOR\n"
        f"exec {shlex.quote(sys.executable)} {shlex.quote(str(DATA / 'real_spack.py'))} "
        '"$(dirname -- "$0")/spack.real" "$@"\n'
    )
    wrapper.chmod(stat.S_IRWXU | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)
    # Spack's site scope of the clone: the solver is the venv's clingo, nothing to download.
    (release / "etc" / "spack" / "bootstrap.yaml").write_text("bootstrap:\n  enable: false\n")
    # `spack python` (the helper) finds the fake boto3, and only it, of spack_python/.
    aws = tmp_path / "aws-python"
    aws.mkdir()
    for package in ("boto3", "botocore"):
        (aws / package).symlink_to(DATA / "spack_python" / package)
    offline = offline_spack_yaml(environment, host)
    host.env.update(
        PETAL_SPACK_YAML_BASE64=base64.b64encode(offline.encode()).decode(),
        FAKE_GIT_CLONE_FROM=str(release),
        PYTHONPATH=str(aws),
    )
    return host


def offline_spack_yaml(environment: dict[str, Any], host: FakeHost) -> str:
    """The rendered environment, changed only where this machine is no builder: an
    empty local binary mirror for the seed's (offline); the install tree and module roots
    (/shared/...) under the host's PETAL_ROOT_PREFIX, where the script reads them; stage
    and source cache in its tmp."""
    spack = copy.deepcopy(environment["spack"])
    (host.tmp / "mirror").mkdir()
    spack["mirrors"] = {"offline": f"file://{host.tmp / 'mirror'}"}
    config = spack["config"]
    config["install_tree"] = {"root": f"{host.root}{config['install_tree']['root']}"}
    config["build_stage"] = [str(host.tmp / "stage")]
    config["source_cache"] = str(host.tmp / "source-cache")
    for module_set in spack.get("modules", {}).values():
        roots = module_set.get("roots", {})
        module_set["roots"] = {system: f"{host.root}{root}" for system, root in roots.items()}
    return yaml.safe_dump({"spack": spack}, sort_keys=False)
