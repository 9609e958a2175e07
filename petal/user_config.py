"""The user's settings: ~/.petal/config.yaml, environment overrides, defaults.

Precedence, highest first: command-line flags (applied by the commands), environment
variables, the config file, defaults. The Lambda resolver has no config file and reads
the same settings from its environment with `config_from_environment`.

    registry:
      url: https://raw.githubusercontent.com/scttfrdmn/petal-snapshots/main
      use_public_snapshots: false      # the official registry is opt-in
      trusted_accounts: ["999888777666", "123456789012"]
      cache_ttl_seconds: 3600
      timeout_seconds: 10
    snapshot_sources:                  # checked in this order; the first with a match wins
      - type: local                    # your own account
      - type: organization             # accounts that share snapshots with you
        account: "123456789012"
      - type: official
        enabled: true
      - type: community
        url: https://example.org/petal-registry
        enabled: false
    deployment:
      stack_name: petal
      region: us-east-1
      node_setup_uri: s3://bucket/node-setup/petal-node-setup.sh

A malformed file is a `UserConfigError` naming the file, line, field and fix.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final, Literal, cast
from urllib.parse import urlsplit

from petal.deployment_contract import ENV_NODE_SETUP_URI, ENV_REGISTRY_URL, ENV_TRUSTED_ACCOUNTS
from petal.errors import EXIT_INVALID, PetalError
from petal.identifiers import ACCOUNT_ID, REGION, Shape
from petal.validation import Vocabulary, control_character, locate, problems
from petal.yaml_source import YamlDocument, YamlSourceError, join_path, load_yaml_document

DEFAULT_REGISTRY_URL: Final = "https://raw.githubusercontent.com/scttfrdmn/petal-snapshots/main"
DEFAULT_STACK_NAME: Final = "petal"
DEFAULT_CACHE_TTL_SECONDS: Final = 3600
DEFAULT_TIMEOUT_SECONDS: Final = 10.0

ENV_CONFIG: Final = "PETAL_CONFIG"
ENV_USE_PUBLIC_SNAPSHOTS: Final = "PETAL_USE_PUBLIC_SNAPSHOTS"
ENV_SNAPSHOT_SOURCES: Final = "PETAL_SNAPSHOT_SOURCES"  # e.g. "local,organization,official"
ENV_STACK_NAME: Final = "PETAL_STACK_NAME"
ENV_REGION: Final = "PETAL_REGION"

SourceType = Literal["local", "organization", "official", "community"]
SOURCE_TYPES: Final[tuple[SourceType, ...]] = ("local", "organization", "official", "community")

_STACK_NAME: Final = Shape(r"^[A-Za-z][A-Za-z0-9-]{0,127}$")
_TRUE: Final = frozenset({"1", "true", "yes", "on"})
_FALSE: Final = frozenset({"0", "false", "no", "off", ""})


class UserConfigError(ValueError, PetalError):
    """A setting that cannot be used: where it is, which field, and the fix."""

    exit_code = EXIT_INVALID

    def __init__(self, source: str, field: str, message: str, line: int | None = None) -> None:
        self.source = source
        self.field = field
        self.line = line
        where = f"{source}:{line}" if line else source
        super().__init__(f"{where}: {field}: {message}" if field else f"{where}: {message}")


@dataclass(frozen=True)
class SnapshotSource:
    type: SourceType
    enabled: bool = True
    # Owners whose snapshots this source may return; empty means every trusted account.
    accounts: tuple[str, ...] = ()
    url: str | None = None  # registry sources: the registry's base URL

    @property
    def label(self) -> str:
        if self.type == "local":
            return "own account"
        if self.type == "organization":
            return "organization account"
        if self.type == "official":
            return "petal-official registry"
        return f"community registry {self.url}"


@dataclass(frozen=True)
class RegistrySettings:
    url: str = DEFAULT_REGISTRY_URL
    use_public_snapshots: bool = False
    trusted_accounts: tuple[str, ...] = ()
    cache_ttl_seconds: int = DEFAULT_CACHE_TTL_SECONDS
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS


@dataclass(frozen=True)
class DeploymentSettings:
    stack_name: str = DEFAULT_STACK_NAME
    region: str | None = None
    node_setup_uri: str | None = None


@dataclass(frozen=True)
class UserConfig:
    registry: RegistrySettings
    snapshot_sources: tuple[SnapshotSource, ...]
    deployment: DeploymentSettings
    path: Path | None = None  # the file that was read, if any
    # Whether the file listed snapshot_sources; if not, the defaults follow the
    # final settings (trusted accounts enable the organization source, and so on).
    explicit_sources: bool = False

    @property
    def trusted_accounts(self) -> frozenset[str]:
        """Every account whose snapshots may be used: the trusted list plus the accounts
        named by sources (naming an account in a source is trusting it)."""
        named = {a for s in self.snapshot_sources for a in s.accounts}
        return frozenset(self.registry.trusted_accounts) | named

    def owners_for(self, source: SnapshotSource) -> tuple[str, ...]:
        return source.accounts or tuple(sorted(self.registry.trusted_accounts))

    def enabled_sources(self) -> tuple[SnapshotSource, ...]:
        return tuple(s for s in self.snapshot_sources if s.enabled)

    def own_account_only(self) -> UserConfig:
        """The config with only the own-account source: where petal's builds are."""
        sources = tuple(s for s in self.snapshot_sources if s.type == "local")
        return replace(self, snapshot_sources=sources, explicit_sources=True)

    def with_registry_url(self, url: str) -> UserConfig:
        """The config with `--registry-url` applied: the official source reads it."""
        checked = check_url(url, "--registry-url")
        sources = tuple(
            replace(s, url=checked) if s.type == "official" else s for s in self.snapshot_sources
        )
        return replace(self, registry=replace(self.registry, url=checked), snapshot_sources=sources)


def default_config_path(environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    if env.get(ENV_CONFIG):
        return Path(env[ENV_CONFIG]).expanduser()
    return Path.home() / ".petal" / "config.yaml"


def check_url(value: str, field: str, source: str = "setting") -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UserConfigError(
            source, field, f"{value!r} is not an http(s) URL, e.g. {DEFAULT_REGISTRY_URL}"
        )
    return value.rstrip("/")


def load_user_config(
    path: str | Path | None = None, environ: Mapping[str, str] | None = None
) -> UserConfig:
    """The config file (`path`, else $PETAL_CONFIG, else ~/.petal/config.yaml, which may
    be absent) with environment overrides applied."""
    env = os.environ if environ is None else environ
    file = Path(path) if path is not None else default_config_path(env)
    if path is None and not file.exists():
        return _apply_environment(_parse({}, YamlDocument({}), "<defaults>", None), env)
    source = str(file)
    try:
        raw = file.read_bytes()
    except OSError as error:
        raise UserConfigError(source, "", f"cannot be read: {error.strerror}") from None
    if not _has_content(raw):
        return _apply_environment(_parse({}, YamlDocument({}), source, file), env)
    try:
        document = load_yaml_document(raw)
    except YamlSourceError as error:
        raise UserConfigError(source, error.path, str(error), error.line) from None
    if not isinstance(document.data, dict):
        raise UserConfigError(
            source, "", "must be a YAML mapping with registry, snapshot_sources, deployment", 1
        )
    return _apply_environment(_parse(document.data, document, source, file), env)


def config_from_environment(environ: Mapping[str, str] | None = None) -> UserConfig:
    """Settings from the environment alone (the Lambda resolver has no config file)."""
    env = os.environ if environ is None else environ
    return _apply_environment(_parse({}, YamlDocument({}), "<environment>", None), env)


def _has_content(raw: bytes) -> bool:
    for line in raw.decode("utf-8", errors="replace").splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#") and stripped != "---":
            return True
    return False


# --- the file ------------------------------------------------------------------------

CONFIG_SCHEMA: Final = "user_config.schema.json"
_WORDS: Final = Vocabulary(object="a mapping of settings", key="setting")


@dataclass(frozen=True)
class _Where:
    """Errors of the file, with its line of the field."""

    document: YamlDocument
    source: str

    def fail(self, field: str, message: str) -> UserConfigError:
        return UserConfigError(self.source, field, message, self.document.line_of(field))

    def account(self, value: str | int, field: str) -> str:
        # Unquoted YAML turns 123456789012 into a number, and one with a leading zero
        # would lose it: accept the number only when it is still 12 digits (the schema
        # has checked text already).
        text = str(value)
        if not ACCOUNT_ID.match(text):
            raise self.fail(
                field, "must be a 12-digit AWS account id in quotes, e.g. '012345678901'"
            )
        return text

    def accounts(self, values: list[str | int], field: str) -> tuple[str, ...]:
        return tuple(
            dict.fromkeys(self.account(v, join_path(field, i)) for i, v in enumerate(values))
        )


def _parse(
    data: dict[str, Any], document: YamlDocument, source: str, path: Path | None
) -> UserConfig:
    # An empty section (`registry:` alone) means its defaults.
    top = {key: value for key, value in data.items() if value is not None}
    found = locate(problems(top, CONFIG_SCHEMA, vocabulary=_WORDS), document)
    if found:
        raise UserConfigError(source, found[0].path, found[0].message, found[0].line)
    where = _Where(document, source)
    registry = _parse_registry(where, top.get("registry", {}))
    sources = _parse_sources(where, top.get("snapshot_sources"), registry)
    deployment = DeploymentSettings(**top.get("deployment", {}))
    explicit = "snapshot_sources" in top
    return UserConfig(registry, sources, deployment, path, explicit)


def _parse_registry(where: _Where, raw: dict[str, Any]) -> RegistrySettings:
    return RegistrySettings(
        url=str(raw.get("url", DEFAULT_REGISTRY_URL)).rstrip("/"),
        use_public_snapshots=raw.get("use_public_snapshots", False),
        trusted_accounts=where.accounts(
            raw.get("trusted_accounts", []), "registry.trusted_accounts"
        ),
        cache_ttl_seconds=raw.get("cache_ttl_seconds", DEFAULT_CACHE_TTL_SECONDS),
        timeout_seconds=float(raw.get("timeout_seconds", DEFAULT_TIMEOUT_SECONDS)),
    )


def _default_sources(registry: RegistrySettings) -> tuple[SnapshotSource, ...]:
    return (
        SnapshotSource("local"),
        SnapshotSource("organization", enabled=bool(registry.trusted_accounts)),
        SnapshotSource("official", enabled=registry.use_public_snapshots, url=registry.url),
    )


def _parse_sources(
    where: _Where, value: list[dict[str, Any]] | None, registry: RegistrySettings
) -> tuple[SnapshotSource, ...]:
    if value is None:
        return _default_sources(registry)
    parsed: list[tuple[int, int, SnapshotSource]] = []
    seen: set[tuple[str, str | None]] = set()
    for index, raw in enumerate(value):
        field = f"snapshot_sources[{index}]"
        source = _parse_source(where, raw, field, registry)
        key = (
            source.type,
            source.url if source.type != "organization" else ",".join(source.accounts),
        )
        if key in seen:
            raise where.fail(field, f"repeats an earlier {source.type} source; remove one")
        seen.add(key)
        parsed.append((raw.get("priority", 0), index, source))
    # `priority` (from the spec's examples) orders sources; without it, list order.
    return tuple(source for _, _, source in sorted(parsed, key=lambda p: (p[0], p[1])))


def _parse_source(
    where: _Where, raw: dict[str, Any], field: str, registry: RegistrySettings
) -> SnapshotSource:
    source_type = cast(SourceType, raw["type"])
    default_enabled = {
        "local": True,
        "organization": True,
        "official": registry.use_public_snapshots,
        "community": False,  # community registries are opt-in, always
    }[source_type]
    accounts: tuple[str, ...] = ()
    if "account" in raw:
        accounts = (where.account(raw["account"], join_path(field, "account")),)
    if "accounts" in raw:
        accounts += where.accounts(raw["accounts"], join_path(field, "accounts"))
    url: str | None = raw["url"].rstrip("/") if "url" in raw else None
    if source_type == "local" and (accounts or url):
        raise where.fail(field, "a local source is your own account: remove account/url")
    if source_type == "organization" and url:
        raise where.fail(join_path(field, "url"), "organization sources have no url")
    if source_type == "official":
        url = url or registry.url
    if source_type == "community" and url is None:
        raise where.fail(field, "a community source needs url: <registry base URL>")
    return SnapshotSource(source_type, raw.get("enabled", default_enabled), accounts, url)


# --- the environment -----------------------------------------------------------------


def _apply_environment(config: UserConfig, env: Mapping[str, str]) -> UserConfig:
    for name in _ENV_SETTINGS:
        # A value such as "us-east-1\n" (from $(cat file), say) would reach tags, URLs
        # and commands; none of these settings has a use for a control character.
        where = control_character(env.get(name, ""))
        if where:
            raise UserConfigError("environment", name, f"contains {where}: remove it")
    registry, deployment = config.registry, config.deployment
    sources = config.snapshot_sources
    if env.get(ENV_REGISTRY_URL):
        url = check_url(env[ENV_REGISTRY_URL], ENV_REGISTRY_URL, "environment")
        registry = replace(registry, url=url)
        sources = tuple(replace(s, url=url) if s.type == "official" else s for s in sources)
    if ENV_TRUSTED_ACCOUNTS in env:
        accounts = tuple(a.strip() for a in env[ENV_TRUSTED_ACCOUNTS].split(",") if a.strip())
        for account in accounts:
            if not ACCOUNT_ID.match(account):
                raise UserConfigError(
                    "environment",
                    ENV_TRUSTED_ACCOUNTS,
                    f"{account!r} is not a 12-digit AWS account id (comma-separate several)",
                )
        registry = replace(registry, trusted_accounts=tuple(dict.fromkeys(accounts)))
    if ENV_USE_PUBLIC_SNAPSHOTS in env:
        flag = _env_flag(env[ENV_USE_PUBLIC_SNAPSHOTS], ENV_USE_PUBLIC_SNAPSHOTS)
        registry = replace(registry, use_public_snapshots=flag)
    if ENV_SNAPSHOT_SOURCES in env:
        sources = _env_sources(env[ENV_SNAPSHOT_SOURCES], registry)
    elif not config.explicit_sources:
        sources = _default_sources(registry)
    if env.get(ENV_STACK_NAME):
        if not _STACK_NAME.match(env[ENV_STACK_NAME]):
            raise UserConfigError(
                "environment", ENV_STACK_NAME, f"{env[ENV_STACK_NAME]!r} is not a stack name"
            )
        deployment = replace(deployment, stack_name=env[ENV_STACK_NAME])
    if env.get(ENV_REGION):
        if not REGION.match(env[ENV_REGION]):
            raise UserConfigError(
                "environment", ENV_REGION, f"{env[ENV_REGION]!r} is not an AWS region"
            )
        deployment = replace(deployment, region=env[ENV_REGION])
    if env.get(ENV_NODE_SETUP_URI):
        uri = env[ENV_NODE_SETUP_URI]
        if not uri.startswith(("s3://", "https://")):
            raise UserConfigError(
                "environment", ENV_NODE_SETUP_URI, f"{uri!r} is not an s3:// or https:// URI"
            )
        deployment = replace(deployment, node_setup_uri=uri)
    return replace(config, registry=registry, snapshot_sources=sources, deployment=deployment)


_ENV_SETTINGS: Final = (
    ENV_REGISTRY_URL,
    ENV_TRUSTED_ACCOUNTS,
    ENV_USE_PUBLIC_SNAPSHOTS,
    ENV_SNAPSHOT_SOURCES,
    ENV_STACK_NAME,
    ENV_REGION,
    ENV_NODE_SETUP_URI,
)


def _env_flag(value: str, name: str) -> bool:
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise UserConfigError("environment", name, f"{value!r} is not true/false (or 1/0)")


def _env_sources(value: str, registry: RegistrySettings) -> tuple[SnapshotSource, ...]:
    sources: list[SnapshotSource] = []
    for name in (part.strip() for part in value.split(",")):
        if not name:
            continue
        if name not in SOURCE_TYPES or name == "community":
            raise UserConfigError(
                "environment",
                ENV_SNAPSHOT_SOURCES,
                f"{name!r} is not one of local, organization, official "
                "(community registries need the config file)",
            )
        url = registry.url if name == "official" else None
        sources.append(SnapshotSource(cast(SourceType, name), True, (), url))
    return tuple(sources)
