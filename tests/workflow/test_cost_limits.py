"""Cost guard rails on the emulator: a seed asking for more than
the deployment allows fails in Prepare, naming the field, the limit and the setting,
with no instance, volume, snapshot or lock; raising the setting lets the build run."""

from __future__ import annotations

from typing import Any

import pytest

from petal.deployment_contract import ENV_ALLOWED_INSTANCE_TYPES, ENV_MAX_VOLUME_GB
from petal.local.emulator import LocalAws
from tests.workflow.conftest import seed_document
from tests.workflow.helpers import assert_nothing_created


def document(**changes: dict[str, Any]) -> dict[str, Any]:
    doc = seed_document()
    for section, values in changes.items():
        doc[section] = {**doc[section], **values}
    return doc


def test_the_issues_example_is_refused_in_prepare(aws: LocalAws) -> None:
    seed = document(
        build={"instance_type": "p5.48xlarge", "timeout_minutes": 2880},
        volume={"size_gb": 16384, "iops": 16000},
    )

    result = aws.build({"seed": seed, "build_id": "too-big"})

    assert result.status == "FAILED"
    assert result.error == "InvalidBuildRequest"
    cause = str(result.cause)
    for fragment in (
        "build.instance_type p5.48xlarge matches none",
        "petal:allowedInstanceTypes",
        "volume.size_gb 16384 is above the limit of 2000 GiB (petal:maxVolumeGb)",
        "volume.iops 16000 is above the limit of 6000 IOPS (petal:maxVolumeIops)",
        "build.timeout_minutes 2880 is above the limit of 720 minutes (petal:maxBuildHours",
        "Nothing was created.",
    ):
        assert fragment in cause
    assert_nothing_created(aws)


def test_a_raised_setting_lets_the_build_run(
    aws: LocalAws, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed = document(build={"instance_type": "m7i.24xlarge"}, volume={"size_gb": 3000})

    refused = aws.build({"seed": seed, "build_id": "large-refused"})
    assert refused.status == "FAILED"
    assert "petal:maxVolumeGb" in str(refused.cause)
    assert "petal:allowedInstanceTypes" in str(refused.cause)
    assert_nothing_created(aws)

    monkeypatch.setenv(ENV_ALLOWED_INSTANCE_TYPES, "m7i.*")
    monkeypatch.setenv(ENV_MAX_VOLUME_GB, "3000")
    allowed = aws.build({"seed": seed, "build_id": "large-allowed"})
    assert allowed.status == "SUCCEEDED", allowed.cause
