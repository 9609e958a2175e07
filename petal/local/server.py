"""The process behind `petal --local`: an emulated petal deployment on this machine.

It runs petal/local/emulator.py in server mode (moto on a loopback port, the real Lambda
handlers, a simulated builder) and keeps it up between CLI commands, so `petal --local
build` and a later `petal --local build list` see the same builds. The CLI starts it on
demand (petal/local/mode.py, which also describes the state directory they share); it
exits when `petal local stop` asks (STOP_SIGNAL), on another signal, or after an idle
hour, and records why in the state directory.

    python -m petal.local.server --state-dir DIR
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any, Final

from petal.deployment_contract import OUTPUT_NODE_SETUP_URI
from petal.local.deploy import STACK_NAME
from petal.local.emulator import LocalAws, LocalFailure, SimulatedInstall, parse_failure
from petal.local.mode import (
    HEALTH_BUCKET,
    HEALTH_KEY,
    REASON_ERROR,
    REASON_IDLE,
    REASON_STOP,
    STOP_SIGNAL,
    failure_file,
    record_stop,
    server_file,
    stopped_file,
)

IDLE_EXIT_SECONDS: Final = 3600
# So a person watching `petal --local build` sees the install progress spec by spec.
DEFAULT_PACE_SECONDS: Final = 1.0
NODE_SETUP_KEY: Final = "node-setup/petal-node-setup.sh"
REPO_ROOT: Final = Path(__file__).resolve().parents[2]


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


def serve(state_dir: Path, pace_seconds: float = DEFAULT_PACE_SECONDS) -> int:
    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / "failures").mkdir(exist_ok=True)
    stopped_file(state_dir).unlink(missing_ok=True)
    token = secrets.token_hex(16)
    stop = threading.Event()
    reason = [REASON_IDLE]

    def on_signal(signum: int, _frame: object) -> None:
        reason[0] = REASON_STOP if signum == STOP_SIGNAL else signal.Signals(signum).name
        stop.set()

    for signum in (STOP_SIGNAL, signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, on_signal)
    install = SimulatedInstall(minutes=45, pace_seconds=pace_seconds)
    aws = PersistentLocalAws(state_dir, server=True, install=install, log_level="ERROR")
    aws.start()
    try:
        outputs = publish_stack(aws)
        s3 = aws.client("s3")
        s3.create_bucket(Bucket=HEALTH_BUCKET)
        # Public, so that the CLI's unsigned request may read it.
        s3.put_object(Bucket=HEALTH_BUCKET, Key=HEALTH_KEY, Body=token.encode(), ACL="public-read")
        info = {
            "pid": os.getpid(),
            "endpoint": aws.endpoint_url,
            "region": aws.region,
            "stack_name": STACK_NAME,
            "outputs": outputs,
            "started_at": time.time(),
            "token": token,
        }
        ready = server_file(state_dir)
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
    except BaseException:
        reason[0] = REASON_ERROR
        traceback.print_exc()
    record_stop(state_dir, token, reason[0])
    print(f"petal local AWS emulator stopped ({reason[0]})", flush=True)
    # No graceful LocalAws.stop(): the state is discarded anyway, and it waited for the
    # simulated builders (up to 10 s) and werkzeug's half-second poll loop, which made
    # `petal local stop` slow. Exiting releases the port and ends every thread.
    os._exit(1 if reason[0] == REASON_ERROR else 0)


def share_botocore_loaders() -> None:
    """One botocore data loader for every boto3 session of this process.

    moto creates a session wherever it needs a region list or a model (three while
    importing its EC2 backend alone), and each new session parsed the multi-megabyte
    EC2 model and endpoint tables again: about a third of the emulator's start. One
    session's clients already share a loader; this lets every session share it.
    moto's own loader, which merges moto's extras into the models it loads, is left
    separate.
    """
    import botocore.loaders
    import botocore.session

    create_loader = botocore.loaders.create_loader
    loaders: dict[str | None, Any] = {}

    def shared_loader(search_path_string: str | None = None) -> Any:
        if search_path_string not in loaders:
            loaders[search_path_string] = create_loader(search_path_string)
        return loaders[search_path_string]

    botocore.session.create_loader = shared_loader


def main(argv: list[str] | None = None) -> int:
    # The Lambda handlers are the repository's lambdas/ package, beside petal/.
    sys.path.insert(0, str(REPO_ROOT))
    share_botocore_loaders()
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
