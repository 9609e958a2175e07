"""Build step Prepare: validate the request and seed, fingerprint, find the builder's
AMI (the official one, or the seed's build.image checked against the deployment); reuse
a completed snapshot of the same software, or record the build and take its lock."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, Final
from urllib.parse import urlsplit

from petal.aws import ec2_builder, ec2_snapshots
from petal.build.config import BuildConfig, CostLimits
from petal.build.parent import Parent, resolve_parent
from petal.build.records import BuildRecord, iso
from petal.build.request import (
    BuildRequest,
    BuildRequestError,
    SeedReader,
    check_build_id,
    parse_build_request,
    resolve_seed,
    seed_location_problem,
    split_s3_uri,
)
from petal.build.table import BuildIdTaken, BuildTable
from petal.deployment_contract import (
    MANAGED_VALUE,
    SEED_PREFIX,
    TAG_ARCH,
    TAG_FINGERPRINT,
    TAG_MANAGED,
    TAG_OS,
)
from petal.errors import BuildAlreadyRunning, ConfigurationError, InvalidBuildRequest
from petal.seed.fingerprint import fingerprint
from petal.seed.model import Seed, SeedError
from petal.seed.spack_environment import render_spack_yaml

# SSM stops the bootstrap this long before the task's own timeout, so a timed-out
# install ends as a TimedOut command (with its log tail in the cause) rather than as an
# anonymous States.Timeout.
COMMAND_TIMEOUT_MARGIN_SECONDS: Final = 300


SSM_MAX_EXECUTION_TIMEOUT: Final = 172800


# A lock whose build vanished without cleanup (StopExecution) expires after the
# longest build could have run, plus this; the janitor usually releases it sooner.
LOCK_GRACE: Final = timedelta(hours=6)


# The bootstrap's heartbeat interval is this fraction of the task's HeartbeatSeconds:
# two heartbeats may be lost before the task times out.
HEARTBEATS_PER_WINDOW: Final = 3


MAX_SCRIPT_HEARTBEAT_SECONDS: Final = 9999


def managed_snapshot_tags(fingerprint_: str, os_name: str, architecture: str) -> dict[str, str]:
    """The tags that identify a completed build of one software variant."""
    return {
        TAG_MANAGED: MANAGED_VALUE,
        TAG_FINGERPRINT: fingerprint_,
        TAG_OS: os_name,
        TAG_ARCH: architecture,
    }


def check_mirror_buckets(seed: Seed, allowed: frozenset[str]) -> None:
    """Every s3:// mirror must be in a bucket the builder role may read: otherwise
    Spack's fetches fail with AccessDenied on the builder, after its set-up."""
    for index, mirror in enumerate(seed.software.mirrors):
        parts = urlsplit(mirror.url)
        if parts.scheme != "s3" or parts.netloc in allowed:
            continue
        listed = ", ".join(sorted(allowed)) or "none"
        raise InvalidBuildRequest(
            f"software.mirrors[{index}] ({mirror.name}): the builder may not read the "
            f"S3 bucket {parts.netloc!r} (petal:mirrorBuckets lists {listed}). Add the "
            f"bucket to the petal:mirrorBuckets setting and redeploy (e.g. `cdk deploy -c "
            f"petal:mirrorBuckets={','.join(sorted({*allowed, parts.netloc}))}`), or use "
            "an https:// mirror. Nothing was created."
        )


def check_cost_limits(seed: Seed, limits: CostLimits) -> None:
    """The deployment's cost guard rails: a build may not ask for an instance type, a
    volume or a run time beyond them. Each refusal names the seed field, the limit and
    the setting that raises it. The launch role's ec2:InstanceType condition allows the
    same patterns, so an instance type refused here would fail RunInstances anyway."""
    refused: list[str] = []
    instance_type = seed.build.instance_type
    if not limits.allows_instance_type(instance_type):
        allowed = ",".join(limits.allowed_instance_types)
        refused.append(
            f"build.instance_type {instance_type} matches none of the instance types "
            f"petal:allowedInstanceTypes allows ({allowed.replace(',', ', ')}): choose one "
            f"it allows, or add {instance_type} (or a pattern such as "
            f"{instance_type.split('.')[0]}.*) to petal:allowedInstanceTypes and redeploy "
            f"(`cdk deploy -c 'petal:allowedInstanceTypes={allowed},{instance_type}'`: -c "
            "replaces the whole list)"
        )
    size = seed.volume.size_gb
    if size > limits.max_volume_gb:
        refused.append(
            f"volume.size_gb {size} is above the limit of {limits.max_volume_gb} GiB "
            "(petal:maxVolumeGb): lower it, or raise petal:maxVolumeGb and redeploy "
            f"(`cdk deploy -c petal:maxVolumeGb={size}`)"
        )
    iops = seed.volume.iops
    if iops > limits.max_volume_iops:
        refused.append(
            f"volume.iops {iops} is above the limit of {limits.max_volume_iops} IOPS "
            "(petal:maxVolumeIops): lower it, or raise petal:maxVolumeIops and redeploy "
            f"(`cdk deploy -c petal:maxVolumeIops={iops}`)"
        )
    minutes = seed.build.timeout_minutes
    if minutes > limits.max_build_hours * 60:
        refused.append(
            f"build.timeout_minutes {minutes} is above the limit of "
            f"{limits.max_build_hours * 60} minutes (petal:maxBuildHours is "
            f"{limits.max_build_hours}): lower it, or raise petal:maxBuildHours and redeploy "
            f"(`cdk deploy -c petal:maxBuildHours={-(-minutes // 60)}`)"
        )
    if refused:
        raise InvalidBuildRequest(
            "the build asks for more than this deployment's cost limits allow: "
            f"{'; '.join(refused)}. Nothing was created."
        )


def check_parent_size(parent: Parent, limits: CostLimits) -> None:
    """The volume made from a parent is at least the parent's size, whatever the seed
    asks for: a parent beyond the limit would make one beyond it."""
    if parent.size_gb > limits.max_volume_gb:
        raise InvalidBuildRequest(
            f"parent: {parent.snapshot_id} is a {parent.size_gb} GiB snapshot, above the "
            f"limit of {limits.max_volume_gb} GiB (petal:maxVolumeGb) for the volume made "
            "from it: build without --from, or raise petal:maxVolumeGb and redeploy "
            f"(`cdk deploy -c petal:maxVolumeGb={parent.size_gb}`). Nothing was created."
        )


def check_http_egress(seed: Seed, http_egress: bool) -> None:
    """Ubuntu builders install their prerequisites with apt, whose sources on EC2 are
    Canonical's HTTP-only mirrors: without port 80 every fetch times out, minutes in."""
    # ParallelCluster's Ubuntu names all start so (platforms.OPERATING_SYSTEMS).
    if http_egress or not seed.os.startswith("ubuntu"):
        return
    raise ConfigurationError(
        f"os {seed.os}: the builder's apt sources (<region>.ec2.archive.ubuntu.com) are "
        "served over HTTP only, and this deployment allows HTTPS only "
        "(petal:builderHttpEgress is false). Set petal:builderHttpEgress to true and "
        "redeploy (`cdk deploy -c petal:builderHttpEgress=true`), or build for an "
        "operating system whose packages come over HTTPS (alinux2023, rhel8, rhel9). "
        "Nothing was created."
    )


def find_builder_image(
    ec2: Any, seed: Seed, request: BuildRequest, trusted_owners: tuple[str, ...]
) -> ec2_builder.BuilderImage:
    """The seed's build.image, if the launch function may boot it and it fits the build:
    the launch role may only use images of this account and the trusted owners, so an
    image of anyone else would fail RunInstances as AccessDenied, minutes later."""
    image_id = seed.build.image
    assert image_id is not None  # the caller's choice
    field = "builder_ami" if request.builder_ami else "build.image"
    found = ec2_builder.describe_image(ec2, image_id)
    if found is None:
        raise InvalidBuildRequest(
            f"{field}: {image_id} is not an image this account can see in this region: "
            "AMIs are regional and private unless shared. Copy it to this region "
            "(`aws ec2 copy-image`), share it with this account, or fix the id. Nothing "
            "was created."
        )
    if ec2_builder.describe_image(ec2, image_id, owners=("self", *trusted_owners)) is None:
        listed = ", ".join(trusted_owners) or "none"
        owners = ",".join(dict.fromkeys((*trusted_owners, found.owner_id)))
        raise ConfigurationError(
            f"{field}: {image_id} belongs to account {found.owner_id}, which this "
            "deployment does not trust for builder images (this account's own images "
            f"are, and petal:builderImageOwners lists {listed}). Add the account to "
            f"petal:builderImageOwners and redeploy (`cdk deploy -c "
            f"petal:builderImageOwners={owners}`), or copy the image into this account "
            "(`aws ec2 copy-image`). Nothing was created."
        )
    if found.state != "available":
        raise InvalidBuildRequest(
            f"{field}: {image_id} is {found.state or 'in an unknown state'}, not available: "
            "wait for `pcluster build-image` to finish (`pcluster describe-image`), or use "
            "another image. Nothing was created."
        )
    if found.architecture != seed.architecture:
        raise InvalidBuildRequest(
            f"{field}: {image_id} is an {found.architecture} image but the build is for "
            f"{seed.architecture}: use an image built for {seed.architecture}, or build "
            f"architecture {found.architecture}. Nothing was created."
        )
    return found.image


def check_ebs_default_key(ec2: Any, allowed_key: str) -> None:
    """The builder's root volume (and a software volume without volume.kms_key_id) is
    encrypted with the account's default EBS key: the functions need that key's use
    granted unless it is the AWS managed key, or RunInstances fails on KMS."""
    key = ec2_builder.ebs_default_kms_key(ec2)
    if ec2_builder.is_aws_managed_ebs_key(key) or key == allowed_key:
        return
    if ":alias/" in key or key.startswith("alias/"):
        setting = (
            "the ARN of the key this alias names (`aws kms describe-key --key-id "
            f"{key} --query KeyMetadata.Arn`)"
        )
    else:
        setting = key
    configured = f"it is {allowed_key}" if allowed_key else "it is empty"
    raise ConfigurationError(
        f"this account's default EBS encryption key in this region is {key} "
        "(GetEbsDefaultKmsKeyId), not the AWS managed key alias/aws/ebs, and the "
        f"petal:ebsDefaultKmsKeyArn setting does not name it ({configured}): the builder's "
        "encrypted volumes could not be created. Set petal:ebsDefaultKmsKeyArn to "
        f"{setting} and redeploy; the launch and check-ready functions may then use the "
        "key through EC2 only, and the key policy must let this account's IAM policies "
        "allow that (the default key policy does). Nothing was created."
    )


def _check_seed_location(request: BuildRequest, config: BuildConfig) -> None:
    """A seed_uri names a seed of the deployment's seed bucket, under seeds/: the
    builder role and the intake read nothing else, whatever a caller may read."""
    if request.seed_uri is None:
        return
    bucket, key = split_s3_uri(request.seed_uri)
    problem = seed_location_problem(bucket, key, config.seed_bucket)
    if problem is not None:
        raise BuildRequestError(
            [
                f"seed_uri: {problem}; upload the seed to s3://{config.seed_bucket}/"
                f"{SEED_PREFIX} and start the build with that URI"
            ]
        )


def prepare(
    event: Mapping[str, Any],
    *,
    ec2: Any,
    read_seed: SeedReader,
    table: BuildTable,
    now: datetime,
    config: BuildConfig | None = None,
) -> dict[str, Any]:
    """`config` is the deployment's settings; default: this function's environment."""
    config = BuildConfig.from_environ() if config is None else config
    execution = event["execution"]
    settings = event["settings"]
    try:
        request = parse_build_request(event.get("request"))
        _check_seed_location(request, config)
        seed = resolve_seed(request, read_seed)
        if request.build_id:
            build_id = request.build_id
        else:
            build_id = check_build_id(str(execution["name"]), field="execution name")
    except BuildRequestError as error:
        raise InvalidBuildRequest(
            f"{error}. Nothing was created: fix the input and start the build again."
        ) from None
    except SeedError as error:
        raise InvalidBuildRequest(
            f"the seed is invalid:\n{error}\nNothing was created: fix the seed and start "
            "the build again (`petal seed validate` checks a seed file)."
        ) from None

    fp = fingerprint(seed)
    heartbeat = int(settings["bootstrap_heartbeat_seconds"])
    task_timeout = seed.build.timeout_minutes * 60
    if heartbeat >= task_timeout:
        raise InvalidBuildRequest(
            f"build.timeout_minutes ({seed.build.timeout_minutes}) must be longer than the "
            f"deployment's bootstrap heartbeat window ({heartbeat} s): raise it"
        )
    command_timeout = min(
        SSM_MAX_EXECUTION_TIMEOUT,
        max(task_timeout - COMMAND_TIMEOUT_MARGIN_SECONDS, task_timeout * 9 // 10),
    )
    variant = {"seed_name": seed.name, "fingerprint": fp, "os": seed.os}
    variant["architecture"] = seed.architecture
    started_at = iso(now)
    execution_arn = str(execution["arn"])
    base_record = BuildRecord(
        build_id=build_id,
        status="RUNNING",
        started_at=started_at,
        seed_name=seed.name,
        seed_source=request.seed_source if request.seed_uri else (request.source or "inline seed"),
        fingerprint=fp,
        os=seed.os,
        architecture=seed.architecture,
        spack_version=seed.software.spack_version,
        step="prepare",
        execution_arn=execution_arn,
    )

    if not request.force:
        existing = ec2_snapshots.find_snapshots(
            ec2, managed_snapshot_tags(fp, seed.os, seed.architecture)
        )
        if existing:
            snapshot_id = existing[0].snapshot_id
            reused = BuildRecord(
                **{
                    **base_record.__dict__,
                    "status": "REUSED",
                    "step": "done",
                    "snapshot_id": snapshot_id,
                    "finished_at": started_at,
                    "duration_seconds": 0,
                }
            )
            _create_record(table, reused)
            return {
                "build_id": build_id,
                "reused": True,
                "status": "REUSED",
                "snapshot_id": snapshot_id,
                **variant,
            }

    # What the deployment cannot carry out fails now, not minutes into the build.
    check_cost_limits(seed, config.cost_limits)
    check_mirror_buckets(seed, config.mirror_buckets)
    check_http_egress(seed, config.builder_http_egress)
    check_ebs_default_key(ec2, config.ebs_default_kms_key_arn)
    parent = None
    if request.parent is not None:
        parent = resolve_parent(ec2, seed, request.parent)
        check_parent_size(parent, config.cost_limits)
        base_record.parent_snapshot_id = parent.snapshot_id

    if seed.build.image is not None:
        image = find_builder_image(ec2, seed, request, config.builder_image_owners)
    else:
        image = ec2_builder.find_official_image(
            ec2, seed.build.parallelcluster_version, seed.os, seed.architecture, now
        )
    # Everything that can fail on bad input has run: only now is anything written.
    _create_record(table, base_record)
    holder = table.acquire_lock(
        fp,
        seed.os,
        seed.architecture,
        build_id=build_id,
        execution_arn=execution_arn,
        now=now,
        expires_at=now + timedelta(seconds=task_timeout) + LOCK_GRACE,
    )
    if holder is not None:
        raise BuildAlreadyRunning(
            f"build {holder.build_id} (started {holder.acquired_at}) is already building "
            f"this stack ({seed.name}, {fp}) for {seed.os}/{seed.architecture}: wait for it "
            f"(`petal build status {holder.build_id}`); once it has finished, its snapshot "
            "is reused. To build anyway, stop that build first."
        )
    return {
        "build_id": build_id,
        "reused": False,
        "status": "RUNNING",
        **variant,
        "spack_version": seed.software.spack_version,
        "packages": [*seed.software.compilers, *seed.software.packages],
        "spack_yaml": render_spack_yaml(seed, fp),
        "image_id": image.image_id,
        "image_name": image.name,
        "root_device_name": image.root_device_name,
        "root_volume_gb": image.root_volume_gb,
        # Only a user-supplied image is recorded on the snapshot: clusters then need it
        # as their CustomAmi; the official one is ParallelCluster's default anyway.
        **({"builder_image": seed.build.image} if seed.build.image else {}),
        "instance_type": seed.build.instance_type,
        "volume": {
            # A volume is at least as large as the snapshot it is created from.
            "size_gb": max(seed.volume.size_gb, parent.size_gb if parent else 0),
            "iops": seed.volume.iops,
            "throughput": seed.volume.throughput,
            "encrypted": seed.volume.encrypted or bool(parent and parent.encrypted),
            "kms_key_id": seed.volume.kms_key_id,
        },
        **({"parent_snapshot_id": parent.snapshot_id} if parent else {}),
        "task_timeout_seconds": task_timeout,
        "command_timeout_seconds": command_timeout,
        "script_heartbeat_seconds": max(
            1, min(MAX_SCRIPT_HEARTBEAT_SECONDS, heartbeat // HEARTBEATS_PER_WINDOW)
        ),
        "started_at": started_at,
        "execution_arn": execution_arn,
    }


def _create_record(table: BuildTable, record: BuildRecord) -> None:
    try:
        table.create_build(record)
    except BuildIdTaken:
        existing = table.get_build(record.build_id)
        if existing is not None and existing.execution_arn == record.execution_arn:
            return  # this step is being retried
        raise InvalidBuildRequest(
            f"build_id: {record.build_id!r} is already the id of another build: leave "
            "build_id out (the execution's name is used) or choose a new one. Nothing "
            "was created."
        ) from None
