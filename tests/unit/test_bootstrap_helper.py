"""The bootstrap's Python helper (ssm_documents/bootstrap_helper.py), as a module.

On the builder it runs under `spack python`; here under this Python, with the stand-in
spack.util.spack_yaml of tests/data/bootstrap/spack_python. test_bootstrap_script.py runs
it through the whole script.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import yaml

from petal.build.bootstrap_document import BOOTSTRAP_HELPER_FILE

REPO = Path(__file__).resolve().parents[2]
HELPER = REPO / BOOTSTRAP_HELPER_FILE
DATA = REPO / "tests" / "data" / "bootstrap"
SPACK_PYTHON = DATA / "spack_python"

# Lock file shape of `spack concretize` (what the helper reads of it).
LOCK = {
    "_meta": {"file-type": "spack-lockfile", "lockfile-version": 5},
    "roots": [{"hash": "h1", "spec": "samtools@1.17"}, {"hash": "h2", "spec": "lmod"}],
    "concrete_specs": {"h1": {"name": "samtools"}, "h2": {"name": "lmod"}, "h3": {"name": "zlib"}},
}


@pytest.fixture
def helper(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(SPACK_PYTHON))
    spec = importlib.util.spec_from_file_location("bootstrap_helper", HELPER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def lock_file(tmp_path: Path) -> str:
    return write(tmp_path / "spack.lock", json.dumps(LOCK))


# --- Spack's Python --------------------------------------------------------------------


def test_helper_is_python_3_6() -> None:
    """Spack's oldest Python, RHEL 8's python3, must compile and run the helper."""
    tree = ast.parse(HELPER.read_text(), feature_version=(3, 6))
    # Python 3.6 evaluates annotations of functions and module variables at definition:
    # only names of builtins may stand unquoted there (list[str] needs Python 3.9).
    evaluated: list[ast.expr | None] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef):
            arguments = node.args.posonlyargs + node.args.args + node.args.kwonlyargs
            evaluated += [node.returns, *(argument.annotation for argument in arguments)]
    evaluated += [node.annotation for node in tree.body if isinstance(node, ast.AnnAssign)]
    assert any(evaluated)
    for annotation in filter(None, evaluated):
        constant = isinstance(annotation, ast.Constant)  # "quoted" or None
        builtin = isinstance(annotation, ast.Name) and annotation.id in ("str", "int")
        assert constant or builtin, ast.unparse(annotation)


def test_helper_imports_only_the_standard_library_and_spack() -> None:
    tree = ast.parse(HELPER.read_text())
    imported = {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    imported |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    outside = {name for name in imported if name.split(".")[0] not in sys.stdlib_module_names}
    # boto3 and botocore: the system Python's (python3-boto3), imported only by the
    # commands that call AWS, so the others run where it is missing.
    assert outside == {"spack.util.spack_yaml", "boto3", "botocore.exceptions"}
    top_level = {
        alias.name
        for node in tree.body
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert not top_level & {"boto3", "ClientError"}


# --- queries ---------------------------------------------------------------------------


def test_seed_compilers(helper: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    helper.seed_compilers(str(DATA / "spack.yaml"))
    assert capsys.readouterr().out == "gcc@=13.2.0\n"


def test_seed_compilers_of_an_environment_without_any(
    helper: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spack_yaml = write(tmp_path / "spack.yaml", "spack:\n  definitions:\n  - packages: [zlib]\n")
    helper.seed_compilers(spack_yaml)
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize(
    ("enable", "expected"),
    [("[lmod]", "lmod\n"), ("[tcl, prefix_inspections, lmod]", "tcl\nlmod\n"), ("[]", "")],
)
def test_module_systems(
    helper: ModuleType,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    enable: str,
    expected: str,
) -> None:
    text = f"spack:\n  modules:\n    default:\n      enable: {enable}\n"
    helper.module_systems(write(tmp_path / "spack.yaml", text))
    assert capsys.readouterr().out == expected


def test_module_systems_without_modules(
    helper: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    helper.module_systems(write(tmp_path / "spack.yaml", "spack:\n  specs: [zlib]\n"))
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("text", ["", "packages: {}\n", "spack: [zlib]\n"])
def test_a_file_that_is_no_environment_is_refused(
    helper: ModuleType, tmp_path: Path, text: str
) -> None:
    spack_yaml = write(tmp_path / "spack.yaml", text)
    with pytest.raises(SystemExit, match="no top-level 'spack:' mapping") as raised:
        helper.seed_compilers(spack_yaml)
    assert str(raised.value) == f"{spack_yaml}: no top-level 'spack:' mapping"


def test_system_compilers_are_those_outside_spack_root(
    helper: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spack_root = tmp_path / "spack"
    installed = spack_root / "opt" / "gcc-13.2.0" / "bin" / "gcc"
    installed.parent.mkdir(parents=True)
    installed.touch()
    # Spack's root reached through a link is still Spack's root.
    (tmp_path / "spack-link").symlink_to(spack_root)
    compilers = {
        "compilers": [
            {"compiler": {"spec": "gcc@=11.4.1", "paths": {"cc": "/usr/bin/gcc"}}},
            {"compiler": {"spec": "gcc@=13.2.0", "paths": {"cc": str(installed)}}},
            {"compiler": {"spec": "clang@=17.0.6", "paths": {"cc": "/usr/bin/clang"}}},
            {"compiler": {"spec": "gfortran-only@=1.0", "paths": {"cc": None}}},
        ]
    }
    compilers_yaml = write(tmp_path / "compilers.yaml", json.dumps(compilers))
    helper.system_compilers(compilers_yaml, str(tmp_path / "spack-link"))
    assert capsys.readouterr().out == "gcc@11.4.1\nclang@17.0.6\n"


def test_system_compilers_of_an_empty_configuration(
    helper: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    helper.system_compilers(write(tmp_path / "compilers.yaml", "compilers: []\n"), str(tmp_path))
    assert capsys.readouterr().out == ""


def test_roots(helper: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    helper.roots(lock_file(tmp_path))
    assert capsys.readouterr().out == "samtools@1.17\nlmod\n"


@pytest.mark.parametrize(("name", "status"), [("lmod", 0), ("zlib", 0), ("tcl", 1)])
def test_has_package(helper: ModuleType, tmp_path: Path, name: str, status: int) -> None:
    """Any concrete spec counts, a dependency as well as a root."""
    with pytest.raises(SystemExit) as raised:
        helper.has_package(lock_file(tmp_path), name)
    assert raised.value.code == status


def test_read_lines_skips_blank_lines(helper: ModuleType, tmp_path: Path) -> None:
    path = write(tmp_path / "lines", "gcc@13.2.0\n\n  \nclang@17\n")
    assert helper.read_lines(path) == ["gcc@13.2.0", "clang@17"]


# --- manifest --------------------------------------------------------------------------


def test_manifest(helper: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "PETAL_MOUNT_DIR": "/shared",
        "PETAL_FINGERPRINT": "sha256:" + "ab" * 32,
        "PETAL_BUILD_ID": "build-1",
        "PETAL_SPACK_VERSION": "v0.23.0",
        "PETAL_OS_ID": "amzn",
        "PETAL_PARENT_SNAPSHOT": "snap-0123456789abcdef0",
        "PETAL_INSTANCE_IDENTITY": str(DATA / "instance-identity.json"),
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("PETAL_OS_VERSION_ID", raising=False)
    monkeypatch.delenv("PETAL_BUILD_CACHE_URL", raising=False)
    sources = {"h1": "built", "h2": "cache", "h3": "parent"}
    out = tmp_path / "manifest.json"
    helper.manifest(
        str(out),
        lock_file(tmp_path),
        write(tmp_path / "compilers", "gcc@=13.2.0\n"),
        write(tmp_path / "core", "gcc@11.4.1\n"),
        "lmod",
        write(tmp_path / "module_paths", "/shared/spack/share/spack/lmod/x/Core\n"),
        "0123abcd",
        write(tmp_path / "sources.json", json.dumps(sources)),
    )
    text = out.read_text()
    data = json.loads(text)
    assert text == json.dumps(data, indent=2, sort_keys=True) + "\n"
    created_at = data.pop("created_at")
    assert len(created_at) == len("2025-01-01T00:00:00Z") and created_at.endswith("Z")
    assert data == {
        "format": 2,
        "lock": LOCK,
        "install_sources": sources,
        "builder_image": "ami-0123456789abcdef0",
        "parent_snapshot": "snap-0123456789abcdef0",
        "build_cache": None,
        "fingerprint": "sha256:" + "ab" * 32,
        "build_id": "build-1",
        "spack_version": "v0.23.0",
        "spack_commit": "0123abcd",
        "root_specs": ["samtools@1.17", "lmod"],
        "compilers": ["gcc@=13.2.0"],
        "core_compilers": ["gcc@11.4.1"],
        "modules": "lmod",
        "module_paths": ["/shared/spack/share/spack/lmod/x/Core"],
        "mount_dir": "/shared",
        "spack_root": "/shared/spack",
        "environment": "/shared/petal/env",
        "spack_lock": "/shared/petal/env/spack.lock",
        "profile": "/shared/petal/profile.sh",
        "os": {"id": "amzn", "version_id": ""},
        "arch": os.uname().machine,
    }
    # Readable by cluster users, and written whole: no temporary file is left.
    assert out.stat().st_mode & 0o777 == 0o644
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("manifest")) == [
        "manifest.json"
    ]


# --- where packages came from, the build cache's mirror and key, the manifest's copy ----


def database(tmp_path: Path, records: dict[str, dict[str, object]]) -> str:
    """Spack's install database (opt/spack/.spack-db/index.json) holding `records`."""
    return write(
        tmp_path / "index.json", json.dumps({"database": {"version": "7", "installs": records}})
    )


def test_install_sources(
    helper: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "root"
    for name in ("zlib", "samtools", "lmod"):
        (root / "shared/spack/opt" / name / ".spack").mkdir(parents=True)
    # What Spack leaves in a prefix it extracted from a binary cache (and only there).
    (root / "shared/spack/opt/lmod/.spack/binary_distribution").write_text("{}\n")
    db = database(
        tmp_path,
        {
            "z": {"spec": {"name": "zlib"}, "path": "/shared/spack/opt/zlib", "installed": True},
            "s": {
                "spec": {"name": "samtools"},
                "path": "/shared/spack/opt/samtools",
                "installed": True,
            },
            "l": {"spec": {"name": "lmod"}, "path": "/shared/spack/opt/lmod", "installed": True},
            "x": {
                "spec": {"name": "slurm", "external": {"path": "/opt/slurm"}},
                "path": "/opt/slurm",
                "installed": True,
            },
            "gone": {"spec": {"name": "old"}, "path": "/shared/spack/opt/old", "installed": False},
        },
    )
    out = tmp_path / "sources.json"
    helper.install_sources(db, write(tmp_path / "before", "z\n"), str(out), str(root))
    assert json.loads(out.read_text()) == {
        "l": "cache",
        "s": "built",
        "x": "external",
        "z": "parent",
    }
    # What this build built: what it pushes to the build cache.
    assert capsys.readouterr().out == "s\n"


def test_install_sources_before_anything_is_installed(
    helper: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    helper.installed_hashes(str(tmp_path / "no-index.json"))
    assert capsys.readouterr().out == ""


def test_the_cache_mirror_comes_first_and_goes_again(helper: ModuleType, tmp_path: Path) -> None:
    path = write(
        tmp_path / "spack.yaml",
        "spack:\n  mirrors:\n    seed: https://m.example\n    spack-official: https://binaries.spack.io/releases/v0.23\n",
    )
    helper.add_mirror(path, "petal-build-cache", "s3://cache/build-cache")
    mirrors = yaml.safe_load(Path(path).read_text())["spack"]["mirrors"]
    assert list(mirrors) == ["petal-build-cache", "seed", "spack-official"]
    helper.remove_mirror(path, "petal-build-cache")
    assert list(yaml.safe_load(Path(path).read_text())["spack"]["mirrors"]) == [
        "seed",
        "spack-official",
    ]


# --- as a program ------------------------------------------------------------------------


def run_helper(*args: str) -> subprocess.CompletedProcess[str]:
    """The helper as `spack python` runs it: a script, with Spack's modules importable."""
    return subprocess.run(
        [sys.executable, str(HELPER), *args],
        env={**os.environ, "PYTHONPATH": str(SPACK_PYTHON)},
        capture_output=True,
        text=True,
        check=False,
    )


def test_commands_run_from_the_command_line(tmp_path: Path) -> None:
    assert run_helper("seed-compilers", str(DATA / "spack.yaml")).stdout == "gcc@=13.2.0\n"
    assert run_helper("module-systems", str(DATA / "spack-tcl.yaml")).stdout == "tcl\n"
    assert run_helper("roots", lock_file(tmp_path)).stdout == "samtools@1.17\nlmod\n"
    assert run_helper("has-package", lock_file(tmp_path), "lmod").returncode == 0
    assert run_helper("has-package", lock_file(tmp_path), "tcl").returncode == 1


def test_a_failing_query_exits_non_zero(tmp_path: Path) -> None:
    result = run_helper("seed-compilers", write(tmp_path / "spack.yaml", "packages: {}\n"))
    assert result.returncode == 1
    assert result.stderr.endswith("no top-level 'spack:' mapping\n")
