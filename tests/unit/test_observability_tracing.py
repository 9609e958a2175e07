"""Powertools in the handlers: tracing on in Lambda (X-Ray, botocore patched), off
elsewhere without importing the X-Ray SDK; the clients come without boto3's s3transfer.
Each case runs in a fresh interpreter, where imports can be seen."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import json, sys
from lambdas import observability
from lambdas.observability import lambda_handler, logger, tracer

class Context:
    function_name = "f"; memory_limit_in_mb = 128; aws_request_id = "r"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:f"

@lambda_handler
def handler(event, context):
    observability.correlate("b-1")
    return {"correlation": logger.get_correlation_id()}

result = handler({}, Context()) if tracer.disabled else None
print(json.dumps({
    "disabled": bool(tracer.disabled),
    "xray_core": "aws_xray_sdk.core" in sys.modules,
    "result": result,
}))
"""


def run(probe: str, **env: str) -> dict[str, object]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("POWERTOOLS_", "LAMBDA_"))}
    result = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO_ROOT,
        env={**base, "AWS_DEFAULT_REGION": "us-east-1", **env},
    )
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


def test_outside_lambda_tracing_is_off_and_the_xray_sdk_never_loads() -> None:
    found = run(PROBE)
    assert found == {"disabled": True, "xray_core": False, "result": {"correlation": "b-1"}}
    assert run(PROBE, LAMBDA_TASK_ROOT=str(REPO_ROOT), POWERTOOLS_TRACE_DISABLED="true")["disabled"]


def test_in_lambda_tracing_is_on_with_botocore_patched() -> None:
    probe = PROBE + (
        "from aws_xray_sdk.core.patcher import _PATCHED_MODULES\n"
        "print(json.dumps({'disabled': bool(tracer.disabled),"
        " 'patched': sorted(_PATCHED_MODULES)}))\n"
    )
    found = run(probe, LAMBDA_TASK_ROOT=str(REPO_ROOT))
    assert found == {"disabled": False, "patched": ["botocore", "httplib"]}


def test_handler_clients_do_not_import_s3transfer() -> None:
    probe = (
        "import json, sys\n"
        "from lambdas.clients import client\n"
        "ec2 = client('ec2')\n"
        "print(json.dumps({'s3transfer': 's3transfer' in sys.modules,"
        " 'region': ec2.meta.region_name}))\n"
    )
    assert run(probe, AWS_REGION="eu-west-1") == {"s3transfer": False, "region": "eu-west-1"}
