"""`petal build diff A B`: what changed between two builds' software stacks.

A and B are build ids, snapshot ids or fingerprints; each names a build, whose manifest
the CLI reads from the seed bucket (checked against the SHA-256 the build reported),
without mounting any volume (petal.build.manifest_store).
"""

from __future__ import annotations

import argparse

from petal.build.manifest import ManifestError, diff_manifests, format_diff
from petal.build.manifest_store import find_build, load_manifest
from petal.cli.build_watch import find_pipeline
from petal.cli.output import add_json_flag, error, print_json
from petal.errors import EXIT_FAILURE, EXIT_OK


def register(
    build_subcommands: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    """Add `diff` under `petal build`; the caller adds the deployment flags."""
    diff = build_subcommands.add_parser(
        "diff",
        help="compare the packages of two builds",
        description="Print the packages added, removed and changed (version, variants, "
        "compiler) from build A to build B. Each of A and B is a build id, a snapshot id "
        "(snap-...) or a fingerprint (sha256:..., its newest successful build).",
    )
    diff.add_argument("a", metavar="A", help="the build to compare from")
    diff.add_argument("b", metavar="B", help="the build to compare to")
    add_json_flag(diff)
    diff.set_defaults(func=_diff)
    return diff


def _diff(args: argparse.Namespace) -> int:
    pipeline = find_pipeline(args.region, args.stack_name)
    table, ec2, s3 = pipeline.table, pipeline.client("ec2"), pipeline.client("s3")
    try:
        manifests = []
        for reference in (args.a, args.b):
            record = find_build(reference, table=table, ec2=ec2)
            manifests.append(load_manifest(record, s3=s3, bucket=pipeline.deployment.seed_bucket))
        result = diff_manifests(*manifests, a_label=args.a, b_label=args.b)
    except ManifestError as problem:
        error(str(problem))
        return EXIT_FAILURE
    if args.json:
        print_json(result.to_json())
    else:
        print("\n".join(format_diff(result)))
    return EXIT_OK
