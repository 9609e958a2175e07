"""checkov, an independent scanner, on the synthesized template: zero failed checks.

Every finding is fixed or acknowledged beside its resource (Metadata checkov.skip, with
the reason: stacks/checkov.py), the way cdk-nag's are. checkov lives in a venv of its
own (.venv/checkov, `make` installs it from requirements/checkov.txt), so its many
dependencies never meet the project's pins.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.infra.conftest import REPO_ROOT, Synth, tool_env

CHECKOV = REPO_ROOT / ".venv" / "checkov" / "bin" / "checkov"


def run_checkov(template: Path) -> dict[str, Any]:
    if not CHECKOV.exists():
        pytest.fail(f"checkov is not installed: run `make {CHECKOV.parents[1]}/.installed`")
    completed = subprocess.run(
        [
            str(CHECKOV),
            "--file",
            str(template),
            "--framework",
            "cloudformation",
            "--output",
            "json",
            # Offline: no guideline download, no platform.
            "--skip-download",
        ],
        capture_output=True,
        text=True,
        env={**tool_env(), "BC_SKIP_MAPPING": "TRUE"},
        timeout=300,
        check=False,
    )
    assert completed.stdout, completed.stderr
    report = json.loads(completed.stdout)
    if isinstance(report, list):
        (report,) = report
    assert isinstance(report, dict), completed.stdout[:500]
    return report


@pytest.fixture(scope="module")
def checkov_report(synth: Synth) -> dict[str, Any]:
    return run_checkov(synth.outdir / f"{synth.stack.artifact_id}.template.json")


def test_checkov_finds_nothing_unacknowledged(checkov_report: dict[str, Any]) -> None:
    failed = checkov_report.get("results", {}).get("failed_checks", [])
    findings = sorted(f"{f['check_id']} {f['resource']}: {f['check_name']}" for f in failed)
    assert findings == [], "fix these, or acknowledge them with stacks.checkov.skip and a reason"
    assert checkov_report["summary"]["passed"] > 100  # it did scan the template


def test_every_acknowledgment_says_why(synth: Synth, checkov_report: dict[str, Any]) -> None:
    skips = [
        (logical_id, skip)
        for logical_id, resource in synth.resources.items()
        for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", [])
    ]
    assert skips
    for logical_id, skip in skips:
        assert len(skip["comment"]) >= 80, f"{logical_id}: {skip['id']}: reason too thin"
    # Each acknowledgment matches a finding checkov would report: none is stale.
    skipped = {
        (s["check_id"], s["resource"].split(".", 1)[1])
        for s in checkov_report["results"].get("skipped_checks", [])
    }
    assert {(s["id"], logical_id) for logical_id, s in skips} == skipped
