"""An incremental build against a fresh one: seeds/bioinformatics.yaml built once, then
with one package's version changed (samtools 1.17 -> 1.18) built again, fresh and on
the first build's snapshot (`--from`). Through the real state machine and handlers on
the emulator, with the simulated builder.

    .venv/bin/python benchmarks/incremental.py

The install times are simulated: a fresh build of the seed is taken to last
FRESH_BUILD_MINUTES, the middle of the 45-90 minutes the README gives for it, and the
simulated builder shares its install step among the root specs by weight (a compiler
counts five packages: petal/local/simulated_volumes.py says why). The snapshot delta is
what the build writes, in the same weights: EBS stores only the blocks a snapshot of a
volume created from another snapshot changed. Goal: the incremental install takes at
most 15% of the fresh one's, and installs only the changed package (no root of this
seed depends on samtools).

Exit status 0 when the goal is met, 1 otherwise.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Final

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from petal.build.records import BuildRecord  # noqa: E402
from petal.local.emulator import LocalAws, SimulatedInstall  # noqa: E402
from petal.local.simulated_volumes import InstallReport, install_report  # noqa: E402
from petal.seed.loading import load_seed  # noqa: E402

SEED = REPO_ROOT / "seeds" / "bioinformatics.yaml"
FRESH_BUILD_MINUTES: Final = 67.5
CHANGE: Final = ("samtools@1.17", "samtools@1.18")
GOAL_SHARE: Final = 0.15


def _changed(document: dict[str, Any]) -> dict[str, Any]:
    software = dict(document["software"])
    old, new = CHANGE
    assert old in software["packages"], f"{SEED} no longer holds {old}"
    software["packages"] = [new if p == old else p for p in software["packages"]]
    return {**document, "software": software}


def _build(aws: LocalAws, request: dict[str, Any]) -> tuple[BuildRecord, InstallReport]:
    result = aws.build(request, timeout=600)
    if result.status != "SUCCEEDED":
        raise SystemExit(f"build {request['build_id']} did not succeed: {result.cause}")
    record = aws.table.get_build(str(request["build_id"]))
    assert record is not None
    stream = f"{record.command_id}/{record.instance_id}/bootstrap/stdout"
    events = aws.client("logs").get_log_events(
        logGroupName=record.log_group, logStreamName=stream, startFromHead=True
    )["events"]
    report = install_report([line for e in events for line in e["message"].splitlines()])
    if report is None:
        raise SystemExit(f"build {record.build_id} wrote no install report")
    return record, report


def main() -> int:
    document = load_seed(SEED).to_document()
    install = SimulatedInstall(minutes=FRESH_BUILD_MINUTES, heartbeat_minutes=5)
    with LocalAws(REPO_ROOT, install=install, log_level="ERROR") as aws:
        first, _ = _build(aws, {"seed": document, "build_id": "bio-first"})
        changed = _changed(document)
        _, fresh = _build(aws, {"seed": changed, "build_id": "bio-fresh"})
        _, incremental = _build(
            aws,
            # force: the fresh build above made a snapshot of this very stack.
            {
                "seed": changed,
                "build_id": "bio-incremental",
                "parent": first.snapshot_id,
                "force": True,
            },
        )
    old, new = CHANGE
    share = incremental.install_minutes / fresh.install_minutes
    delta = incremental.written_units / fresh.written_units
    print(f"{SEED.relative_to(REPO_ROOT)}: {old} -> {new}, rebuilt on its parent snapshot")
    print(f"{'':24}{'fresh':>10}{'incremental':>14}")
    print(f"{'root specs installed':24}{fresh.installed:>10}{incremental.installed:>14}")
    print(
        f"{'install time (sim.)':24}{fresh.install_minutes:>9.1f}m"
        f"{incremental.install_minutes:>13.1f}m   {share:.0%} of fresh (goal <= {GOAL_SHARE:.0%})"
    )
    print(
        f"{'snapshot delta (model)':24}{'100%':>10}{delta:>14.0%}   "
        "of a fresh build's data (EBS stores changed blocks only)"
    )
    print(
        f"kept from the parent: {incremental.kept} root specs; removed: {incremental.removed} "
        f"(the parent's {old})"
    )
    met = share <= GOAL_SHARE and incremental.installed == 1 and incremental.removed == 1
    print(
        f"goal: <= {GOAL_SHARE:.0%} of the fresh install, only the changed package: "
        f"{'met' if met else 'NOT met'}"
    )
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
