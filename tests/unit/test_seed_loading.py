"""Seed validation: every bad seed in tests/data/bad_seeds is refused with its message."""

from __future__ import annotations

from pathlib import Path

import pytest

from petal.seed.loading import load_seed, parse_seed, parse_seed_mapping
from petal.seed.model import MAX_SEED_BYTES, SeedError

REPO = Path(__file__).resolve().parents[2]
BAD_SEEDS = sorted((REPO / "tests/data/bad_seeds").glob("*.yaml"))
EXAMPLES = sorted((REPO / "seeds").rglob("*.yaml"))


def expected_message(path: Path) -> str:
    first = path.read_text().splitlines()[0]
    assert first.startswith("# expect: "), f"{path.name} must start with '# expect: '"
    return first.removeprefix("# expect: ")


def test_the_corpus_is_large_enough() -> None:
    assert len(BAD_SEEDS) >= 30


@pytest.mark.parametrize("path", BAD_SEEDS, ids=lambda p: p.stem)
def test_bad_seed_is_rejected_with_its_message(path: Path) -> None:
    with pytest.raises(SeedError) as raised:
        load_seed(path)
    text = str(raised.value)
    assert expected_message(path) in text
    # Every line names the file, and a line number where the problem has one.
    for line in text.splitlines():
        assert line.startswith(f"{path}:")
    assert "Traceback" not in text


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_seeds_are_valid(path: Path) -> None:
    seed = load_seed(path)
    assert seed.warnings == ()
    assert path.read_text().startswith("# yaml-language-server: $schema=")


def test_every_problem_is_reported_not_just_the_first() -> None:
    text = """\
name: Bad
software:
  packages: ["samtools;x", bwa@0.7.17]
os: al2023
volume: {size_gb: 0}
"""
    with pytest.raises(SeedError) as raised:
        parse_seed(text, "many.yaml")
    paths = {p.path for p in raised.value.errors}
    assert paths == {"name", "software.packages[0]", "os", "volume.size_gb"}


def test_line_numbers_point_at_the_field() -> None:
    text = "name: ok\nsoftware:\n  packages:\n    - bwa@0.7.17\n    - 'bwa;x'\n"
    with pytest.raises(SeedError) as raised:
        parse_seed(text, "lines.yaml")
    (problem,) = raised.value.errors
    assert problem.line == 5
    assert problem.format("lines.yaml").startswith("lines.yaml:5: software.packages[1]: ")


def test_duplicate_packages_warn_and_are_dropped() -> None:
    text = "name: dup\nsoftware:\n  packages: [bwa@0.7.17, ' bwa@0.7.17', samtools+a~b, samtools~b+a]\n"
    seed = parse_seed(text, "dup.yaml")
    assert seed.software.packages == ("bwa@0.7.17", "samtools +a ~b")
    assert [w.path for w in seed.warnings] == ["software.packages[1]", "software.packages[3]"]
    assert all(w.severity == "warning" for w in seed.warnings)


def test_defaults_follow_the_architecture() -> None:
    x86 = parse_seed("name: a\nsoftware: {packages: [bwa]}\n")
    arm = parse_seed("name: a\narchitecture: arm64\nsoftware: {packages: [bwa]}\n")
    assert x86.build.instance_type == "c6a.4xlarge"
    assert arm.build.instance_type == "c7g.4xlarge"
    assert arm.cluster.queues[0].instance_type == "c7g.8xlarge"
    assert x86.os == "alinux2023"
    assert x86.volume.size_gb == 500
    assert x86.volume.encrypted is True
    assert x86.build.timeout_minutes == 240
    assert x86.software.spack_version == "v0.23.0"
    assert x86.software.modules == "lmod"


def test_official_buildcache_follows_the_spack_release() -> None:
    seed = parse_seed("name: a\nsoftware: {spack_version: v0.22.2, packages: [bwa]}\n")
    assert [m.url for m in seed.software.effective_mirrors] == [
        "https://binaries.spack.io/releases/v0.22"
    ]
    extra = parse_seed(
        "name: a\nsoftware:\n  packages: [bwa]\n  official_buildcache: false\n"
        "  mirrors: [{name: mine, url: 's3://my-bucket/cache'}]\n"
    )
    assert [m.url for m in extra.software.effective_mirrors] == ["s3://my-bucket/cache"]


def test_document_round_trips() -> None:
    for path in EXAMPLES:
        seed = load_seed(path)
        assert parse_seed_mapping(seed.to_document()) == seed


def test_mapping_input_must_be_a_mapping() -> None:
    with pytest.raises(SeedError, match="must be a YAML mapping of fields, not a list"):
        parse_seed_mapping(["bwa"], "request")


def test_oversized_file_is_refused(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_text("name: a\n" + "# padding\n" * (MAX_SEED_BYTES // 10 + 1))
    with pytest.raises(SeedError, match=f"a seed may be at most {MAX_SEED_BYTES:,} bytes"):
        load_seed(big)


def test_binary_file_is_refused(tmp_path: Path) -> None:
    binary = tmp_path / "seed.yaml"
    binary.write_bytes(b"name: \xff\xfe\x00")
    with pytest.raises(SeedError, match="is not UTF-8 text"):
        load_seed(binary)


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SeedError, match="cannot be read: No such file or directory"):
        load_seed(tmp_path / "absent.yaml")
