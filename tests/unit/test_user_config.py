"""~/.petal/config.yaml: defaults, the full format, environment overrides, and clear
errors (file, line, field, fix) for every malformed setting."""

from __future__ import annotations

from pathlib import Path

import pytest

from petal.user_config import (
    _STACK_NAME,
    CONFIG_SCHEMA,
    DEFAULT_REGISTRY_URL,
    SnapshotSource,
    UserConfigError,
    config_from_environment,
    default_config_path,
    load_user_config,
)
from petal.validation import load_schema

FULL = """\
# petal settings
registry:
  url: https://registry.example.org/petal/
  use_public_snapshots: true
  trusted_accounts: ["999888777666", "123456789012"]
  cache_ttl_seconds: 60
  timeout_seconds: 3
snapshot_sources:
  - type: local
  - type: organization
    account: "111111111111"
  - type: official
    enabled: true
  - type: community
    url: https://community.example.org/registry
deployment:
  stack_name: petal-test
  region: eu-west-1
  node_setup_uri: s3://petal-seeds/node-setup/petal-node-setup.sh
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def test_defaults_without_a_file(tmp_path: Path) -> None:
    config = load_user_config(environ={"PETAL_CONFIG": str(tmp_path / "absent.yaml")})
    assert config.path is None
    assert config.registry.url == DEFAULT_REGISTRY_URL
    assert config.registry.use_public_snapshots is False
    assert config.deployment.stack_name == "petal"
    assert config.deployment.region is None
    assert [s.type for s in config.enabled_sources()] == ["local"]
    assert config.trusted_accounts == frozenset()


def test_the_full_format(tmp_path: Path) -> None:
    config = load_user_config(write(tmp_path, FULL), environ={})
    assert config.registry.url == "https://registry.example.org/petal"
    assert config.registry.trusted_accounts == ("999888777666", "123456789012")
    assert (config.registry.cache_ttl_seconds, config.registry.timeout_seconds) == (60, 3.0)
    assert [s.type for s in config.snapshot_sources] == [
        "local",
        "organization",
        "official",
        "community",
    ]
    official = config.snapshot_sources[2]
    assert official.url == "https://registry.example.org/petal" and official.enabled
    community = config.snapshot_sources[3]
    assert community.enabled is False, "community registries are opt-in"
    assert config.owners_for(config.snapshot_sources[1]) == ("111111111111",)
    assert config.owners_for(official) == ("123456789012", "999888777666")
    assert config.trusted_accounts == {"999888777666", "123456789012", "111111111111"}
    assert config.deployment.stack_name == "petal-test"
    assert config.deployment.region == "eu-west-1"
    assert config.deployment.node_setup_uri == "s3://petal-seeds/node-setup/petal-node-setup.sh"


def test_trusted_accounts_enable_the_organization_source_by_default(tmp_path: Path) -> None:
    path = write(tmp_path, "registry:\n  trusted_accounts: ['111111111111']\n")
    config = load_user_config(path, environ={})
    assert [s.type for s in config.enabled_sources()] == ["local", "organization"]
    config = load_user_config(path, environ={"PETAL_USE_PUBLIC_SNAPSHOTS": "yes"})
    assert [s.type for s in config.enabled_sources()] == ["local", "organization", "official"]


def test_priority_orders_sources(tmp_path: Path) -> None:
    text = (
        "snapshot_sources:\n"
        "  - {type: official, priority: 3, enabled: true}\n"
        "  - {type: local, priority: 1}\n"
        "  - {type: organization, priority: 2, accounts: ['111111111111']}\n"
    )
    config = load_user_config(write(tmp_path, text), environ={})
    assert [s.type for s in config.snapshot_sources] == ["local", "organization", "official"]


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    env = {
        "PETAL_REGISTRY_URL": "http://127.0.0.1:8080/reg",
        "PETAL_TRUSTED_ACCOUNTS": "222222222222, 333333333333",
        "PETAL_STACK_NAME": "other",
        "PETAL_REGION": "us-west-2",
        "PETAL_NODE_SETUP_URI": "s3://b/k.sh",
    }
    config = load_user_config(write(tmp_path, FULL), environ=env)
    assert config.registry.url == "http://127.0.0.1:8080/reg"
    assert config.snapshot_sources[2].url == "http://127.0.0.1:8080/reg"
    assert config.registry.trusted_accounts == ("222222222222", "333333333333")
    assert config.deployment.stack_name == "other"
    assert config.deployment.region == "us-west-2"
    assert config.deployment.node_setup_uri == "s3://b/k.sh"


def test_lambda_settings_come_from_the_environment_alone() -> None:
    config = config_from_environment(
        {
            "PETAL_TRUSTED_ACCOUNTS": "111111111111",
            "PETAL_SNAPSHOT_SOURCES": "organization,local",
            "PETAL_REGISTRY_URL": "https://r.example.org",
        }
    )
    assert [s.type for s in config.snapshot_sources] == ["organization", "local"]
    assert config.registry.url == "https://r.example.org"


def test_registry_url_flag(tmp_path: Path) -> None:
    config = load_user_config(write(tmp_path, FULL), environ={})
    changed = config.with_registry_url("http://localhost:9/x/")
    assert changed.registry.url == "http://localhost:9/x"
    assert changed.snapshot_sources[2] == SnapshotSource(
        "official", True, (), "http://localhost:9/x"
    )
    with pytest.raises(UserConfigError, match="--registry-url: 'file:///x' is not an http"):
        config.with_registry_url("file:///x")


def test_an_empty_or_comment_only_file_means_defaults(tmp_path: Path) -> None:
    config = load_user_config(write(tmp_path, "# nothing yet\n\n"), environ={})
    assert config.registry.url == DEFAULT_REGISTRY_URL


def test_default_path(tmp_path: Path) -> None:
    assert default_config_path({"PETAL_CONFIG": str(tmp_path / "c.yaml")}) == tmp_path / "c.yaml"
    assert default_config_path({}) == Path.home() / ".petal" / "config.yaml"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("registry: [1, 2]\n", ":1: registry: must be a mapping with url"),
        ("registery:\n  url: x\n", ":1: registery: unknown setting (did you mean 'registry'?)"),
        (
            "registry:\n  ur1: https://x\n",
            ":2: registry.ur1: unknown setting (did you mean 'url'?)",
        ),
        ("registry:\n  url: ftp://x/y\n", ":2: registry.url: 'ftp://x/y' is not an http(s) URL"),
        (
            "registry:\n  use_public_snapshots: 'yes'\n",
            ":2: registry.use_public_snapshots: must be true or false, not text ('yes')",
        ),
        (
            "registry:\n  trusted_accounts: 123456789012\n",
            ":2: registry.trusted_accounts: must be a list of 12-digit AWS account ids",
        ),
        (
            "registry:\n  trusted_accounts:\n    - '12345'\n",
            ":3: registry.trusted_accounts[0]: '12345' is not a 12-digit AWS account id",
        ),
        (
            "registry:\n  trusted_accounts: [010101010101]\n",
            ":2: registry.trusted_accounts[0]: must be a 12-digit AWS account id in quotes",
        ),
        (
            "registry:\n  cache_ttl_seconds: -1\n",
            ":2: registry.cache_ttl_seconds: must be a whole number from 0 to 2592000",
        ),
        ("snapshot_sources: local\n", ":1: snapshot_sources: must be a list of sources"),
        (
            "snapshot_sources:\n  - type: personal\n",
            ":2: snapshot_sources[0].type: 'personal' is not a source type; use one of: local",
        ),
        (
            "snapshot_sources:\n  - type: community\n",
            ":2: snapshot_sources[0]: a community source needs url",
        ),
        (
            "snapshot_sources:\n  - type: local\n    account: '111111111111'\n",
            ":2: snapshot_sources[0]: a local source is your own account",
        ),
        (
            "snapshot_sources:\n  - type: local\n  - type: local\n",
            ":3: snapshot_sources[1]: repeats an earlier local source",
        ),
        (
            "snapshot_sources:\n  - type: official\n    enabled: on please\n",
            ":3: snapshot_sources[0].enabled: must be true or false",
        ),
        (
            "deployment:\n  stack_name: 9lives\n",
            ":2: deployment.stack_name: '9lives' is not valid: use e.g. petal",
        ),
        (
            "deployment:\n  region: Europe\n",
            ":2: deployment.region: 'Europe' is not valid: use e.g. us-east-1",
        ),
        (
            "deployment:\n  node_setup_uri: /tmp/x.sh\n",
            ":2: deployment.node_setup_uri: '/tmp/x.sh' is not an s3:// or https:// URI",
        ),
        ("- just\n- a list\n", ":1: must be a YAML mapping"),
        ("registry:\n  url: [unclosed\n", "YAML syntax error"),
        ("registry: {}\nregistry: {}\n", "registry is given twice"),
    ],
)
def test_malformed_files_name_file_line_and_field(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(UserConfigError) as caught:
        load_user_config(path, environ={})
    message = str(caught.value)
    assert message.startswith(str(path))
    assert expected in message


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"PETAL_REGISTRY_URL": "registry.example.org"}, "PETAL_REGISTRY_URL: 'registry.exa"),
        ({"PETAL_TRUSTED_ACCOUNTS": "1234,5678"}, "PETAL_TRUSTED_ACCOUNTS: '1234' is not"),
        ({"PETAL_USE_PUBLIC_SNAPSHOTS": "maybe"}, "PETAL_USE_PUBLIC_SNAPSHOTS: 'maybe'"),
        ({"PETAL_SNAPSHOT_SOURCES": "local,community"}, "PETAL_SNAPSHOT_SOURCES: 'community'"),
        ({"PETAL_REGION": "mars-1"}, "PETAL_REGION: 'mars-1' is not an AWS region"),
        ({"PETAL_STACK_NAME": "-x"}, "PETAL_STACK_NAME: '-x' is not a stack name"),
        ({"PETAL_NODE_SETUP_URI": "ftp://x"}, "PETAL_NODE_SETUP_URI: 'ftp://x' is not an s3"),
    ],
)
def test_bad_environment_values_name_the_variable(env: dict[str, str], expected: str) -> None:
    with pytest.raises(UserConfigError, match=r"^environment: ") as caught:
        config_from_environment(env)
    assert expected in str(caught.value)


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(UserConfigError, match="cannot be read"):
        load_user_config(tmp_path / "missing.yaml", environ={})


def test_unquoted_twelve_digit_accounts_are_accepted(tmp_path: Path) -> None:
    path = write(tmp_path, "registry:\n  trusted_accounts: [123456789012, '123456789012']\n")
    assert load_user_config(path, environ={}).registry.trusted_accounts == ("123456789012",)


def test_the_schema_and_the_environment_check_stack_names_alike() -> None:
    deployment = load_schema(CONFIG_SCHEMA)["properties"]["deployment"]["properties"]
    assert deployment["stack_name"]["pattern"] == _STACK_NAME.pattern


def test_a_url_scheme_in_capitals_is_accepted_in_the_file_as_on_the_command_line(
    tmp_path: Path,
) -> None:
    config = load_user_config(
        write(tmp_path, "registry:\n  url: HTTPS://example.com/reg\n"), environ={}
    )
    assert config.registry.url == config.with_registry_url("HTTPS://example.com/reg").registry.url
