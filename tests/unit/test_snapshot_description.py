"""The snapshot Description: the only petal metadata other accounts can see."""

from __future__ import annotations

import pytest

from petal.snapshot_description import (
    DescriptionError,
    SnapshotDescription,
    description_filter,
    format_description,
    parse_description,
)

FP = "sha256:" + "0123456789abcdef" * 4


def test_round_trip_writes_the_parallelcluster_os_name() -> None:
    text = format_description(FP, "al2023", "arm64", "bioinformatics")
    assert text == f"petal {FP} os=alinux2023 arch=arm64 seed=bioinformatics"
    assert parse_description(text) == SnapshotDescription(
        FP, "alinux2023", "arm64", "bioinformatics"
    )


def test_longest_seed_name_fits_the_ec2_limit() -> None:
    assert len(format_description(FP, "ubuntu2404", "x86_64", "a" * 63)) <= 255


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("sha256:abc", "alinux2023", "x86_64", "s"), "fingerprint 'sha256:abc' is not valid"),
        ((FP, "windows", "x86_64", "s"), "unknown operating system 'windows'"),
        ((FP, "alinux2023", "amd64", "s"), "architecture 'amd64' is not valid"),
        ((FP, "alinux2023", "x86_64", "Bad Name"), "seed name 'Bad Name' is not valid"),
    ],
)
def test_format_refuses_bad_values(args: tuple[str, str, str, str], message: str) -> None:
    with pytest.raises(DescriptionError, match=message):
        format_description(*args)


@pytest.mark.parametrize(
    "text",
    [
        None,
        "",
        "my backup",
        f"petal {FP} os=al2023 arch=x86_64 seed=s",  # short OS name: not what petal writes
        f"petal {FP} os=windows arch=x86_64 seed=s",
        f"petal {FP} os=alinux2023 arch=x86_64 seed=s extra",
        f"petal {FP.upper()} os=alinux2023 arch=x86_64 seed=s",
        f" petal {FP} os=alinux2023 arch=x86_64 seed=s",
        f"petal {FP} os=alinux2023 arch=x86_64 seed=s" + "x" * 300,
    ],
)
def test_anything_but_the_exact_format_is_not_a_petal_snapshot(text: str | None) -> None:
    assert parse_description(text) is None


def test_filter_matches_every_seed_name() -> None:
    assert description_filter(FP, "al2023", "x86_64") == (
        f"petal {FP} os=alinux2023 arch=x86_64 seed=*"
    )


def test_a_childs_description_names_its_parent() -> None:
    text = format_description(FP, "alinux2023", "x86_64", "bio", parent="snap-0123456789abcdef0")
    assert text.endswith(" seed=bio parent=snap-0123456789abcdef0")
    assert len(format_description(FP, "ubuntu2404", "x86_64", "a" * 63, "snap-" + "f" * 17)) <= 255
    parsed = parse_description(text)
    assert parsed is not None and parsed.parent == "snap-0123456789abcdef0"
    assert parsed.names(FP, "alinux2023", "x86_64")


def test_a_parent_that_is_no_snapshot_id_is_refused() -> None:
    with pytest.raises(DescriptionError, match="parent 'vol-1' is not a snapshot id"):
        format_description(FP, "alinux2023", "x86_64", "bio", parent="vol-1")
    assert parse_description(f"petal {FP} os=alinux2023 arch=x86_64 seed=bio parent=x") is None
