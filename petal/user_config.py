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

import difflib
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final, Literal, cast
from urllib.parse import urlsplit

from petal.deployment_contract import ENV_NODE_SETUP_URI, ENV_REGISTRY_URL, ENV_TRUSTED_ACCOUNTS
from petal.identifiers import ACCOUNT_ID, REGION
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

_STACK_NAME: Final = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,127}$")
_TRUE: Final = frozenset({"1", "true", "yes", "on"})
_FALSE: Final = frozenset({"0", "false", "no", "off", ""})


class UserConfigError(ValueError):
    """A setting that cannot be used: where it is, which field, and the fix."""

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
        raise UserConfigError(source, "", str(error), error.line) from None
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


class _Reader:
    """Typed access to the parsed YAML with errors that carry file, line and field."""

    def __init__(self, document: YamlDocument, source: str) -> None:
        self.document = document
        self.source = source

    def fail(self, field: str, message: str) -> UserConfigError:
        return UserConfigError(self.source, field, message, self.document.line_of(field))

    def mapping(self, value: Any, field: str, allowed: Sequence[str]) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.fail(field, f"must be a mapping with {', '.join(allowed)}")
        for key in value:
            if key not in allowed:
                close = difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.6)
                hint = f" (did you mean '{close[0]}'?)" if close else ""
                raise self.fail(
                    join_path(field, str(key)),
                    f"unknown setting{hint}; allowed here: {', '.join(allowed)}",
                )
        return value

    def boolean(self, value: Any, field: str) -> bool:
        if not isinstance(value, bool):
            raise self.fail(field, f"must be true or false, not {value!r}")
        return value

    def integer(self, value: Any, field: str, low: int, high: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise self.fail(field, f"must be a whole number from {low} to {high}, not {value!r}")
        return value

    def number(self, value: Any, field: str, low: float, high: float) -> float:
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not low <= value <= high
        ):
            raise self.fail(field, f"must be a number from {low:g} to {high:g}, not {value!r}")
        return float(value)

    def string(self, value: Any, field: str, pattern: re.Pattern[str], example: str) -> str:
        if not isinstance(value, str) or not pattern.match(value):
            raise self.fail(field, f"{value!r} is not valid: use e.g. {example}")
        return value

    def url(self, value: Any, field: str) -> str:
        if not isinstance(value, str):
            raise self.fail(field, f"must be an http(s) URL, not {value!r}")
        try:
            return check_url(value, field, self.source)
        except UserConfigError as error:
            raise self.fail(field, str(error).split(": ", 2)[-1]) from None

    def account(self, value: Any, field: str) -> str:
        # Unquoted YAML turns 123456789012 into a number, and one with a leading zero
        # would lose it: accept the number only when it is still 12 digits.
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
            if not ACCOUNT_ID.match(value):
                raise self.fail(
                    field, "must be a 12-digit AWS account id in quotes, e.g. '012345678901'"
                )
        if not isinstance(value, str) or not ACCOUNT_ID.match(value):
            raise self.fail(field, f"{value!r} is not a 12-digit AWS account id")
        return value

    def accounts(self, value: Any, field: str) -> tuple[str, ...]:
        if not isinstance(value, list):
            raise self.fail(field, "must be a list of 12-digit AWS account ids in quotes")
        return tuple(
            dict.fromkeys(self.account(v, join_path(field, i)) for i, v in enumerate(value))
        )


def _parse(
    data: dict[str, Any], document: YamlDocument, source: str, path: Path | None
) -> UserConfig:
    read = _Reader(document, source)
    top = read.mapping(data, "", ("registry", "snapshot_sources", "deployment"))
    registry = _parse_registry(read, top.get("registry"))
    sources = _parse_sources(read, top.get("snapshot_sources"), registry)
    deployment = _parse_deployment(read, top.get("deployment"))
    explicit = top.get("snapshot_sources") is not None
    return UserConfig(registry, sources, deployment, path, explicit)


def _parse_registry(read: _Reader, value: Any) -> RegistrySettings:
    allowed = ("url", "use_public_snapshots", "trusted_accounts", "cache_ttl_seconds")
    raw = read.mapping(value, "registry", (*allowed, "timeout_seconds"))
    settings = RegistrySettings()
    if "url" in raw:
        settings = replace(settings, url=read.url(raw["url"], "registry.url"))
    if "use_public_snapshots" in raw:
        flag = read.boolean(raw["use_public_snapshots"], "registry.use_public_snapshots")
        settings = replace(settings, use_public_snapshots=flag)
    if "trusted_accounts" in raw:
        accounts = read.accounts(raw["trusted_accounts"], "registry.trusted_accounts")
        settings = replace(settings, trusted_accounts=accounts)
    if "cache_ttl_seconds" in raw:
        ttl = read.integer(raw["cache_ttl_seconds"], "registry.cache_ttl_seconds", 0, 30 * 86400)
        settings = replace(settings, cache_ttl_seconds=ttl)
    if "timeout_seconds" in raw:
        timeout = read.number(raw["timeout_seconds"], "registry.timeout_seconds", 1, 300)
        settings = replace(settings, timeout_seconds=timeout)
    return settings


def _default_sources(registry: RegistrySettings) -> tuple[SnapshotSource, ...]:
    return (
        SnapshotSource("local"),
        SnapshotSource("organization", enabled=bool(registry.trusted_accounts)),
        SnapshotSource("official", enabled=registry.use_public_snapshots, url=registry.url),
    )


def _parse_sources(
    read: _Reader, value: Any, registry: RegistrySettings
) -> tuple[SnapshotSource, ...]:
    if value is None:
        return _default_sources(registry)
    if not isinstance(value, list) or not value:
        raise read.fail("snapshot_sources", "must be a list of sources, e.g. - type: local")
    allowed = ("type", "enabled", "account", "accounts", "url", "priority", "name")
    parsed: list[tuple[int, int, SnapshotSource]] = []
    seen: set[tuple[str, str | None]] = set()
    for index, item in enumerate(value):
        field = f"snapshot_sources[{index}]"
        raw = read.mapping(item, field, allowed)
        kind = raw.get("type")
        if kind not in SOURCE_TYPES:
            raise read.fail(
                join_path(field, "type"),
                f"{kind!r} is not a source type; use one of: {', '.join(SOURCE_TYPES)}",
            )
        source_type = cast(SourceType, kind)
        default_enabled = {
            "local": True,
            "organization": True,
            "official": registry.use_public_snapshots,
            "community": False,  # community registries are opt-in, always
        }[source_type]
        enabled = (
            read.boolean(raw["enabled"], join_path(field, "enabled"))
            if "enabled" in raw
            else default_enabled
        )
        accounts: tuple[str, ...] = ()
        if "account" in raw:
            accounts = (read.account(raw["account"], join_path(field, "account")),)
        if "accounts" in raw:
            accounts += read.accounts(raw["accounts"], join_path(field, "accounts"))
        url: str | None = None
        if "url" in raw:
            url = read.url(raw["url"], join_path(field, "url"))
        if source_type == "local" and (accounts or url):
            raise read.fail(field, "a local source is your own account: remove account/url")
        if source_type == "organization" and url:
            raise read.fail(join_path(field, "url"), "organization sources have no url")
        if source_type == "official":
            url = url or registry.url
        if source_type == "community" and url is None:
            raise read.fail(field, "a community source needs url: <registry base URL>")
        key = (source_type, url if source_type != "organization" else ",".join(accounts))
        if key in seen:
            raise read.fail(field, f"repeats an earlier {source_type} source; remove one")
        seen.add(key)
        priority = 0
        if "priority" in raw:
            priority = read.integer(raw["priority"], join_path(field, "priority"), 0, 1000)
        parsed.append((priority, index, SnapshotSource(source_type, enabled, accounts, url)))
    # `priority` (from the spec's examples) orders sources; without it, list order.
    return tuple(source for _, _, source in sorted(parsed, key=lambda p: (p[0], p[1])))


def _parse_deployment(read: _Reader, value: Any) -> DeploymentSettings:
    raw = read.mapping(value, "deployment", ("stack_name", "region", "node_setup_uri"))
    settings = DeploymentSettings()
    if "stack_name" in raw:
        name = read.string(raw["stack_name"], "deployment.stack_name", _STACK_NAME, "petal")
        settings = replace(settings, stack_name=name)
    if "region" in raw:
        region = read.string(raw["region"], "deployment.region", REGION, "us-east-1")
        settings = replace(settings, region=region)
    if "node_setup_uri" in raw:
        uri = raw["node_setup_uri"]
        if not isinstance(uri, str) or not uri.startswith(("s3://", "https://")):
            raise read.fail(
                "deployment.node_setup_uri",
                f"{uri!r} is not an s3:// or https:// URI of the node setup script",
            )
        settings = replace(settings, node_setup_uri=uri)
    return settings


# --- the environment -----------------------------------------------------------------


def _apply_environment(config: UserConfig, env: Mapping[str, str]) -> UserConfig:
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
