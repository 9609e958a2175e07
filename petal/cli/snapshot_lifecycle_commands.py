"""`petal build deprecate | retire | reinstate | prune | fast-restore`: a software
snapshot's life after its build (docs/VOLUMES.md).

deprecate/retire/reinstate set the petal:lifecycle tag that resolution reads; prune
deletes a seed's old snapshots that nothing uses; fast-restore turns Fast Snapshot
Restore on or off. Flags are checked before the first AWS call (exit 2); the
subcommands' --region and --json default to SUPPRESS, as in sharing_commands.py.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from petal.aws import ec2_snapshots
from petal.aws.ec2_snapshots import Lifecycle, lifecycle_of
from petal.cli import hints, snapshot_flags
from petal.cli.confirm import confirmed
from petal.cli.output import add_json_flag, error, print_json
from petal.cluster import costs, prune
from petal.deployment_contract import TAG_ARCH, TAG_FINGERPRINT, TAG_OS, TAG_SEED
from petal.errors import EXIT_FAILURE, EXIT_OK
from petal.identifiers import AVAILABILITY_ZONE
from petal.sharing.errors import InvalidArgument, Refused
from petal.sharing.inputs import SnapshotRef, parse_snapshot_ref
from petal.sharing.snapshots import SnapshotRecord, get_snapshot, volume_permissions

if TYPE_CHECKING:
    from typing import TypeAlias

    SubParsers: TypeAlias = argparse._SubParsersAction[argparse.ArgumentParser]

_MARKS: dict[str, tuple[Lifecycle, str]] = {
    "deprecate": (
        "deprecated",
        "mark a snapshot deprecated: used only when no current one is, with a warning",
    ),
    "retire": ("retired", "mark a snapshot retired: `petal create` and the resolver skip it"),
    "reinstate": ("current", "mark a deprecated or retired snapshot current again"),
}


def register(build_subcommands: SubParsers) -> None:
    for name, (lifecycle, summary) in _MARKS.items():
        mark = build_subcommands.add_parser(
            name,
            help=summary,
            description=f"{summary[0].upper()}{summary[1:]}. Sets the tag petal:lifecycle="
            f"{lifecycle} on a snapshot of this account; volumes and clusters already made "
            "from it are not touched. Tags are invisible to other accounts: accounts the "
            "snapshot is shared with do not see it.",
        )
        mark.add_argument("snapshot", metavar="SNAPSHOT", help="snap-... or REGION:snap-...")
        snapshot_flags.region_flag(mark)
        add_json_flag(mark)
        mark.set_defaults(func=_mark, lifecycle=lifecycle)

    pruning = build_subcommands.add_parser(
        "prune",
        help="delete a seed's old snapshots that no volume or cluster uses",
        description="List (a dry run, by default) and, with --yes, delete the snapshots "
        "of a seed older than the --keep newest of each OS/architecture, except those a "
        "volume was created from or a ParallelCluster cluster is tagged with; shared or "
        "registry-published ones only with --force. Says how much storage a month it "
        "frees.",
    )
    pruning.add_argument("--seed", required=True, metavar="NAME", help="the seed's name")
    pruning.add_argument(
        "--keep",
        required=True,
        type=snapshot_flags.positive_int("--keep"),
        metavar="N",
        help="how many of the newest snapshots of each OS/architecture to keep",
    )
    pruning.add_argument(
        "--yes", "--delete", dest="yes", action="store_true", help="delete (default: list only)"
    )
    pruning.add_argument(
        "--force",
        action="store_true",
        help="also delete shared and registry-published snapshots (never ones in use)",
    )
    snapshot_flags.region_flag(pruning)
    add_json_flag(pruning)
    pruning.set_defaults(func=_prune)

    fast = build_subcommands.add_parser(
        "fast-restore",
        help="enable (or --disable) Fast Snapshot Restore of a snapshot in some zones",
        description="Fast Snapshot Restore makes volumes created from the snapshot in "
        "these Availability Zones fully initialized at once. It is billed per zone and "
        f"hour while enabled (about {costs.price(costs.FSR_PRICE_PER_HOUR)}), and a "
        f"region allows it on at most {costs.FSR_SNAPSHOTS_PER_REGION} snapshots. "
        "`petal create --initialize` is the per-cluster alternative.",
    )
    fast.add_argument("snapshot", metavar="SNAPSHOT", help="snap-... or REGION:snap-...")
    fast.add_argument(
        "--zones",
        required=True,
        metavar="ZONES",
        help="comma-separated Availability Zones: us-east-1a, or just the letters a,b",
    )
    fast.add_argument("--disable", action="store_true", help="turn it off in these zones")
    fast.add_argument("--yes", action="store_true", help="enable without asking")
    snapshot_flags.region_flag(fast)
    add_json_flag(fast)
    fast.set_defaults(func=_fast_restore)


def _ref(args: argparse.Namespace) -> SnapshotRef:
    return parse_snapshot_ref(args.snapshot, snapshot_flags.default_region(args))


def _region(args: argparse.Namespace) -> str:
    region = snapshot_flags.default_region(args)
    if region is None:
        raise InvalidArgument("no AWS region: pass --region REGION")
    return region


# --- deprecate, retire, reinstate -----------------------------------------------------


def _mark(args: argparse.Namespace) -> int:
    ref = _ref(args)
    ec2 = snapshot_flags.ec2(ref.region)
    snapshot = get_snapshot(ec2, ref.region, ref.snapshot_id)
    if TAG_FINGERPRINT not in snapshot.tags:
        raise Refused(
            f"{ref}: has no {TAG_FINGERPRINT} tag; only snapshots petal built have a lifecycle"
        )
    before = lifecycle_of(snapshot.tags)
    lifecycle: Lifecycle = args.lifecycle
    ec2_snapshots.set_lifecycle(ec2, ref.snapshot_id, lifecycle)
    if snapshot_flags.json(args):
        print_json(
            {"snapshot_id": ref.snapshot_id, "region": ref.region, "was": before, "now": lifecycle}
        )
        return EXIT_OK
    print(f"{ref} ({_label(snapshot)}): {before} -> {lifecycle}")
    if lifecycle == "retired":
        prune_command = f"build prune --seed {snapshot.tags.get(TAG_SEED, 'SEED')} --keep 2"
        print(
            "   `petal create` and the resolver skip it; undo with "
            f"`{hints.petal(f'build reinstate {ref}')}`. Delete old snapshots with "
            f"`{hints.petal(prune_command)}`."
        )
    elif lifecycle == "deprecated":
        print("   Used only when no current snapshot of the stack is, with a warning.")
    return EXIT_OK


def _label(snapshot: SnapshotRecord) -> str:
    tags = snapshot.tags
    return f"{tags.get(TAG_SEED, '?')}, {tags.get(TAG_OS, '?')}/{tags.get(TAG_ARCH, '?')}"


# --- prune -----------------------------------------------------------------------------


def _prune(args: argparse.Namespace) -> int:
    region = _region(args)
    ec2 = snapshot_flags.ec2(region)
    plan = prune.survey(
        ec2=ec2,
        cloudformation=snapshot_flags.client("cloudformation", region),
        region=region,
        seed=args.seed,
        keep=args.keep,
        force=args.force,
        published=_published_lookup(region),
        shared_with=lambda snapshot_id: _shared_with(ec2, region, snapshot_id),
    )
    if args.yes:
        prune.delete(ec2, plan)
    failed = [c for c in plan.candidates if c.failure]
    if snapshot_flags.json(args):
        print_json(
            {
                "seed": plan.seed,
                "region": region,
                "keep": plan.keep,
                "dry_run": not args.yes,
                "snapshots": [c.to_json() for c in plan.candidates],
                "size_gb": plan.deleted_gb if args.yes else plan.size_gb,
                "storage_usd_per_month": round(
                    costs.snapshot_storage(plan.deleted_gb if args.yes else plan.size_gb), 2
                ),
                "warnings": plan.warnings,
            }
        )
    else:
        _print_prune(args, plan)
    return EXIT_FAILURE if failed else EXIT_OK


def _print_prune(args: argparse.Namespace, plan: prune.PrunePlan) -> None:
    for warning in plan.warnings:
        snapshot_flags.warn(warning)
    if not plan.candidates:
        print(f"No completed snapshots of seed {plan.seed} in {plan.region}.")
        return
    print(
        f"Snapshots of seed {plan.seed} in {plan.region} (keeping the {plan.keep} newest of "
        "each OS/architecture):"
    )
    for candidate in plan.candidates:
        view = candidate.snapshot
        action = candidate.action
        if candidate.deleted:
            action = "deleted"
        elif candidate.failure:
            action = "FAILED"
        created = view.start_time.date().isoformat() if view.start_time else "?"
        why = "; ".join([*candidate.reasons, *([candidate.failure] if candidate.failure else [])])
        print(
            f"  {action:<9} {view.snapshot_id}  {candidate.variant}  {view.size_gb} GiB  "
            f"{created}  {lifecycle_of(view.tags)}" + (f"  ({why})" if why else "")
        )
    if args.yes:
        print(prune.storage_line(plan.deleted_gb, "Freed"))
        return
    if not plan.to_delete:
        print("Nothing to delete.")
        return
    print(prune.storage_line(plan.size_gb, "Deleting these would free"))
    again = f"build prune --seed {args.seed} --keep {plan.keep} --yes"
    if args.force:
        again += " --force"
    print(f"Dry run: nothing deleted. Delete them with: {hints.petal(again)}")


def _shared_with(ec2: Any, region: str, snapshot_id: str) -> str | None:
    accounts, public = volume_permissions(ec2, region, snapshot_id)
    parts = (["everyone (public)"] if public else []) + (
        [f"accounts {', '.join(accounts)}"] if accounts else []
    )
    return " and ".join(parts) if parts else None


def _published_lookup(region: str) -> prune.PublishedLookup:
    """The enabled registries of the user's config (none by default)."""
    from petal.cluster.resolution import default_registry_factory
    from petal.user_config import load_user_config

    config = load_user_config()
    factory = default_registry_factory(config)
    registries = {}
    for source in config.enabled_sources():
        if source.type in ("official", "community"):
            client = factory(source)

            def variants_of(fingerprint: str, client: Any = client) -> list[tuple[str, str]]:
                entry = client.find(fingerprint)
                return [] if entry is None else [(v.region, v.snapshot_id) for v in entry.variants]

            registries[source.label] = variants_of
    return prune.published_in_registries(registries, region)


# --- fast-restore ----------------------------------------------------------------------


def _zones(text: str, region: str) -> list[str]:
    zones = []
    for item in (z.strip() for z in text.split(",")):
        zone = f"{region}{item}" if item.isalpha() and len(item) == 1 else item
        if not AVAILABILITY_ZONE.match(zone) or not zone.startswith(region):
            raise InvalidArgument(
                f"--zones: {item!r} is not an Availability Zone of {region} ({region}a, or just a)"
            )
        zones.append(zone)
    return list(dict.fromkeys(zones))


def _fast_restore(args: argparse.Namespace) -> int:
    ref = _ref(args)
    zones = _zones(args.zones, ref.region)
    ec2 = snapshot_flags.ec2(ref.region)
    # FSR works on snapshots shared with this account too.
    snapshot = get_snapshot(ec2, ref.region, ref.snapshot_id, owned=False)
    if not args.disable:
        enabled = {r.snapshot_id for r in ec2_snapshots.fast_restores(ec2)}
        _check_fast_restore_limit(ref, enabled, zones)
        if not snapshot_flags.json(args):
            for line in _fast_restore_cost(snapshot, zones, len(enabled | {ref.snapshot_id})):
                print(line)
        question = f"Enable Fast Snapshot Restore of {ref.snapshot_id} in {', '.join(zones)}?"
        if not confirmed(question, yes=args.yes):
            error("not confirmed: nothing was changed")
            return EXIT_FAILURE
    accepted, refused = ec2_snapshots.change_fast_restores(
        ec2, ref.snapshot_id, zones, enable=not args.disable
    )
    if snapshot_flags.json(args):
        print_json(
            {
                "snapshot_id": ref.snapshot_id,
                "region": ref.region,
                "enabled": not args.disable,
                "zones": [{"zone": r.zone, "state": r.state} for r in accepted],
                "refused": [{"zone": r.zone, "reason": r.reason} for r in refused],
                "usd_per_hour": 0.0 if args.disable else costs.fsr_hourly(len(accepted)),
            }
        )
    else:
        for restore in accepted:
            print(f"  {restore.zone}: {restore.state}")
        for restore in refused:
            error(f"{restore.zone}: {restore.reason}")
        if accepted and not args.disable:
            off = f"build fast-restore {ref} --zones {','.join(zones)} --disable"
            print(f"Billed until disabled: {hints.petal(off)}")
    return EXIT_FAILURE if refused else EXIT_OK


def _check_fast_restore_limit(ref: SnapshotRef, enabled: set[str], zones: list[str]) -> None:
    if ref.snapshot_id in enabled or len(enabled) < costs.FSR_SNAPSHOTS_PER_REGION:
        return
    raise Refused(
        f"{ref.region} already has Fast Snapshot Restore on "
        f"{costs.FSR_SNAPSHOTS_PER_REGION} snapshots ({', '.join(sorted(enabled))}), the "
        "most a region allows: disable one first with "
        f"`{hints.petal('build fast-restore SNAP --zones ZONES --disable')}`"
    )


def _fast_restore_cost(snapshot: SnapshotRecord, zones: list[str], in_region: int) -> list[str]:
    hourly = costs.fsr_hourly(len(zones))
    return [
        f"Fast Snapshot Restore of {snapshot.snapshot_id} in {len(zones)} zone(s): "
        f"{costs.dollars(hourly)} an hour, {costs.dollars(hourly * costs.HOURS_PER_MONTH)} "
        f"a month while enabled ({costs.price(costs.FSR_PRICE_PER_HOUR)} per zone-hour; "
        f"{costs.PRICE_NOTE}).",
        f"   Each zone creates up to {costs.fsr_credits(snapshot.size_gb)} fully initialized "
        f"volume(s) an hour from this {snapshot.size_gb} GiB snapshot; the region will have "
        f"it on {in_region} of at most {costs.FSR_SNAPSHOTS_PER_REGION} snapshots.",
    ]
