"""`petal --local build diff` as a user runs it: two builds on the emulator, compared by
build id, snapshot id and fingerprint, and the errors when a side has no manifest."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.local_session import Demo

SEED = "seeds/testing/workload-basic.yaml"


def test_diff_of_two_builds(demo: Demo, tmp_path: Path) -> None:
    other = tmp_path / "other.yaml"
    other.write_text(
        (Path(__file__).resolve().parents[2] / SEED)
        .read_text()
        .replace("name: workload-basic", "name: workload-other")
        .replace("- xz@5.4.6", "- lz4@1.9.4")
    )
    first = demo.run("--local", "build", "--seed", SEED, "--json")
    second = demo.run("--local", "build", "--seed", str(other), "--json")
    assert first.returncode == 0, first.stdout + first.stderr
    assert second.returncode == 0, second.stdout + second.stderr
    listing = json.loads(demo.run("--local", "build", "list", "--json").stdout)
    builds = {b["seed_name"]: b for b in listing["builds"]}
    a, b = builds["workload-basic"], builds["workload-other"]

    text = demo.run("--local", "build", "diff", a["build_id"], b["snapshot_id"])
    assert text.returncode == 0, text.stdout + text.stderr
    lines = text.stdout.splitlines()
    assert lines[0] == f"--- {a['build_id']}" and lines[1] == f"+++ {b['snapshot_id']}"
    assert any(line.startswith("+ lz4@1.9.4%") for line in lines)
    assert any(line.startswith("- xz@5.4.6%") for line in lines)
    assert lines[-1] == "1 added, 1 removed, 0 changed, 2 unchanged"

    as_json = demo.run("--local", "build", "diff", a["fingerprint"], b["build_id"], "--json")
    assert as_json.returncode == 0, as_json.stderr
    document = json.loads(as_json.stdout)
    # The second build got zlib and bzip2 from the cache the first one filled.
    assert [(p["name"], p["source"]) for p in document["added"]] == [("lz4", "built")]
    assert document["unchanged"] == 2

    missing = demo.run("--local", "build", "diff", a["build_id"], "no-such-build")
    assert missing.returncode == 1
    assert missing.stderr.endswith("petal: error: no build 'no-such-build' in the builds table\n")
