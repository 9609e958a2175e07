"""The process behind `petal --local`: an emulated petal deployment on this machine.

It runs petal/local/emulator.py in server mode (moto on a loopback port, the real Lambda
handlers, a simulated builder) and keeps it up between CLI commands, so `petal --local
build` and a later `petal --local build list` see the same builds. The CLI starts it on
demand (petal/local/mode.py); it exits when told to, or after an idle hour.

    python -m petal.local.server --state-dir DIR
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any, Final

from petal.deployment_contract import OUTPUT_NODE_SETUP_URI
from petal.local.deploy import STACK_NAME
from petal.local.emulator import LocalAws, LocalFailure, SimulatedInstall, parse_failure

IDLE_EXIT_SECONDS: Final = 3600
# So a person watching `petal --local build` sees the install progress spec by spec.
DEFAULT_PACE_SECONDS: Final = 1.0
NODE_SETUP_KEY: Final = "node-setup/petal-node-setup.sh"
REPO_ROOT: Final = Path(__file__).resolve().parents[2]


def failure_file(state_dir: Path, build_id: str) -> Path:
    """Where the CLI asks for a build to fail (`petal --local build --simulate-failure`)."""
    return state_dir / "failures" / f"{build_id}.txt"


class PersistentLocalAws(LocalAws):
    """LocalAws whose failure injection the CLI, another process, can drive."""

    def __init__(self, state_dir: Path, **kwargs: Any) -> None:
        super().__init__(REPO_ROOT, **kwargs)
        self.state_dir = state_dir

    def failure_for(self, build_id: str | None) -> LocalFailure | None:
        if build_id:
            path = failure_file(self.state_dir, build_id)
            if path.is_file():
                return parse_failure(path.read_text().strip())
        return super().failure_for(build_id)


def publish_stack(aws: LocalAws) -> dict[str, str]:
    """Give the emulated deployment the CloudFormation outputs a real stack has, so the
    CLI discovers it exactly as it discovers a deployed one."""
    bucket = aws.deployment.seed_bucket
    script = REPO_ROOT / "stacks/assets/petal-node-setup.sh"
    aws.client("s3").put_object(Bucket=bucket, Key=NODE_SETUP_KEY, Body=script.read_bytes())
    outputs = {**aws.deployment.outputs(), OUTPUT_NODE_SETUP_URI: f"s3://{bucket}/{NODE_SETUP_KEY}"}
    template = {
        "Resources": {
            "Marker": {
                "Type": "AWS::SSM::Parameter",
                "Properties": {
                    "Name": "/petal-local/deployed",
                    "Type": "String",
                    "Value": "petal local mode",
                },
            }
        },
        "Outputs": {key: {"Value": value} for key, value in outputs.items()},
    }
    cloudformation = aws.client("cloudformation")
    cloudformation.create_stack(StackName=STACK_NAME, TemplateBody=json.dumps(template))
    return outputs


def stopped_file(state_dir: Path) -> Path:
    """Written when the emulator has stopped: its port and threads are released."""
    return state_dir / "stopped"


def serve(state_dir: Path, pace_seconds: float = DEFAULT_PACE_SECONDS) -> int:
    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / "failures").mkdir(exist_ok=True)
    stopped_file(state_dir).unlink(missing_ok=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    install = SimulatedInstall(minutes=45, pace_seconds=pace_seconds)
    with PersistentLocalAws(state_dir, server=True, install=install, log_level="ERROR") as aws:
        outputs = publish_stack(aws)
        info = {
            "pid": os.getpid(),
            "endpoint": aws.endpoint_url,
            "region": aws.region,
            "stack_name": STACK_NAME,
            "outputs": outputs,
            "started_at": time.time(),
        }
        ready = state_dir / "server.json"
        ready.with_suffix(".tmp").write_text(json.dumps(info, indent=2))
        ready.with_suffix(".tmp").replace(ready)
        print(f"petal local AWS emulator ready at {aws.endpoint_url}", flush=True)
        deadline = time.monotonic() + IDLE_EXIT_SECONDS
        while not stop.wait(1.0):
            if (state_dir / "touch").exists():
                deadline = time.monotonic() + IDLE_EXIT_SECONDS
                (state_dir / "touch").unlink(missing_ok=True)
            if time.monotonic() > deadline:
                break
        ready.unlink(missing_ok=True)
    stopped_file(state_dir).touch()
    return 0


def main(argv: list[str] | None = None) -> int:
    # The Lambda handlers are the repository's lambdas/ package, beside petal/.
    sys.path.insert(0, str(REPO_ROOT))
    parser = argparse.ArgumentParser(prog="python -m petal.local.server")
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument(
        "--pace-seconds",
        type=float,
        default=DEFAULT_PACE_SECONDS,
        help="real seconds the simulated install spends on each root spec",
    )
    args = parser.parse_args(argv)
    return serve(args.state_dir, args.pace_seconds)


if __name__ == "__main__":
    sys.exit(main())
