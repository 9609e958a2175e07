"""Hints carry the global options of the invocation that printed them."""

from __future__ import annotations

import pytest

from petal.cli import hints
from petal.local.deploy import STACK_NAME


def test_outside_local_mode_a_hint_is_a_plain_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    assert hints.petal("build list") == "petal build list"


def test_in_local_mode_a_hint_carries_local(monkeypatch: pytest.MonkeyPatch) -> None:
    # What `petal --local` sets before any command runs (petal.local.mode.activate).
    monkeypatch.setenv("PETAL_STACK_NAME", STACK_NAME)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
    assert hints.petal("build status b-1 --watch") == "petal --local build status b-1 --watch"
