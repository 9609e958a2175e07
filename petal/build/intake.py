"""Starting a build when a seed is uploaded to the seed bucket (the intake function).

S3 delivers "Object Created" through EventBridge at least once, so the same object
version may arrive twice, even at the same time. The build id (and execution name) is
derived from bucket, key and version, and an intake marker in the builds table
records the start: the second delivery finds the marker, the build's record or the
execution, and starts nothing and writes over nothing (records are created
conditionally). Only the seed bucket's seeds/ is read, whatever the rule sends.
A seed that does not validate (or cannot be read, or is too large, or, by a
bug, cannot be checked at all) is recorded as a FAILED build with the reason; nothing is
launched, and no upload goes without a record.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from petal.aws import step_functions
from petal.build.records import BuildFailure, BuildRecord, iso
from petal.build.request import BuildRequestError, SeedReader, seed_location_problem
from petal.build.table import BuildIdTaken, BuildTable
from petal.errors import PetalStepError
from petal.seed.fingerprint import fingerprint
from petal.seed.loading import check_seed_size, parse_seed
from petal.seed.model import SeedError

# Duplicate deliveries come within hours; a week of markers is plenty.
MARKER_LIFETIME: Final = timedelta(days=7)
_UNSAFE: Final = re.compile(r"[^a-z0-9-]+")
# (bucket, key, version id) -> the object's size in bytes.
ObjectSize = Callable[[str, str, str | None], int]


class NotASeedUpload(PetalStepError, ValueError):
    """The event is not an S3 Object Created event (the rule should not send it)."""


@dataclass(frozen=True)
class SeedUpload:
    bucket: str
    key: str
    version_id: str | None
    etag: str | None
    size: int | None = None  # bytes, as the event says

    @property
    def version(self) -> str:
        """What tells two uploads of one key apart (the ETag in unversioned buckets)."""
        if self.version_id and self.version_id != "null":
            return self.version_id
        return f"etag-{self.etag or 'none'}"

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


@dataclass(frozen=True)
class IntakeResult:
    build_id: str
    started: bool
    reason: str
    execution_arn: str | None = None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


def seed_upload(event: Mapping[str, Any]) -> SeedUpload:
    detail = event.get("detail")
    if event.get("detail-type") != "Object Created" or not isinstance(detail, Mapping):
        raise NotASeedUpload(f"not an S3 Object Created event: {event.get('detail-type')!r}")
    try:
        bucket = str(detail["bucket"]["name"])
        obj = detail["object"]
        key = str(obj["key"])
    except (KeyError, TypeError):
        raise NotASeedUpload("the event has no detail.bucket.name / detail.object.key") from None
    size = obj.get("size")
    # bool is an int too; a size that is not a count is ignored (the read is checked too).
    size = size if isinstance(size, int) and not isinstance(size, bool) else None
    return SeedUpload(bucket, key, obj.get("version-id"), obj.get("etag"), size)


def intake_build_id(upload: SeedUpload) -> str:
    """The same object version always gets the same id: <key stem>-<hash of bucket/key/version>."""
    digest = hashlib.sha256(f"{upload.bucket}/{upload.key}#{upload.version}".encode()).hexdigest()
    stem = upload.key.rsplit("/", 1)[-1].rsplit(".", 1)[0].lower()
    stem = _UNSAFE.sub("-", stem).strip("-")[:40] or "seed"
    return f"{stem}-{digest[:16]}"


def on_seed_uploaded(
    event: Mapping[str, Any],
    *,
    read_seed: SeedReader,
    table: BuildTable,
    sfn: Any,
    state_machine_arn: str,
    now: datetime,
    seed_bucket: str | None = None,
    object_size: ObjectSize | None = None,
) -> IntakeResult:
    """`seed_bucket`: the deployment's (None only in tests of the seed checks);
    `object_size`: the object's size, asked when the event has no size."""
    upload = seed_upload(event)
    build_id = intake_build_id(upload)
    source = upload.uri + (f"?versionId={upload.version_id}" if upload.version_id else "")
    if seed_bucket is not None:
        problem = seed_location_problem(upload.bucket, upload.key, seed_bucket)
        if problem is not None:
            # Not a seed upload of this deployment: nothing is read, written or started.
            return IntakeResult(build_id, False, f"ignored: {problem}")
    done = _already_handled(table, upload, build_id)
    if done is not None:
        return done

    def invalid(error: Exception) -> IntakeResult:
        message = f"the uploaded seed is invalid:\n{error}\nFix it and upload it again."
        return _failed(table, build_id, source, now, "InvalidSeed", message)

    try:
        size = upload.size
        if size is None and object_size is not None:
            size = object_size(upload.bucket, upload.key, upload.version_id)
        if size is not None:
            # The size alone decides: refused before the object is even read.
            check_seed_size(size, source)
        # Other errors (S3 trouble) propagate: EventBridge delivers the event again.
        raw = read_seed(upload.bucket, upload.key, upload.version_id)
    except (SeedError, BuildRequestError) as error:
        return invalid(error)
    try:
        seed = parse_seed(raw, source)
    except SeedError as error:
        return invalid(error)
    except Exception as error:  # whatever it is, the upload gets its record
        # A seed that crashes the checks is a petal bug, not the uploader's.
        message = (
            f"petal could not check the uploaded seed ({type(error).__name__}: {error}); "
            "this is a petal bug: report it with the seed"
        )
        return _failed(table, build_id, source, now, "SeedCheckFailed", message)

    marker = table.claim_intake(
        upload.bucket,
        upload.key,
        upload.version,
        build_id=build_id,
        now=now,
        expires_at=now + MARKER_LIFETIME,
    )
    if not marker.created and marker.execution_arn:
        return IntakeResult(
            marker.build_id, False, "duplicate delivery: already started", marker.execution_arn
        )
    request: dict[str, Any] = {
        "seed_uri": upload.uri,
        "build_id": marker.build_id,
        "source": f"intake {source}",
    }
    if upload.version_id and upload.version_id != "null":
        request["seed_version_id"] = upload.version_id
    # The name is the build id: a second StartExecution with it starts nothing.
    arn, started = step_functions.start_execution(sfn, state_machine_arn, marker.build_id, request)
    table.mark_intake_started(upload.bucket, upload.key, upload.version, arn)
    reason = f"started a build of {seed.name} ({fingerprint(seed)})"
    if not started:
        reason = "duplicate delivery: the execution exists already"
    return IntakeResult(marker.build_id, started, reason, arn)


def _already_handled(table: BuildTable, upload: SeedUpload, build_id: str) -> IntakeResult | None:
    """A repeated delivery of an object version that was handled: started (the
    marker names the execution) or recorded (a rejected seed, or a build under way or
    finished). None for a first delivery, or one whose predecessor stopped before
    starting anything (it then finishes the job: StartExecution is idempotent by name)."""
    marker = table.get_intake(upload.bucket, upload.key, upload.version)
    if marker is not None and marker.execution_arn:
        return IntakeResult(
            marker.build_id, False, "duplicate delivery: already started", marker.execution_arn
        )
    record = table.get_build(build_id)
    if record is not None:
        return IntakeResult(
            build_id,
            False,
            f"duplicate delivery: build {build_id} is recorded ({record.status.lower()})",
            record.execution_arn,
        )
    return None


def _failed(
    table: BuildTable, build_id: str, source: str, now: datetime, kind: str, message: str
) -> IntakeResult:
    # Created only if no record has this id: a duplicate delivery racing this one, or
    # a build of this version, is never overwritten (a SUCCEEDED build stays so, and a
    # running build keeps its execution's record, so its cleanup still owns it).
    try:
        table.create_build(
            BuildRecord(
                build_id=build_id,
                status="FAILED",
                started_at=iso(now),
                finished_at=iso(now),
                seed_source=source,
                step="intake",
                error=BuildFailure(step="intake", error=kind, cause=message),
            )
        )
    except BuildIdTaken:
        return IntakeResult(build_id, False, "duplicate delivery: the build is recorded already")
    return IntakeResult(build_id, False, "invalid seed; recorded as a failed build", error=message)
