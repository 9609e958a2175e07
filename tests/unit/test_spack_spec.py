"""The strict Spack spec grammar: what it accepts, how it normalises, what it refuses."""

from __future__ import annotations

import pytest

from petal.seed.spack_spec import SpecError, parse_spec

VALID = {
    "samtools@1.17": "samtools@1.17",
    "openmpi@4.1.4 fabrics=ofi ~java+cuda %gcc@11.3.0": "openmpi@4.1.4 +cuda ~java fabrics=ofi %gcc@11.3.0",
    "hdf5@1.14:+mpi^zlib@1.3 ^openmpi": "hdf5@1.14: +mpi ^openmpi ^zlib@1.3",
    "py-numpy@:1.26 target=x86_64_v3 os=rocky9": "py-numpy@:1.26 os=rocky9 target=x86_64_v3",
    "gcc@=11.3.0": "gcc@=11.3.0",
    "boost@1.80,1.82:1.84 cxxstd=17 +python ++shared": "boost@1.80,1.82:1.84 +python ++shared cxxstd=17",
    "lammps@20230802 +mpi +molecule": "lammps@20230802 +molecule +mpi",
    "  bwa@0.7.17  ": "bwa@0.7.17",
    "cmake%gcc": "cmake %gcc",
}


@pytest.mark.parametrize(("text", "canonical"), VALID.items())
def test_accepts_and_normalises(text: str, canonical: str) -> None:
    assert parse_spec(text).canonical() == canonical


def test_equivalent_spellings_have_one_canonical_form() -> None:
    a = parse_spec("openmpi@4.1.4+cuda~java fabrics=ofi%gcc@11.3.0 ^hwloc ^zlib")
    b = parse_spec("openmpi@4.1.4 ~java fabrics=ofi +cuda %gcc@11.3.0 ^zlib ^hwloc")
    assert a.canonical() == b.canonical()


INVALID = {
    "samtools; reboot": "unexpected ';'",
    "samtools && reboot": "unexpected '&'",
    "samtools | sh": "unexpected '|'",
    "samtools > /etc/passwd": "unexpected '>'",
    "samtools `id`": "unexpected '`'",
    "samtools $(id)": "unexpected '$'",
    "samtools ${HOME}": "unexpected '$'",
    "samtools 'x'": 'unexpected "\'"',
    'samtools "x"': "unexpected '\"'",
    "samtools\nreboot": "control or non-ASCII character",
    "samtools\x00": "control or non-ASCII character",
    "samtöols": "control or non-ASCII character",
    "samtools bwa": "a second package name 'bwa'",
    "samtools ^": "ends with '^'",
    "^zlib": "'^' must follow a package",
    "@1.17": "must start with a package name",
    "samtools@": "unexpected '@'",
    "samtools@1@2": "a second version",
    "samtools%gcc%clang": "a second compiler",
    "samtools+mpi~mpi": "variant 'mpi' given twice",
    "samtools ^zlib ^zlib": "dependency 'zlib' given twice",
    "Samtools": "unexpected 'S'",
    "samtools@1.17 fabrics=": "'fabrics=' needs a value",
    "": "is empty",
    "   ": "is empty",
    "samtools\\ reboot": "unexpected '\\\\'",
    "samtools #comment": "unexpected '#'",
    "samtools * ": "unexpected '*'",
}


@pytest.mark.parametrize(("text", "message"), INVALID.items())
def test_refuses_anything_outside_the_grammar(text: str, message: str) -> None:
    with pytest.raises(SpecError) as raised:
        parse_spec(text)
    assert message in str(raised.value)
    assert raised.value.column >= 1


def test_error_column_points_at_the_offending_character() -> None:
    with pytest.raises(SpecError) as raised:
        parse_spec("samtools@1.17;rm")
    assert raised.value.column == len("samtools@1.17;")


# One per refusal the parser makes: the whole message and the column it points at.
COLUMNS = [
    ("   ", "is empty", 1),
    ("sam\x01tools", "contains the control or non-ASCII character '\\x01'", 4),
    ("samtools@", "unexpected '@'", 9),
    ("^zlib", "'^' must follow a package and precede a dependency name", 1),
    ("samtools ^ ^zlib", "'^' must follow a package and precede a dependency name", 12),
    ("samtools@1.17 fabrics=", "'fabrics=' needs a value, e.g. fabrics=VALUE", 22),
    (
        "samtools bwa",
        "a second package name 'bwa': one spec per list entry, dependencies after '^'",
        10,
    ),
    ("@1.17", "must start with a package name", 1),
    ("samtools@1@2", "a second version for 'samtools'", 11),
    ("samtools %gcc %clang", "a second compiler for 'samtools'", 15),
    ("samtools +mpi mpi=on", "'mpi' given twice", 15),
    ("samtools ^", "ends with '^' and no dependency", 10),
    ("samtools ^zlib ^zlib", "dependency 'zlib' given twice", 1),
]


@pytest.mark.parametrize(("text", "message", "column"), COLUMNS)
def test_each_refusal_says_what_and_where(text: str, message: str, column: int) -> None:
    with pytest.raises(SpecError) as raised:
        parse_spec(text)
    assert (str(raised.value), raised.value.column) == (message, column)
