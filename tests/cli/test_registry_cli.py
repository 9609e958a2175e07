"""`petal registry snapshots ...` against a registry served over local HTTP."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from petal.cli import registry_commands
from petal.cli.main import dispatch
from tests.data.registry.registry_server import BAD, RegistryServer

BIO_SEED = str(
    Path(__file__).resolve().parents[1] / "data/registry/good/seeds/bioinformatics-v1.yaml"
)
BIO_FP = "sha256:a21acae4900f6c337bbb35dc5b6abf927699f2432c2362f03ff85356b0d90783"


def petal(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="petal")
    commands = parser.add_subparsers(dest="command", required=True)
    registry_commands.register(commands)
    args = parser.parse_args(list(argv))
    code: int = dispatch(args)
    return code


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[RegistryServer]:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("PETAL_CONFIG", str(tmp_path / "absent.yaml"))
    monkeypatch.delenv("PETAL_REGISTRY_URL", raising=False)
    registry = RegistryServer()
    yield registry
    registry.close()


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any]:
    code = petal(*argv, "--json")
    return code, json.loads(capsys.readouterr().out)


def test_list(server: RegistryServer, capsys: pytest.CaptureFixture[str]) -> None:
    code, data = run_json(capsys, "registry", "snapshots", "list", "--registry-url", server.url)
    assert code == 0
    assert data["registry"] == server.url
    assert data["version"] == "1.0"
    assert [s["name"] for s in data["snapshots"]] == [
        "bioinformatics-v1",
        "machine-learning-v1",
        "chemistry-v1",
    ]
    assert set(data["snapshots"][0]) == {
        "name",
        "fingerprint",
        "description",
        "packages",
        "metadata_url",
    }


def test_list_plain_text_is_tab_separated(
    server: RegistryServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert petal("registry", "snapshots", "list", "--registry-url", server.url) == 0
    first = capsys.readouterr().out.splitlines()[0].split("\t")
    assert first[0] == "bioinformatics-v1"


def test_registry_url_from_the_environment(
    server: RegistryServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PETAL_REGISTRY_URL", server.url)
    code, data = run_json(capsys, "registry", "snapshots", "list")
    assert code == 0 and data["registry"] == server.url


def test_search(server: RegistryServer, capsys: pytest.CaptureFixture[str]) -> None:
    code, data = run_json(
        capsys, "registry", "snapshots", "search", "torch", "--registry-url", server.url
    )
    assert code == 0
    assert data["query"] == "torch"
    assert [s["name"] for s in data["snapshots"]] == ["machine-learning-v1"]
    code, data = run_json(
        capsys, "registry", "snapshots", "search", "GENOMICS", "--registry-url", server.url
    )
    assert [s["name"] for s in data["snapshots"]] == ["bioinformatics-v1"]
    code, data = run_json(
        capsys, "registry", "snapshots", "search", "fortran", "--registry-url", server.url
    )
    assert (code, data["snapshots"]) == (1, [])
    assert server.requests() == 1, "search reads the index only"


def test_info(server: RegistryServer, capsys: pytest.CaptureFixture[str]) -> None:
    code, data = run_json(
        capsys, "registry", "snapshots", "info", "bioinformatics-v1", "--registry-url", server.url
    )
    assert code == 0
    assert data["fingerprint"] == BIO_FP
    assert data["aws_account"] == "999888777666"
    assert data["seed_url"] == f"{server.url}/seeds/bioinformatics-v1.yaml"
    assert len(data["variants"]) == 6
    assert data["variants"][0] == {
        "region": "us-east-1",
        "snapshot_id": "snap-0abc123def4567890",
        "os": "alinux2023",
        "registry_os": "al2023",
        "architecture": "x86_64",
        "size_gb": 500,
        "aws_account": "999888777666",
        "description": "Full stack - Amazon Linux 2023",
    }


def test_info_plain(server: RegistryServer, capsys: pytest.CaptureFixture[str]) -> None:
    assert petal("registry", "snapshots", "info", "chemistry-v1", "--registry-url", server.url) == 0
    out = capsys.readouterr().out
    assert "chemistry-v1: Computational chemistry stack" in out
    assert "eu-west-1\tsnap-0c1c2c3c4c5c6c7c8\trocky9\tarm64\t400 GiB" in out


def test_info_unknown_name_exits_1(
    server: RegistryServer, capsys: pytest.CaptureFixture[str]
) -> None:
    code, data = run_json(
        capsys, "registry", "snapshots", "info", "nope", "--registry-url", server.url
    )
    assert code == 1
    assert "no stack named 'nope'" in data["error"]


def test_regions(server: RegistryServer, capsys: pytest.CaptureFixture[str]) -> None:
    code, data = run_json(
        capsys,
        "registry",
        "snapshots",
        "regions",
        "bioinformatics-v1",
        "--registry-url",
        server.url,
    )
    assert code == 0
    assert [r["region"] for r in data["regions"]] == ["eu-west-1", "us-east-1", "us-west-2"]
    east = data["regions"][1]["variants"]
    assert {(v["os"], v["architecture"], v["size_gb"]) for v in east} == {
        ("alinux2023", "x86_64", 500),
        ("ubuntu2404", "x86_64", 500),
        ("alinux2023", "x86_64", 250),
        ("alinux2023", "arm64", 500),
    }


def test_check_found(server: RegistryServer, capsys: pytest.CaptureFixture[str]) -> None:
    code, data = run_json(
        capsys, "registry", "snapshots", "check", "--seed", BIO_SEED, "--registry-url", server.url
    )
    assert code == 0
    assert data["found"] is True
    assert data["stack"] == "bioinformatics-v1"
    assert data["fingerprint"] == BIO_FP
    assert {v["region"] for v in data["variants"]} == {"us-east-1", "us-west-2", "eu-west-1"}
    assert server.requests() == 2


def test_check_filters_region_os_arch(
    server: RegistryServer, capsys: pytest.CaptureFixture[str]
) -> None:
    code, data = run_json(
        capsys,
        "registry",
        "snapshots",
        "check",
        "--seed",
        BIO_SEED,
        "--region",
        "us-east-1",
        "--os",
        "ubuntu2404",
        "--registry-url",
        server.url,
    )
    assert code == 0
    assert [v["snapshot_id"] for v in data["variants"]] == ["snap-0def4567890abc123"]
    code, data = run_json(
        capsys,
        "registry",
        "snapshots",
        "check",
        "--seed",
        BIO_SEED,
        "--region",
        "eu-west-1",
        "--arch",
        "arm64",
        "--registry-url",
        server.url,
    )
    assert (code, data["found"], data["stack"]) == (1, False, "bioinformatics-v1")


def test_check_not_found_prints_the_build_command(
    server: RegistryServer, capsys: pytest.CaptureFixture[str]
) -> None:
    seed = str(Path(__file__).resolve().parents[2] / "seeds/bioinformatics.yaml")
    code = petal("registry", "snapshots", "check", "--seed", seed, "--registry-url", server.url)
    assert code == 1
    assert f"build one with: petal build --seed {seed}" in capsys.readouterr().out


def test_check_bad_seed_or_os_exits_2(
    server: RegistryServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert petal("registry", "snapshots", "check", "--seed", "missing.yaml") == 2
    code = petal(
        "registry",
        "snapshots",
        "check",
        "--seed",
        BIO_SEED,
        "--os",
        "dos",
        "--registry-url",
        server.url,
    )
    assert code == 2
    assert "--os: unknown operating system 'dos'" in capsys.readouterr().err


def test_update(server: RegistryServer, capsys: pytest.CaptureFixture[str]) -> None:
    code, data = run_json(capsys, "registry", "snapshots", "update", "--registry-url", server.url)
    assert (code, data) == (
        0,
        {"registry": server.url, "documents": 4, "downloaded": 4, "not_modified": 0},
    )
    code, data = run_json(capsys, "registry", "snapshots", "update", "--registry-url", server.url)
    assert (data["downloaded"], data["not_modified"]) == (0, 4)
    server.reset_hits()
    # The refreshed cache answers the next command without a request.
    run_json(capsys, "registry", "snapshots", "info", "chemistry-v1", "--registry-url", server.url)
    assert server.requests() == 0


def test_malformed_registry_exits_1_with_the_document_and_field(
    server: RegistryServer, capsys: pytest.CaptureFixture[str]
) -> None:
    server.files["snapshots/bioinformatics-v1.json"] = (
        BAD / "entry-bad-snapshot-id.json"
    ).read_bytes()
    code, data = run_json(
        capsys, "registry", "snapshots", "info", "bioinformatics-v1", "--registry-url", server.url
    )
    assert code == 1
    assert data["error"].startswith(
        f"registry document {server.url}/snapshots/bioinformatics-v1.json: snapshots[0].snapshot_id:"
    )
    assert (
        petal("registry", "snapshots", "info", "bioinformatics-v1", "--registry-url", server.url)
        == 1
    )
    err = capsys.readouterr().err
    assert err.startswith("petal: error: registry document") and "Traceback" not in err


def test_bad_registry_url_exits_2(
    server: RegistryServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert petal("registry", "snapshots", "list", "--registry-url", "file:///etc") == 2
    assert "--registry-url: 'file:///etc' is not an http(s) URL" in capsys.readouterr().err


def test_missing_registry_exits_1(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    empty = RegistryServer(files={})
    try:
        assert petal("registry", "snapshots", "list", "--registry-url", empty.url) == 1
    finally:
        empty.close()
    assert "not found (HTTP 404)" in capsys.readouterr().err


def test_with_json_a_registry_failure_is_reported_on_stdout_only(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    empty = RegistryServer(files={})
    try:
        assert petal("registry", "snapshots", "list", "--registry-url", empty.url, "--json") == 1
    finally:
        empty.close()
    captured = capsys.readouterr()
    document = json.loads(captured.out)
    assert document["registry"] == empty.url and "not found (HTTP 404)" in document["error"]
    assert captured.err == ""
