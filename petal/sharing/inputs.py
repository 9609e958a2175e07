"""Checks of the sharing commands' arguments, before any AWS call."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from petal.aws.session import REGION_SETTINGS, region_problem
from petal.identifiers import ACCOUNT_ID, SNAPSHOT_ID
from petal.sharing.errors import InvalidArgument

if TYPE_CHECKING:
    pass

_REGISTRY_NAME: Final = re.compile(r"^[a-z0-9][a-z0-9._-]{0,99}$")


_KEY_ID: Final = (
    r"(?:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|mrk-[0-9a-f]{32})"
)


_ALIAS_NAME: Final = r"alias/[A-Za-z0-9/_-]{1,250}"


_KMS_KEY_ID: Final = re.compile(rf"^{_KEY_ID}$")


_KMS_ALIAS: Final = re.compile(rf"^{_ALIAS_NAME}$")


_KMS_ARN: Final = re.compile(
    rf"^arn:(?P<partition>aws[a-z-]*):kms:(?P<region>[a-z0-9-]+):(?P<account>[0-9]{{12}}):"
    rf"(?:key/{_KEY_ID}|{_ALIAS_NAME})$"
)


SNAPSHOT_ID_HELP: Final = (
    "snap- followed by 8 or 17 lowercase hex digits, e.g. snap-0123456789abcdef0"
)


def validate_snapshot_id(value: str, flag: str = "SNAPSHOT") -> str:
    value = value.strip()
    if not SNAPSHOT_ID.match(value):
        raise InvalidArgument(f"{flag}: {value!r} is not a snapshot id: use {SNAPSHOT_ID_HELP}")
    return value


def parse_account_ids(values: Iterable[str], flag: str = "--accounts") -> tuple[str, ...]:
    """Account ids from one or more comma-separated values, in order, without repeats."""
    accounts: list[str] = []
    for value in values:
        for item in value.split(","):
            account = item.strip()
            if not account:
                continue
            if not ACCOUNT_ID.match(account):
                raise InvalidArgument(
                    f"{flag}: {account!r} is not an AWS account id: use 12 digits, "
                    "e.g. --accounts 123456789012,210987654321"
                )
            if account not in accounts:
                accounts.append(account)
    if not accounts:
        raise InvalidArgument(f"{flag}: give at least one 12-digit AWS account id")
    return tuple(accounts)


def validate_region(value: str, flag: str = "--region") -> str:
    problem = region_problem(value, flag)
    if problem:
        raise InvalidArgument(problem)
    return value.strip()


def parse_regions(values: Iterable[str], flag: str) -> tuple[str, ...]:
    """Regions from one or more comma-separated values, in order, without repeats."""
    regions: list[str] = []
    for value in values:
        for item in value.split(","):
            if item.strip():
                region = validate_region(item, flag)
                if region not in regions:
                    regions.append(region)
    if not regions:
        raise InvalidArgument(f"{flag}: give at least one region, e.g. {flag} us-west-2,eu-west-1")
    return tuple(regions)


@dataclass(frozen=True)
class SnapshotRef:
    region: str
    snapshot_id: str

    def __str__(self) -> str:
        return f"{self.region}:{self.snapshot_id}"


def parse_snapshot_ref(
    value: str, default_region: str | None, flag: str = "SNAPSHOT", region_flag: str = "--region"
) -> SnapshotRef:
    """`snap-...` (in `default_region`) or `region:snap-...`."""
    region, sep, snapshot = value.strip().rpartition(":")
    if sep:
        return SnapshotRef(
            validate_region(region, f"{flag} {value!r}"), validate_snapshot_id(snapshot, flag)
        )
    snapshot_id = validate_snapshot_id(snapshot, flag)
    if default_region is None:
        raise InvalidArgument(
            f"no AWS region for {snapshot_id}: pass {region_flag} REGION or write "
            f"REGION:{snapshot_id}; or {REGION_SETTINGS}"
        )
    return SnapshotRef(default_region, snapshot_id)


def validate_kms_key(value: str, regions: Sequence[str], flag: str = "--kms-key") -> str:
    """A key id, key ARN, alias/NAME or alias ARN. KMS keys are regional: an ARN names
    its region, which must be every destination's."""
    key = value.strip()
    if _KMS_KEY_ID.match(key) or _KMS_ALIAS.match(key):
        return key
    match = _KMS_ARN.match(key)
    if match is None:
        raise InvalidArgument(
            f"{flag}: {key!r} is not a KMS key: use a key id, a key ARN, alias/NAME or an alias ARN"
        )
    others = [r for r in regions if r != match["region"]]
    if others:
        raise InvalidArgument(
            f"{flag}: the key {key} is in {match['region']}, but the copy goes to "
            f"{', '.join(others)}; KMS keys are regional. Use alias/NAME with an alias "
            "defined in every destination region, or copy one region at a time."
        )
    return key


def validate_registry_name(value: str, flag: str = "--name") -> str:
    if not _REGISTRY_NAME.match(value):
        raise InvalidArgument(
            f"{flag}: {value!r} is not a registry name: use lowercase letters, digits, '.', "
            "'_' and '-', starting with a letter or digit, at most 100 characters "
            "(e.g. bioinformatics-v1)"
        )
    return value
