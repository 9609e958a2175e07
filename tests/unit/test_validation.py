"""The validation kit: one path format and one way of explaining each schema rule, for
every document petal checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from petal.build.request import BuildRequestError
from petal.errors import EXIT_FAILURE, EXIT_INVALID, PetalError
from petal.registry.documents import RegistryError
from petal.registry.publish import schema_problems
from petal.seed.model import SeedError
from petal.user_config import UserConfigError
from petal.validation import JSON, Problem, Vocabulary, load_schema, locate, problems
from petal.yaml_source import load_yaml_document

SCHEMAS = sorted((Path(__file__).resolve().parents[2] / "petal/schemas").glob("*.json"))
SEED = "seed.schema.json"


def messages(document: object, schema: str = SEED, **options: object) -> dict[str, str]:
    return {p.path: p.message for p in problems(document, schema, **options)}  # type: ignore[arg-type]


@pytest.mark.parametrize("path", SCHEMAS, ids=lambda p: p.name)
def test_every_schema_loads_once(path: Path) -> None:
    assert load_schema(path.name) is load_schema(path.name)
    assert load_schema(path.name)["$id"].endswith(path.name)


def test_paths_name_fields_and_list_indexes() -> None:
    seed = {"name": "a", "software": {"packages": ["bwa"], "mirrors": [{"name": "m", "url": 5}]}}
    assert messages(seed) == {"software.mirrors[0].url": "must be text, not a number (5)"}


def test_problems_are_in_field_order_with_numeric_indexes() -> None:
    queues = [{"name": "q", "min_count": -1}] * 11
    seed = {"name": "a", "software": {"packages": ["bwa"]}, "cluster": {"queues": queues}}
    paths = [p.path for p in problems(seed, SEED)]
    assert paths == [f"cluster.queues[{i}].min_count" for i in range(11)]


def test_each_rule_is_explained_with_its_fix() -> None:
    seed = {
        "name": "Bad Name",
        "softwre": {},
        "os": "al2023",
        "volume": {"size_gb": 0, "encrypted": "yes"},
    }
    assert messages(seed) == {
        "name": "'Bad Name' is not valid: use lowercase letters, digits and '-', starting "
        "with a letter or digit, at most 63 characters (e.g. bioinformatics)",
        "softwre": "unknown field (did you mean 'software'?); allowed here: architecture, "
        "build, cluster, description, name, os, software, volume",
        "software": "is required",
        "os": messages({"os": "al2023"})["os"],
        "volume.size_gb": "0 is out of range: must be from 1 to 16384 (volume size in GiB "
        "(gp3: 1 to 16384))",
        "volume.encrypted": "must be true or false, not text ('yes')",
    }
    assert messages({"os": "al2023"})["os"].startswith(
        "'al2023' is not allowed (did you mean 'alinux2023'?); use one of: alinux2023"
    )


def test_a_json_document_is_described_in_json_words() -> None:
    index = {"version": "1.0", "snapshots": {"a": True}}
    found = messages(index, "registry_index.schema.json", vocabulary=JSON)
    assert found == {"snapshots": "must be a list, not an object"}
    words = Vocabulary(key="setting")
    found = messages({"registery": {}}, "user_config.schema.json", vocabulary=words)
    assert found["registery"].startswith("unknown setting (did you mean 'registry'?)")


def test_a_title_names_what_the_value_must_be() -> None:
    config = "user_config.schema.json"
    assert messages({"registry": []}, config)["registry"] == (
        "must be a mapping with url, use_public_snapshots, trusted_accounts, "
        "cache_ttl_seconds, timeout_seconds, not a list"
    )
    assert messages({"registry": {"trusted_accounts": ["1"]}}, config) == {
        "registry.trusted_accounts[0]": "'1' is not a 12-digit AWS account id"
    }
    assert messages({"registry": {"cache_ttl_seconds": -1}}, config) == {
        "registry.cache_ttl_seconds": "must be a whole number from 0 to 2592000, not -1"
    }


def test_long_values_are_shortened() -> None:
    (problem,) = problems({"name": "x" * 200, "software": {"packages": ["bwa"]}}, SEED)
    assert problem.message.startswith("'" + "x" * 76 + "...")


def test_callers_may_word_some_rules_themselves() -> None:
    request = {"seed": {}, "seed_uri": "s3://bucket/k.yaml", "extra": 1}
    assert (
        problems(request, "build_request.schema.json", leave=("oneOf", "additionalProperties"))
        == []
    )
    assert len(problems(request, "build_request.schema.json")) == 2


def test_problems_are_located_in_the_yaml_file() -> None:
    document = load_yaml_document("name: a\nsoftware:\n  packages: [bwa]\n  modules: x\n")
    (problem,) = locate(problems(document.data, SEED), document)
    assert problem.line == 4
    assert problem.format("s.yaml").startswith("s.yaml:4: software.modules: 'x' is not allowed")
    warning = Problem("", "old", severity="warning")
    assert warning.format("s.yaml") == "s.yaml: warning: old"


def test_publish_checks_use_the_same_paths() -> None:
    entry = {"name": "bio", "fingerprint": "sha256:x", "aws_account": "1", "snapshots": []}
    assert schema_problems(entry, "entry") == [
        "aws_account: '1' is not valid: use 12-digit AWS account id that owns the snapshots",
        "fingerprint: 'sha256:x' is not valid: use sha256: followed by 64 lowercase hex "
        "digits, the same as in the index",
        "snapshots: must not be empty: one entry per region/os/architecture/size variant",
    ]
    assert schema_problems([], "index") == ["must be an object, not a list"]


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (SeedError("s.yaml", [Problem("", "bad")]), EXIT_INVALID),
        (BuildRequestError(["bad"]), EXIT_INVALID),
        (UserConfigError("c.yaml", "", "bad"), EXIT_INVALID),
        (RegistryError("https://r/index.json", "", "bad"), EXIT_FAILURE),
    ],
)
def test_input_errors_are_petal_errors_with_their_exit_code(error: PetalError, code: int) -> None:
    assert isinstance(error, PetalError)
    assert error.exit_code == code
    assert isinstance(error, RegistryError | ValueError)
