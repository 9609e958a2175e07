"""`petal build --from SNAP|auto` in-process against the emulated deployment: the
request carries the parent, `petal build list` shows the lineage, and a snapshot id
for several variants is refused before any build starts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from petal.local.emulator import LocalAws
from tests.cli.test_build_cli import SEED, aws, executions, fixed_build_ids, petal

__all__ = ["aws"]  # the fixture, shared with test_build_cli.py
pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")

CHANGED = (Path(__file__).resolve().parents[2] / SEED).read_text().replace("xz@5.4.6", "xz@5.4.5")


def test_a_build_from_auto_shows_its_lineage(
    aws: LocalAws,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    fixed_build_ids(monkeypatch, "wb-first", "wb-child")
    assert petal("--seed", SEED) == 0
    changed = tmp_path / "changed.yaml"
    changed.write_text(CHANGED)
    assert petal("--seed", str(changed), "--from", "auto") == 0
    first, child = aws.table.get_build("wb-first"), aws.table.get_build("wb-child")
    assert first is not None and child is not None and first.snapshot_id
    assert child.parent_snapshot_id == first.snapshot_id
    capsys.readouterr()

    assert petal("list", "--json") == 0
    listing = json.loads(capsys.readouterr().out)
    builds = {b["build_id"]: b for b in listing["builds"]}
    assert builds["wb-child"]["parent_snapshot_id"] == first.snapshot_id
    assert "parent_snapshot_id" not in builds["wb-first"]
    volumes = {v["snapshot_id"]: v for v in listing["software_volumes"]}
    assert volumes[str(child.snapshot_id)]["parent_snapshot_id"] == first.snapshot_id
    assert volumes[first.snapshot_id]["parent_snapshot_id"] is None

    assert petal("list") == 0
    out = capsys.readouterr().out
    assert f"wb-child (alinux2023/x86_64) succeeded: {child.snapshot_id}" in out
    assert f"(from {first.snapshot_id})" in out
    assert f"xz@5.4.5  from {first.snapshot_id}" in out


def test_a_snapshot_id_for_several_variants_is_refused(
    aws: LocalAws, capsys: pytest.CaptureFixture[str]
) -> None:
    code = petal("--seed", SEED, "--os", "alinux2023,rhel9", "--from", "snap-0123456789abcdef0")
    assert code == 2
    assert "--from snap-0123456789abcdef0: one snapshot is the parent of one variant only" in (
        capsys.readouterr().err
    )
    assert executions(aws) == []


def test_a_parent_that_is_no_snapshot_id_is_refused(
    aws: LocalAws, capsys: pytest.CaptureFixture[str]
) -> None:
    assert petal("--seed", SEED, "--from", "latest") == 2
    assert "parent" in capsys.readouterr().err
    assert executions(aws) == []
