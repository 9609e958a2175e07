"""The node-setup script ParallelCluster runs on every node (OnNodeConfigured): it links
the volume's profile, checks the volume's manifest against the fingerprint the cluster
config passes as Args, logs, warns the node's users, and fails the boot only when strict.

The script runs against a fake volume (PETAL_DIR) and a fake node root (PETAL_ROOT_PREFIX,
for /etc and /var/log), never the machine's own. The login-shell tests then start real
bash, dash and tcsh login shells in a mount namespace whose /etc/profile.d and
/etc/csh/login.d are the node's: this machine's (Debian: Environment Modules installed,
as on ParallelCluster's images) plus what the script wrote. The stack's own Lmod is
Debian's lmod package, unpacked by `make node-shells` and relocated onto the fake volume
the way Spack installs it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from petal.cluster.config import NODE_SETUP_FINGERPRINT_ARG, NODE_SETUP_STRICT_ARG, generate_config
from petal.cluster.resolver_event import ResolverInputError, parse_event
from petal.cluster.settings import ClusterOverrides, ConfigError, cluster_settings
from petal.deployment_contract import PETAL_DIR
from petal.seed.loading import load_seed
from petal.user_config import config_from_environment
from stacks.paths import ASSETS_DIR

SCRIPT = ASSETS_DIR / "petal-node-setup.sh"
REPO = Path(__file__).resolve().parents[2]
BOOTSTRAP = REPO / "ssm_documents" / "bootstrap.sh"
LMOD_PACKAGE = Path(sys.prefix) / "node-shells" / "lmod"
FP = "sha256:" + "ab" * 32
OTHER = "sha256:" + "cd" * 32
SUBNET = "subnet-0123456789abcdef0"
NODE_SETUP = "s3://petal-seeds-123456789012/node-setup/petal-node-setup.sh"
WARNING = "petal: WARNING:"
SHELLS = ("bash", "dash", "tcsh")

pytestmark = pytest.mark.filterwarnings("ignore:The 'default' argument to fields:Warning")


@dataclass(frozen=True)
class Node:
    """A fake node: its software volume's petal directory and its root (/etc, /var/log)."""

    petal_dir: Path
    root: Path

    @property
    def log(self) -> Path:
        return self.root / "var/log/petal-node-setup.log"

    @property
    def profile_d(self) -> Path:
        return self.root / "etc/profile.d"

    @property
    def csh_login_d(self) -> Path:
        return self.root / "etc/csh/login.d"

    def env(self) -> dict[str, str]:
        # Both always set: the script must never touch this machine's /etc or /var/log.
        return {
            "PATH": "/usr/bin:/bin:/usr/sbin:/sbin",
            "PETAL_DIR": str(self.petal_dir),
            "PETAL_ROOT_PREFIX": str(self.root),
        }

    def run(self, *args: str, shell: str = "/bin/sh") -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [shell, str(SCRIPT), *args], env=self.env(), capture_output=True, text=True, timeout=30
        )

    def warnings(self) -> list[Path]:
        return sorted(p for p in self.root.rglob("petal-warning*"))


def make_node(tmp_path: Path, *, debian_csh: bool = True, volume: Path | None = None) -> Node:
    petal_dir = (volume or tmp_path / "shared") / "petal"
    petal_dir.mkdir(parents=True, exist_ok=True)
    for name in ("profile.sh", "profile.csh"):
        if not (petal_dir / name).exists():
            (petal_dir / name).write_text(":\n")
    root = tmp_path / "node"
    (root / "etc/profile.d").mkdir(parents=True)
    (root / "var/log").mkdir(parents=True)
    if debian_csh:
        (root / "etc/csh/login.d").mkdir(parents=True)
    return Node(petal_dir, root)


def write_manifest(node: Node, fingerprint: str = FP, build_id: str = "b-1234") -> Path:
    """As the bootstrap writes it (json.dump, indent=2, sorted keys), with nested objects
    that hold keys of the same names."""
    data = {
        "format": 2,
        "fingerprint": fingerprint,
        "build_id": build_id,
        "spack_lock": {"concrete_specs": {"h": {"name": "zlib", "fingerprint": OTHER}}},
        "install_sources": {"zlib": {"build_id": "nested"}},
        "root_specs": ['zlib "fingerprint": "' + OTHER + '"'],
    }
    path = node.petal_dir / "manifest.json"
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    return path


@pytest.fixture
def node(tmp_path: Path) -> Node:
    return make_node(tmp_path)


# --- what the config passes and the script reads -----------------------------------------


def test_defaults_are_the_contract_paths() -> None:
    text = SCRIPT.read_text()
    assert f'petal_dir="${{PETAL_DIR:-{PETAL_DIR}}}"' in text
    assert 'manifest="$petal_dir/manifest.json"' in text
    assert 'log_file="$root/var/log/petal-node-setup.log"' in text
    assert 'profile_d="$root/etc/profile.d"' in text


def test_the_script_takes_the_arguments_the_config_passes() -> None:
    text = SCRIPT.read_text()
    assert f"    {NODE_SETUP_FINGERPRINT_ARG})\n" in text
    assert f"    {NODE_SETUP_STRICT_ARG}) strict=1 ;;\n" in text


def settings(**overrides: Any) -> Any:
    seed = load_seed(REPO / "seeds/bioinformatics.yaml")
    values: dict[str, Any] = {"subnet_id": SUBNET, "node_setup_uri": NODE_SETUP, **overrides}
    return cluster_settings(seed, ClusterOverrides(**values), default_region="us-east-1")


def load_in_parallelcluster(config: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Any:
    from pcluster.schemas.cluster_schema import ClusterSchema

    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")  # the schema's defaults ask boto3
    return ClusterSchema(cluster_name="petal-test").load(config)


@pytest.mark.parametrize(
    ("strict", "args"),
    [(False, ["--fingerprint", FP]), (True, ["--fingerprint", FP, "--strict"])],
)
def test_every_node_gets_the_fingerprint_as_args(
    strict: bool, args: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = generate_config(
        settings(strict_node_check=strict), snapshot_id="snap-0123456789abcdef0",
        snapshot_size_gb=500, fingerprint=FP,
    )  # fmt: skip
    expected = {"OnNodeConfigured": {"Script": NODE_SETUP, "Args": args}}
    assert config["HeadNode"]["CustomActions"] == expected
    assert all(q["CustomActions"] == expected for q in config["Scheduling"]["SlurmQueues"])
    loaded = load_in_parallelcluster(config, monkeypatch)
    assert loaded.head_node.custom_actions.on_node_configured.args == args
    for queue in loaded.scheduling.queues:
        assert queue.custom_actions.on_node_configured.args == args


def test_strict_without_a_fingerprint_is_refused() -> None:
    with pytest.raises(ConfigError, match="strict_node_check: needs the software's fingerprint"):
        generate_config(
            settings(strict_node_check=True), snapshot_id="snap-0123456789abcdef0",
            snapshot_size_gb=500,
        )  # fmt: skip


def test_the_resolver_request_asks_for_strict_mode() -> None:
    event = {
        "fingerprint": FP,
        "region": "us-east-1",
        "strict_node_check": True,
        "overrides": {"subnet_id": SUBNET, "node_setup_uri": NODE_SETUP},
    }
    prepared = parse_event(event, config_from_environment({})).prepared
    assert prepared.settings.strict_node_check
    config = generate_config(
        prepared.settings, snapshot_id="snap-0123456789abcdef0", snapshot_size_gb=500,
        fingerprint=prepared.software.fingerprint,
    )  # fmt: skip
    assert config["HeadNode"]["CustomActions"]["OnNodeConfigured"]["Args"][-1] == "--strict"
    assert not parse_event(
        {**event, "strict_node_check": None}, config_from_environment({})
    ).prepared.settings.strict_node_check
    with pytest.raises(ResolverInputError, match="strict_node_check: must be true or false"):
        parse_event({**event, "strict_node_check": "yes"}, config_from_environment({}))


# --- the check ------------------------------------------------------------------------------


def test_a_matching_manifest_is_verified_and_logged(node: Node) -> None:
    write_manifest(node)
    result = node.run("--fingerprint", FP)
    assert result.returncode == 0, result.stderr
    log = node.log.read_text()
    assert f"verified: the software volume holds {FP} (build b-1234)" in log
    assert (node.profile_d / "petal.sh").resolve() == (node.petal_dir / "profile.sh").resolve()
    assert (node.csh_login_d / "petal").resolve() == (node.petal_dir / "profile.csh").resolve()
    assert node.warnings() == []
    # Run again (a node re-configured): harmless, logged again.
    assert node.run("--fingerprint", FP).returncode == 0
    assert node.log.read_text().count("verified:") == 2


def test_a_mismatching_manifest_warns_but_boots(node: Node) -> None:
    write_manifest(node, OTHER)
    result = node.run("--fingerprint", FP)
    assert result.returncode == 0, result.stderr
    log = node.log.read_text()
    assert f"NOT VERIFIED: the software volume holds {OTHER} (build b-1234), not {FP}" in log
    assert (node.profile_d / "petal.sh").is_symlink(), "the profile is linked all the same"
    warnings = node.warnings()
    assert warnings == [node.csh_login_d / "petal-warning", node.profile_d / "petal-warning.sh"]
    for warning in warnings:
        assert f"{WARNING} the software volume holds {OTHER}" in warning.read_text()


def test_a_verified_run_removes_an_earlier_warning(node: Node) -> None:
    write_manifest(node, OTHER)
    node.run("--fingerprint", FP)
    assert node.warnings()
    write_manifest(node, FP)
    assert node.run("--fingerprint", FP).returncode == 0
    assert node.warnings() == []


@pytest.mark.parametrize("manifest", ["missing", "no fingerprint", "not json", "directory"])
def test_a_manifest_that_cannot_tell_warns(node: Node, manifest: str) -> None:
    path = node.petal_dir / "manifest.json"
    if manifest == "no fingerprint":
        path.write_text(json.dumps({"format": 2, "build_id": "b"}, indent=2))
    elif manifest == "not json":
        path.write_bytes(b"\x00\xff garbage")
    elif manifest == "directory":
        path.mkdir()
    result = node.run("--fingerprint", FP)
    assert result.returncode == 0, result.stderr
    reason = "is missing" if manifest == "missing" else "holds no fingerprint"
    assert f"NOT VERIFIED: {path} {reason}" in node.log.read_text()
    assert len(node.warnings()) == 2
    strict = node.run("--fingerprint", FP, "--strict")
    assert strict.returncode == 1
    assert f"petal node setup (strict): {path} {reason}" in strict.stderr


def test_strict_mode_fails_the_boot_with_a_clear_message(node: Node) -> None:
    write_manifest(node, OTHER)
    result = node.run("--fingerprint", FP, "--strict")
    assert result.returncode == 1
    assert result.stderr.startswith(
        f"petal node setup (strict): the software volume holds {OTHER} (build b-1234), "
        f"not {FP} which this cluster was created for. The cluster config asks for --strict"
    )
    assert "strict mode: failing this node's boot" in node.log.read_text()
    write_manifest(node, FP)
    assert node.run("--fingerprint", FP, "--strict").returncode == 0


def test_a_manifest_in_another_layout_is_read(node: Node) -> None:
    path = node.petal_dir / "manifest.json"
    path.write_text(json.dumps({"build_id": "b-9", "fingerprint": FP}))
    assert node.run("--fingerprint", FP).returncode == 0
    assert f"verified: the software volume holds {FP} (build b-9)" in node.log.read_text()
    # Two values in such a layout: neither is believed.
    path.write_text(json.dumps({"fingerprint": FP, "x": {"fingerprint": OTHER}}))
    assert node.run("--fingerprint", FP, "--strict").returncode == 1


@pytest.mark.parametrize("value", ["sha256:abc", "x'; touch PWNED; '", "", FP.upper()])
def test_a_bad_expected_fingerprint_is_reported_never_run(
    node: Node, value: str, tmp_path: Path
) -> None:
    value = value.replace("PWNED", str(tmp_path / "pwned"))
    write_manifest(node)
    result = node.run("--fingerprint", value)
    assert result.returncode == 0
    assert "--fingerprint in the cluster config is not sha256:<64 hex" in node.log.read_text()
    warning = node.profile_d / "petal-warning.sh"
    assert "cannot be checked" in warning.read_text()
    shown = subprocess.run(["sh", "-ic", f". {warning}"], capture_output=True, text=True)
    assert "the --fingerprint in the cluster config is not sha256:" in shown.stderr
    assert not (tmp_path / "pwned").exists()
    assert node.run("--fingerprint", value, "--strict").returncode == 1


def test_the_warning_is_safe_whatever_the_paths(tmp_path: Path) -> None:
    """Quotes, `!` and `$` in what the message names never break (or run in) a shell."""
    node = make_node(tmp_path, volume=tmp_path / "it's $HOME!`id`")
    assert node.run("--fingerprint", FP).returncode == 0  # no manifest there
    for shell, warning in (
        (["sh", "-ic"], node.profile_d / "petal-warning.sh"),
        (["tcsh", "-c"], node.csh_login_d / "petal-warning"),
    ):
        command = f"set prompt=x; source {warning}" if shell[0] == "tcsh" else f". {warning}"
        shown = subprocess.run([*shell, command], capture_output=True, text=True)
        output = shown.stdout + shown.stderr
        assert "petal: WARNING: " in output and "it?s ?HOME??id?" in output, output


def test_without_a_fingerprint_nothing_is_checked(node: Node) -> None:
    """A config written before nodes checked anything: the profile is linked, no warning."""
    result = node.run()
    assert result.returncode == 0
    assert "no --fingerprint in the cluster config's OnNodeConfigured Args" in node.log.read_text()
    assert node.warnings() == []
    strict = node.run("--strict")
    assert strict.returncode == 1
    assert "--strict needs --fingerprint" in strict.stderr


def test_an_unknown_argument_is_logged_and_ignored(node: Node) -> None:
    write_manifest(node)
    assert node.run("--fingerprint", FP, "--verbose").returncode == 0
    log = node.log.read_text()
    assert "ignoring unknown argument '--verbose'" in log
    assert "verified:" in log


def test_without_a_profile_nothing_is_linked(node: Node) -> None:
    (node.petal_dir / "profile.sh").unlink()
    (node.petal_dir / "profile.csh").unlink()
    write_manifest(node)
    assert node.run("--fingerprint", FP).returncode == 0
    assert "profile.sh not found: nothing linked" in node.log.read_text()
    assert not list(node.profile_d.iterdir())


def test_csh_files_go_where_the_os_reads_them(tmp_path: Path) -> None:
    """tcsh reads /etc/csh/login.d on Debian and Ubuntu, /etc/profile.d/*.csh elsewhere."""
    node = make_node(tmp_path, debian_csh=False)
    write_manifest(node, OTHER)
    assert node.run("--fingerprint", FP).returncode == 0
    assert (node.profile_d / "petal.csh").resolve() == (node.petal_dir / "profile.csh").resolve()
    assert node.warnings() == [
        node.profile_d / "petal-warning.csh",
        node.profile_d / "petal-warning.sh",
    ]
    assert not (node.root / "etc/csh").exists()


def test_an_unwritable_etc_and_log_never_fail_the_boot(node: Node) -> None:
    write_manifest(node, OTHER)
    # A file where directories should be: nothing can be written there, even by root.
    shutil.rmtree(node.root / "etc")
    (node.root / "etc").write_text("")
    shutil.rmtree(node.root / "var/log")
    (node.root / "var/log").write_text("")
    result = node.run("--fingerprint", FP)
    assert result.returncode == 0, result.stderr
    assert "cannot write" in result.stderr
    assert "ERROR: cannot link" in result.stdout
    assert "ERROR: cannot write" in result.stdout and "users will not be warned" in result.stdout


def test_installs_nothing_and_is_posix() -> None:
    text = SCRIPT.read_text()
    for word in ("yum", "dnf", "apt", "pip", "curl", "wget", "spack install", "aws s3"):
        assert word not in text
    assert text.startswith("#!/bin/sh\n")
    assert "[[ " not in text and "local " not in text  # bash, not sh


# --- a read-only volume ----------------------------------------------------------------------


def tree(path: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(path)): (p.lstat().st_mode, p.lstat().st_mtime_ns)
        for p in [path, *path.rglob("*")]
    }


def namespace() -> list[str]:
    """unshare's private mount namespace: as root, or as root of a user namespace."""
    found = shutil.which("unshare")
    if found is None:
        pytest.fail("unshare (util-linux) is missing: the tests mount a read-only volume")
    return [found, "--mount"] if os.geteuid() == 0 else [found, "--mount", "--map-root-user"]


@pytest.mark.parametrize("how", ["read-only bind mount", "no write permission"])
@pytest.mark.parametrize("fingerprint", [FP, OTHER])
def test_a_read_only_volume_is_checked_and_never_written(
    node: Node, how: str, fingerprint: str
) -> None:
    write_manifest(node, fingerprint)
    volume = node.petal_dir.parent
    before = tree(volume)
    if how == "read-only bind mount":
        command = [
            *namespace(), "sh", "-euc",
            'mount --bind "$1" "$1"; mount -o remount,bind,ro "$1" "$1"; '
            'if touch "$1/probe" 2>/dev/null; then exit 99; fi; exec sh "$2" --fingerprint "$3"',
            "sh", str(volume), str(SCRIPT), FP,
        ]  # fmt: skip
        result = subprocess.run(command, env=node.env(), capture_output=True, text=True)
    else:
        # Root writes through permissions: what shows the script writes nothing is the
        # tree, unchanged.
        for directory in (volume, node.petal_dir):
            directory.chmod(0o555)
        before = tree(volume)
        result = node.run("--fingerprint", FP)
    assert result.returncode == 0, result.stdout + result.stderr
    assert tree(volume) == before
    verified = fingerprint == FP
    assert ("verified:" in node.log.read_text()) is verified
    assert bool(node.warnings()) is not verified


# --- real login shells -----------------------------------------------------------------------


@dataclass(frozen=True)
class Volume:
    """A fake software volume: a module tree with one module, hello, and profile.sh and
    profile.csh written by the bootstrap's own functions."""

    path: Path
    system: str  # "lmod" (the stack's own Lmod) or "tcl" (Environment Modules)


def lmod_tree() -> Path:
    init = LMOD_PACKAGE / "usr/share/lmod/lmod/init/bash"
    if not init.exists():
        pytest.fail(f"{init} is missing: run `make node-shells` (Debian's lmod, unpacked)")
    return (LMOD_PACKAGE / "usr/share/lmod/lmod").resolve()


def install_lmod(prefix: Path) -> Path:
    """Debian's Lmod copied to a Spack-like prefix, its absolute paths rewritten; returns
    its init directory (what the bootstrap finds with `spack location -i lmod`)."""
    source = lmod_tree()
    version = prefix / "lmod" / source.name
    shutil.copytree(source, version, symlinks=False)  # lib/ is a link out of the tree
    (prefix / "lmod" / "lmod").symlink_to(source.name)
    old, new = b"/usr/share/lmod", str(prefix / "lmod").encode()
    for path in version.rglob("*"):
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            if old in data and b"\x00" not in data:
                path.write_bytes(data.replace(old, new))
    return prefix / "lmod" / "lmod" / "init"


def make_volume(path: Path, system: str) -> Volume:
    spack = path / "spack"
    if system == "lmod":
        modules = spack / "share/spack/lmod/linux-debian12-x86_64/Core"
        (modules / "hello").mkdir(parents=True)
        (modules / "hello/1.0.lua").write_text('setenv("PETAL_HELLO", "lmod")\n')
        prefix = spack / "opt/spack/linux-debian12-x86_64/gcc-12.2.0/lmod-8.6.19-abcdefg"
        lmod_init = str(install_lmod(prefix))
    else:
        modules = spack / "share/spack/modules/linux-debian12-x86_64"
        (modules / "hello").mkdir(parents=True)
        (modules / "hello/1.0").write_text("#%Module1.0\nsetenv PETAL_HELLO tcl\n")
        lmod_init = ""
    (path / "petal").mkdir(parents=True)
    code = (
        'source "$1"; init_settings; MOUNT_DIR="$2"; SPACK_ROOT_DIR="$2/spack"; '
        f'FINGERPRINT={FP} BUILD_ID=b-1234 SPACK_VERSION=v0.23.0; MODULE_DIRS=("$4"); '
        'sh_profile "$3" >"$2/petal/profile.sh"; csh_profile "$3" >"$2/petal/profile.csh"'
    )
    subprocess.run(
        ["bash", "-c", code, "bash", str(BOOTSTRAP), str(path), lmod_init, str(modules)],
        check=True,
    )
    return Volume(path, system)


@pytest.fixture(scope="module", params=["lmod", "tcl"])
def volume(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Volume:
    return make_volume(tmp_path_factory.mktemp(f"volume-{request.param}"), request.param)


# The node's /etc/profile.d and /etc/csh/login.d: this machine's (with Environment
# Modules' modules.sh and modules), plus what the script wrote; then the login shell,
# started as sshd starts one (argv[0] "-bash").
LOGIN = r"""
set -eu
for dir in profile.d csh/login.d; do
    mkdir -p "$NODE_VIEW/$dir"
    cp -a "/etc/$dir/." "$NODE_VIEW/$dir/"
    cp -a "$PETAL_ROOT_PREFIX/etc/$dir/." "$NODE_VIEW/$dir/"
    mount --bind "$NODE_VIEW/$dir" "/etc/$dir"
done
shell="$1"
shift
exec -a "-$shell" "/bin/$shell" "$@"
"""


def login(node: Node, shell: str, commands: str, *, interactive: bool = False) -> str:
    """What a login shell of the node prints (stdout and stderr) running `commands`."""
    if shutil.which(shell) is None:
        pytest.fail(f"{shell} is not installed: run `make node-shells`")
    view = node.root.parent / f"view-{shell}-{os.urandom(4).hex()}"
    environment = {
        "HOME": str(node.root.parent),
        "PATH": "/usr/bin:/bin",
        "TERM": "dumb",
        "USER": "root",
        "LOGNAME": "root",
        "SHELL": f"/bin/{shell}",
        "NODE_VIEW": str(view),
        "PETAL_ROOT_PREFIX": str(node.root),
    }
    result = subprocess.run(
        [*namespace(), "bash", "-c", LOGIN, "login", shell, *(["-i"] if interactive else [])],
        input=commands,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return result.stdout + result.stderr


@pytest.fixture
def volume_node(tmp_path: Path, volume: Volume) -> Node:
    node = make_node(tmp_path, volume=volume.path)
    write_manifest(node)
    return node


@pytest.mark.parametrize("shell", SHELLS)
def test_module_works_in_login_shells(volume: Volume, volume_node: Node, shell: str) -> None:
    assert volume_node.run("--fingerprint", FP).returncode == 0
    output = login(
        volume_node, shell, 'module load hello\necho "HELLO=$PETAL_HELLO"\nmodule --version\n'
    )
    assert f"HELLO={volume.system}\n" in output, output
    version = "Modules based on Lua" if volume.system == "lmod" else "Modules Release"
    assert version in output, output
    assert WARNING not in output


@pytest.mark.parametrize("shell", ["bash", "dash"])
def test_lmod_stays_in_bash_job_scripts(tmp_path: Path, shell: str) -> None:
    """A job script (non-interactive, non-login bash) keeps the stack's Lmod, through
    BASH_ENV, though Environment Modules' own init would bring its `module` back."""
    volume = make_volume(tmp_path / "volume", "lmod")
    node = make_node(tmp_path, volume=volume.path)
    write_manifest(node)
    node.run("--fingerprint", FP)
    output = login(node, shell, "bash -c 'module load hello; echo \"JOB=$PETAL_HELLO\"'\n")
    assert "JOB=lmod\n" in output, output


@pytest.mark.parametrize("shell", SHELLS)
def test_users_are_told_when_the_volume_does_not_match(
    volume: Volume, volume_node: Node, shell: str
) -> None:
    write_manifest(volume_node, OTHER)
    assert volume_node.run("--fingerprint", FP).returncode == 0
    output = login(volume_node, shell, "module load hello\necho done\n", interactive=True)
    assert f"{WARNING} the software volume holds {OTHER} (build b-1234), not {FP}" in output
    assert "done" in output
    # The profile is still there: the software may well work.
    assert "Unable to locate" not in output and "Lmod has detected" not in output


@pytest.mark.parametrize("shell", ["bash", "dash"])
def test_non_interactive_logins_stay_quiet(volume: Volume, volume_node: Node, shell: str) -> None:
    """`#!/bin/bash -l` job scripts and scp must not get the warning in their output."""
    write_manifest(volume_node, OTHER)
    volume_node.run("--fingerprint", FP)
    assert login(volume_node, shell, "echo done\n") == "done\n"


def test_no_warning_when_the_volume_matches(volume: Volume, volume_node: Node) -> None:
    write_manifest(volume_node, OTHER)
    volume_node.run("--fingerprint", FP)
    write_manifest(volume_node, FP)
    volume_node.run("--fingerprint", FP)
    for shell in SHELLS:
        assert WARNING not in login(volume_node, shell, "echo done\n", interactive=True)


@pytest.fixture(autouse=True)
def _machine_untouched() -> Iterator[None]:
    """The script under test never writes this machine's own login files or log."""
    watched = [Path("/etc/profile.d"), Path("/etc/csh/login.d"), Path("/var/log")]
    before = {p: sorted(q.name for q in p.glob("petal*")) for p in watched if p.is_dir()}
    yield
    after = {p: sorted(q.name for q in p.glob("petal*")) for p in watched if p.is_dir()}
    assert after == before
