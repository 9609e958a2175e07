"""Build step Bootstrap (petal.build.steps.bootstrap) and the build's log key: made
before the command goes out, kept on the build's item but in no BuildRecord, handed to
the builder as the LogKey parameter and to no one else. moto's DynamoDB, a recording
SSM stand-in."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from petal.build.log_markers import LOG_KEY_PATTERN
from petal.build.records import BuildRecord, iso
from petal.build.steps.bootstrap import bootstrap
from petal.build.table import BuildTable, table_definition
from petal.deployment_contract import PARAM_LOG_KEY
from petal.errors import PetalStepError

NOW = datetime(2025, 3, 1, tzinfo=UTC)


class RecordingSsm:
    """SendCommand answers with command ids in turn; GetCommandInvocation with `status`."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.status = "InProgress"

    def send_command(self, **kwargs: Any) -> dict[str, Any]:
        self.sent.append(kwargs)
        return {"Command": {"CommandId": f"cmd-{len(self.sent)}"}}

    def get_command_invocation(self, **kwargs: Any) -> dict[str, Any]:
        if not self.sent:
            raise ClientError({"Error": {"Code": "InvocationDoesNotExist"}}, "Get")
        return {"Status": self.status, "StatusDetails": self.status}


@pytest.fixture
def table(monkeypatch: pytest.MonkeyPatch) -> Iterator[BuildTable]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        dynamodb.create_table(**table_definition("builds"))
        builds = BuildTable(dynamodb, "builds")
        builds.create_build(
            BuildRecord(
                build_id="b1",
                status="RUNNING",
                started_at=iso(NOW),
                step="ready",
                instance_id="i-0123456789abcdef0",
                execution_arn="arn-b1",
            )
        )
        yield builds


def event(execution_arn: str = "arn-b1") -> dict[str, Any]:
    return {
        "task_token": "T1",
        "build": {
            "build_id": "b1",
            "execution_arn": execution_arn,
            "task_timeout_seconds": 14400,
            "spack_version": "v0.23.0",
            "spack_yaml": "spack:\n  specs: [zlib]\n",
            "fingerprint": "sha256:" + "ab" * 32,
            "command_timeout_seconds": 14400,
            "script_heartbeat_seconds": 300,
        },
        "resources": {"instance_id": "i-0123456789abcdef0", "volume_id": "vol-0123456789abcdef0"},
    }


def run(table: BuildTable, ssm: RecordingSsm, execution_arn: str = "arn-b1") -> dict[str, Any]:
    return bootstrap(
        event(execution_arn),
        ssm=ssm,
        table=table,
        document_name="petal-bootstrap",
        log_group="/petal/builds",
        now=NOW,
    )


def test_the_key_goes_to_the_record_and_the_builder_only(table: BuildTable) -> None:
    ssm = RecordingSsm()
    result = run(table, ssm)
    record, key = table.get_build_and_log_key("b1")
    assert record is not None and key is not None and LOG_KEY_PATTERN.fullmatch(key)
    [sent] = ssm.sent
    assert sent["Parameters"][PARAM_LOG_KEY] == [key]
    assert sent["InstanceIds"] == ["i-0123456789abcdef0"]
    # Not in what the step returns (the execution's history), nor in the record's JSON
    # (`petal build status --json`), nor in the command's comment.
    assert key not in json.dumps(result)
    assert key not in json.dumps(record.to_json())
    assert key not in sent["Comment"]
    assert record.command_id == "cmd-1"


def test_a_command_sent_again_keeps_the_builds_key(table: BuildTable) -> None:
    ssm = RecordingSsm()
    run(table, ssm)
    ssm.status = "Failed"  # the first command ended: the retry sends another
    run(table, ssm)
    _, key = table.get_build_and_log_key("b1")
    assert [s["Parameters"][PARAM_LOG_KEY] for s in ssm.sent] == [[key], [key]]


def test_each_build_has_a_key_of_its_own(table: BuildTable) -> None:
    table.create_build(
        BuildRecord(
            build_id="b2",
            status="RUNNING",
            started_at=iso(NOW),
            instance_id="i-0123456789abcdef0",
            execution_arn="arn-b2",
        )
    )
    run(table, RecordingSsm())
    second = event("arn-b2")
    second["build"]["build_id"] = "b2"
    bootstrap(
        second,
        ssm=RecordingSsm(),
        table=table,
        document_name="petal-bootstrap",
        log_group="/petal/builds",
        now=NOW,
    )
    keys = {table.get_build_and_log_key(build_id)[1] for build_id in ("b1", "b2")}
    assert len(keys) == 2 and None not in keys


def test_no_key_can_be_kept_for_another_execution_so_nothing_is_sent(table: BuildTable) -> None:
    ssm = RecordingSsm()
    with pytest.raises(PetalStepError, match="to hold its log key"):
        run(table, ssm, execution_arn="arn-of-another-execution")
    assert ssm.sent == []
    assert table.get_build_and_log_key("b1")[1] is None
