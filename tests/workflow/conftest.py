"""The real state machine file on moto, with the real handlers (petal.local.emulator)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from petal.build.definition import StateMachineSettings
from petal.local.emulator import LocalAws, SimulatedInstall
from petal.seed.loading import load_seed

REPO_ROOT = Path(__file__).resolve().parents[2]
SEED_FILE = REPO_ROOT / "seeds" / "testing" / "workload-basic.yaml"


def seed_document(**changes: Any) -> dict[str, Any]:
    document = load_seed(SEED_FILE).to_document()
    document.update(changes)
    return document


@pytest.fixture
def settings() -> StateMachineSettings:
    return StateMachineSettings.fast()


@pytest.fixture
def install() -> SimulatedInstall:
    return SimulatedInstall()


@pytest.fixture
def aws(settings: StateMachineSettings, install: SimulatedInstall) -> Iterator[LocalAws]:
    with LocalAws(REPO_ROOT, settings=settings, install=install) as local:
        yield local


def pytest_configure(config: pytest.Config) -> None:
    # Powertools warns on every invocation that emits no metric.
    config.addinivalue_line("filterwarnings", "ignore:No application metrics to publish")
