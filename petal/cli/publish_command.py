"""`petal build publish SNAPSHOT... --name NAME`: write the snapshot registry documents
for a pull request (docs/SHARING.md).

sharing_commands.register adds this parser next to share, unshare and copy; regions and
AWS clients come from snapshot_flags, as theirs do.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from petal.build.manifest import Manifest, ManifestError
from petal.build.manifest_store import find_build, load_manifest
from petal.cli import snapshot_flags
from petal.cli.build_watch import Pipeline, find_pipeline
from petal.cli.output import add_json_flag, print_json
from petal.deployment_contract import TAG_BUILD_ID
from petal.errors import EXIT_OK, PetalError
from petal.registry.publish import (
    Publication,
    build_publication,
    check_publishable,
    read_existing_metadata,
    write_publication,
)
from petal.seed.fingerprint import fingerprint
from petal.seed.loading import load_seed
from petal.seed.model import Seed, SeedError
from petal.sharing.errors import InvalidArgument, Refused
from petal.sharing.inputs import SnapshotRef, parse_snapshot_ref, validate_registry_name
from petal.sharing.kms import KmsKeyLookup
from petal.sharing.public import BlockPublicAccessState
from petal.sharing.snapshots import SharingInfo, SnapshotRecord, describe_sharing, get_snapshots
from petal.user_config import DEFAULT_REGISTRY_URL

DESCRIPTION_MAX: Final = 1000


def register(build_subcommands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    publish = build_subcommands.add_parser(
        "publish",
        help="write snapshot registry metadata for a pull request",
        description="Read snapshots of one software stack (any regions) and write the "
        "registry documents: <name>.json and the entry in index.json (docs/SHARING.md). "
        "With --out DIR (a registry checkout's snapshots/ directory) the files are written "
        "or updated there; otherwise they are printed.",
    )
    publish.add_argument(
        "snapshots", nargs="+", metavar="SNAPSHOT", help="snap-... or REGION:snap-..."
    )
    publish.add_argument(
        "--name",
        required=True,
        type=snapshot_flags.checked(validate_registry_name, "--name"),
        help="registry name, e.g. bioinformatics-v1",
    )
    publish.add_argument("--description", help="one line for the registry listing")
    publish.add_argument(
        "--seed",
        default=argparse.SUPPRESS,
        metavar="FILE",
        help="the seed the snapshots were built from: checks the fingerprint and lists the "
        "packages",
    )
    publish.add_argument("--seed-url", metavar="URL", help="http(s) URL of the seed file")
    publish.add_argument(
        "--registry-url",
        default=DEFAULT_REGISTRY_URL,
        metavar="URL",
        help="raw base URL of the registry repository, for the default --seed-url",
    )
    publish.add_argument(
        "--private",
        action="store_true",
        help="the snapshots are shared with accounts, not public (an organization registry)",
    )
    publish.add_argument("--out", metavar="DIR", help="write <name>.json and index.json here")
    snapshot_flags.region_flag(publish)
    add_json_flag(publish)
    publish.set_defaults(func=_publish)


@dataclass
class _Snapshots:
    """What AWS says about the snapshots to publish, read once per region."""

    records: list[SnapshotRecord] = field(default_factory=list)
    sharing: dict[str, SharingInfo] = field(default_factory=dict)
    block_states: dict[str, BlockPublicAccessState] = field(default_factory=dict)


def _publish(args: argparse.Namespace) -> int:
    # Every flag and local file is checked before the first AWS call.
    refs = _snapshot_refs(args)
    _check_text_flags(args)
    seed_file: str | None = getattr(args, "seed", None)
    seed = _load_seed(seed_file) if seed_file else None
    out_dir = Path(args.out) if args.out else None
    existing = read_existing_metadata(out_dir, args.name) if out_dir else None

    found = _read_snapshots(refs, public=not args.private)
    stack_fingerprint, warnings = check_publishable(
        found.records,
        found.sharing,
        public=not args.private,
        keys=lambda region: KmsKeyLookup(snapshot_flags.client("kms", region)),
        block_public_access=found.block_states,
    )
    publication = build_publication(
        found.records,
        name=args.name,
        fingerprint=stack_fingerprint,
        public=not args.private,
        description=_description(args, seed),
        packages=_seed_packages(seed, seed_file, stack_fingerprint),
        seed_url=_seed_url(args, seed),
        existing=existing,
        manifests=_manifests(found.records, warnings),
    )
    warnings.extend(publication.warnings)
    warnings.extend(_unknown_block_access(found.block_states))
    files = write_publication(out_dir, publication) if out_dir is not None else []

    if snapshot_flags.json(args):
        _report_json(publication, files, warnings)
        return EXIT_OK
    for warning in warnings:
        snapshot_flags.warn(warning)
    if files:
        _print_written(args.name, found.records, stack_fingerprint, files, seed_file)
    else:
        _print_documents(args.name, publication)
    return EXIT_OK


# --- checking the flags ----------------------------------------------------------------


def _snapshot_refs(args: argparse.Namespace) -> list[SnapshotRef]:
    """The snapshots in the order given, each once."""
    default_region = snapshot_flags.default_region(args)
    return list(dict.fromkeys(parse_snapshot_ref(s, default_region) for s in args.snapshots))


def _check_text_flags(args: argparse.Namespace) -> None:
    if args.description is not None and len(args.description) > DESCRIPTION_MAX:
        raise InvalidArgument(f"--description: at most {DESCRIPTION_MAX} characters")
    for flag, url in (("--seed-url", args.seed_url), ("--registry-url", args.registry_url)):
        if url is not None and not url.startswith(("https://", "http://")):
            raise InvalidArgument(f"{flag}: {url!r} must be an http(s) URL")


def _load_seed(path: str) -> Seed:
    try:
        return load_seed(path)
    except SeedError as failure:
        raise InvalidArgument(f"--seed: {failure}") from None


# --- reading AWS -----------------------------------------------------------------------


def _read_snapshots(refs: list[SnapshotRef], *, public: bool) -> _Snapshots:
    by_region: dict[str, list[str]] = {}
    for ref in refs:
        by_region.setdefault(ref.region, []).append(ref.snapshot_id)
    found = _Snapshots()
    for region, ids in by_region.items():
        ec2 = snapshot_flags.ec2(region)
        records = get_snapshots(ec2, region, ids)
        found.records.extend(records[i] for i in ids)
        found.sharing.update(describe_sharing(ec2, ids))
        # Only public snapshots can be hidden by block public access.
        if public:
            found.block_states[region] = snapshot_flags.block_public_access(ec2)
    return found


def _manifests(records: list[SnapshotRecord], warnings: list[str]) -> dict[str, Manifest]:
    """The manifest of each snapshot's build, from the petal stack of its region (the
    user's default stack name); what cannot be found is a warning, not a refusal."""
    found: dict[str, Manifest] = {}
    pipelines: dict[str, Pipeline | None] = {}
    for record in records:
        build_id = record.tags.get(TAG_BUILD_ID)
        if build_id is None:
            continue
        if record.region not in pipelines:
            try:
                pipelines[record.region] = find_pipeline(record.region, None)
            except PetalError as problem:
                pipelines[record.region] = None
                warnings.append(f"{record.region}: no manifests ({problem})")
        pipeline = pipelines[record.region]
        if pipeline is None:
            continue
        try:
            build = find_build(build_id, table=pipeline.table, ec2=pipeline.client("ec2"))
            found[record.snapshot_id] = load_manifest(
                build, s3=pipeline.client("s3"), bucket=pipeline.deployment.seed_bucket
            )
        except ManifestError as problem:
            warnings.append(f"{record.snapshot_id}: the entry carries no manifest: {problem}")
    return found


# --- the documents' contents -----------------------------------------------------------


def _seed_packages(seed: Seed | None, seed_file: str | None, stack_fingerprint: str) -> list[str]:
    """The seed's compilers and packages, once it is proved to be the snapshots' seed."""
    if seed is None:
        return []
    seed_fingerprint = fingerprint(seed)
    if seed_fingerprint != stack_fingerprint:
        raise Refused(
            f"--seed {seed_file} has fingerprint {seed_fingerprint}, the snapshots "
            f"{stack_fingerprint}: they were built from another seed (or another version "
            "of it)"
        )
    return list(dict.fromkeys([*seed.software.compilers, *seed.software.packages]))


def _seed_url(args: argparse.Namespace, seed: Seed | None) -> str | None:
    """--seed-url, else where the pull request will put the seed in the registry."""
    if args.seed_url is None and seed is not None:
        return f"{args.registry_url.rstrip('/')}/seeds/{args.name}.yaml"
    seed_url: str | None = args.seed_url
    return seed_url


def _description(args: argparse.Namespace, seed: Seed | None) -> str:
    if args.description is not None:
        description: str = args.description
        return description
    return seed.description if seed is not None else ""


def _unknown_block_access(block_states: dict[str, BlockPublicAccessState]) -> list[str]:
    return [
        f"could not read snapshot block public access in {region}; if it is "
        "block-all-sharing, the public snapshots there are hidden"
        for region, state in block_states.items()
        if state == "unknown"
    ]


# --- output ----------------------------------------------------------------------------


def _report_json(publication: Publication, files: list[Path], warnings: list[str]) -> None:
    print_json(
        {
            "metadata": publication.metadata,
            "index_entry": publication.index_entry,
            "files": [str(f) for f in files],
            "warnings": warnings,
        }
    )


def _print_documents(name: str, publication: Publication) -> None:
    """Without --out: the two documents, for the user to paste into the registry."""
    print(f"# snapshots/{name}.json")
    print_json(publication.metadata)
    print("# entry for snapshots/index.json")
    print_json(publication.index_entry)


def _print_written(
    name: str,
    records: list[SnapshotRecord],
    stack_fingerprint: str,
    files: list[Path],
    seed_file: str | None,
) -> None:
    print(f"{name}: {len(records)} snapshot(s), fingerprint {stack_fingerprint}")
    for path in files:
        print(f"  wrote {path}")
    seed_hint = f"add {seed_file} as seeds/{name}.yaml, " if seed_file else ""
    print(f"Next: in the registry checkout, {seed_hint}commit and open a pull request.")
