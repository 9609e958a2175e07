"""The input of one build: which seed, for which variant, with which options.

`parse_build_request` checks an execution's input against
petal/schemas/build_request.schema.json and says, for every problem, which field and
how to fix it. `resolve_seed` then turns the request into a validated `Seed` (inline,
or read from S3), with the request's os/architecture overrides applied before the
seed's own validation runs, so an override that does not fit the seed (an x86_64
instance type built for arm64) is reported like any other seed problem.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Protocol

from petal.deployment_contract import SEED_PREFIX
from petal.errors import EXIT_INVALID, PetalError
from petal.identifiers import BUILD_ID
from petal.platforms import OPERATING_SYSTEMS, UnknownOperatingSystem
from petal.platforms import operating_system as lookup_operating_system
from petal.seed.loading import parse_seed, parse_seed_mapping
from petal.seed.model import Seed, SeedError
from petal.validation import JSON, Problem, load_schema
from petal.validation import problems as schema_problems

SCHEMA: Final = "build_request.schema.json"

# The request's parent that stands for the newest completed snapshot of the same seed
# name and variant (`petal build --from auto`).
AUTO_PARENT: Final = "auto"

_S3_URI: Final = re.compile(r"s3://(?P<bucket>[a-z0-9][a-z0-9.-]{1,61}[a-z0-9])/(?P<key>.+)")


class BuildRequestError(ValueError, PetalError):
    """The request cannot be built; the message names each field and its fix."""

    exit_code = EXIT_INVALID

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid build request: " + "; ".join(problems))


@dataclass(frozen=True)
class BuildRequest:
    seed: Mapping[str, Any] | None
    seed_uri: str | None
    seed_version_id: str | None
    force: bool
    build_id: str | None
    os: str | None
    architecture: str | None
    source: str | None
    builder_ami: str | None = None
    # A snapshot id, or AUTO_PARENT: Prepare resolves it (petal.build.parent).
    parent: str | None = None

    @property
    def seed_source(self) -> str:
        """How the seed is named in messages and in the build record."""
        if self.seed_uri is None:
            return "seed"
        suffix = f"?versionId={self.seed_version_id}" if self.seed_version_id else ""
        return self.seed_uri + suffix

    def to_document(self) -> dict[str, Any]:
        """The request as execution input (what `parse_build_request` reads)."""
        document: dict[str, Any] = {
            "seed": dict(self.seed) if self.seed is not None else None,
            "seed_uri": self.seed_uri,
            "seed_version_id": self.seed_version_id,
            "force": self.force or None,
            "build_id": self.build_id,
            "os": self.os,
            "architecture": self.architecture,
            "builder_ami": self.builder_ami,
            "parent": self.parent,
            "source": self.source,
        }
        return {k: v for k, v in document.items() if v is not None}


def build_request_schema() -> dict[str, Any]:
    return load_schema(SCHEMA)


def parse_build_request(data: Any) -> BuildRequest:
    if not isinstance(data, Mapping):
        raise BuildRequestError(
            [
                "the input must be a JSON object such as "
                '{"seed_uri": "s3://bucket/seeds/name.yaml"} or {"seed": {...}}'
            ]
        )
    problems: list[str] = []
    has_seed, has_uri = "seed" in data, "seed_uri" in data
    if has_seed == has_uri:
        problems.append(
            "give exactly one of 'seed' (the seed as a mapping) or 'seed_uri' "
            "(s3://BUCKET/KEY of a seed file)"
            + ("; both were given" if has_seed else "; neither was given")
        )
    properties = build_request_schema()["properties"]
    unknown = sorted(set(data) - set(properties))
    if unknown:
        problems.append(
            f"unknown field(s) {', '.join(unknown)}; allowed: {', '.join(sorted(properties))}"
        )
    # Both rules are worded above; the rest say how to fix each field.
    for problem in schema_problems(
        dict(data), SCHEMA, vocabulary=JSON, leave=("oneOf", "additionalProperties")
    ):
        problems.append(_with_description(problem, properties))
    if problems:
        raise BuildRequestError(problems)

    os_name = data.get("os")
    if os_name is not None:
        try:
            os_name = lookup_operating_system(os_name).name
        except UnknownOperatingSystem:
            raise BuildRequestError(
                [f"os: {os_name!r} is not known; use one of {', '.join(OPERATING_SYSTEMS)}"]
            ) from None
    return BuildRequest(
        seed=data.get("seed"),
        seed_uri=data.get("seed_uri"),
        seed_version_id=data.get("seed_version_id"),
        force=bool(data.get("force", False)),
        build_id=data.get("build_id"),
        os=os_name,
        architecture=data.get("architecture"),
        source=data.get("source"),
        builder_ami=data.get("builder_ami"),
        parent=data.get("parent"),
    )


def _with_description(problem: Problem, properties: Mapping[str, Any]) -> str:
    """The problem, and what its field is for unless the message already says it."""
    field = re.split(r"[.\[]", problem.path, maxsplit=1)[0]
    description = properties.get(field, {}).get("description", "")
    if description and description not in problem.message:
        return f"{problem} ({description})"
    return str(problem)


def split_s3_uri(uri: str) -> tuple[str, str]:
    match = _S3_URI.fullmatch(uri)
    if match is None:
        raise BuildRequestError([f"seed_uri: {uri!r} is not an s3://BUCKET/KEY URI"])
    return match["bucket"], match["key"]


class SeedReader(Protocol):
    """Reads the bytes of an S3 object (petal.builder_s3 adapts a boto3 client)."""

    def __call__(self, bucket: str, key: str, version_id: str | None) -> bytes: ...


def resolve_seed(request: BuildRequest, read_object: SeedReader) -> Seed:
    """The seed the request builds, overrides applied; raises SeedError or BuildRequestError.

    The overrides are applied to the seed as written, before its validation: defaults
    that follow the architecture (the builder's instance type) are then chosen for the
    overriding one, and a rocky override is checked for its builder image."""
    overrides = request_overrides(request)
    source = request.seed_source
    if overrides:
        described = ", ".join(f"{k}={v}" for k, v in overrides.items())
        source = f"{source} (with {described} from the build request)"
    if request.seed is not None:
        return parse_seed_mapping(dict(request.seed), source, overrides)
    assert request.seed_uri is not None  # parse_build_request guarantees one of both
    bucket, key = split_s3_uri(request.seed_uri)
    raw = read_object(bucket, key, request.seed_version_id)
    # Parsed from the bytes, so problems carry the file's line numbers; parse_seed
    # applies the seed size limit, the same one `petal seed validate` and intake apply.
    return parse_seed(raw, source, overrides)


def seed_location_problem(bucket: str, key: str, seed_bucket: str) -> str | None:
    """Why s3://bucket/key is not a seed petal builds from (None: it is): only the
    deployment's seed bucket, under seeds/, whatever the EventBridge rule and IAM let
    through (a rule edited by hand, an event replayed from elsewhere)."""
    if bucket != seed_bucket:
        return f"s3://{bucket}/{key} is not in the seed bucket {seed_bucket}"
    if not key.startswith(SEED_PREFIX) or key == SEED_PREFIX:
        return f"s3://{bucket}/{key} is not under {SEED_PREFIX} in the seed bucket"
    return None


def request_overrides(request: BuildRequest) -> dict[str, str]:
    """The seed fields the request sets, as seed paths."""
    overrides: dict[str, str] = {}
    if request.os is not None:
        overrides["os"] = request.os
    if request.architecture is not None:
        overrides["architecture"] = request.architecture
    if request.builder_ami is not None:
        overrides["build.image"] = request.builder_ami
    return overrides


def new_build_id(seed_name: str, now: datetime, token: str | None = None) -> str:
    """A build id for a new build: <seed>-<UTC time>-<random>, at most 64 characters.

    The CLI passes it as the execution name too, so the execution, the build record
    and every tag carry the same id.
    """
    stamp = now.strftime("%Y%m%d%H%M%S")
    suffix = token or secrets.token_hex(3)
    head = seed_name[: 64 - len(stamp) - len(suffix) - 2].rstrip("-")
    return f"{head}-{stamp}-{suffix}"


def check_build_id(build_id: str, field: str = "build_id") -> str:
    if not BUILD_ID.match(build_id):
        raise BuildRequestError(
            [
                f"{field}: {build_id!r} cannot be a build id: use letters, digits and '-', "
                "starting with a letter or digit, at most 64 characters"
            ]
        )
    return build_id


__all__ = [
    "BuildRequest",
    "BuildRequestError",
    "SeedError",
    "check_build_id",
    "new_build_id",
    "parse_build_request",
    "resolve_seed",
]
