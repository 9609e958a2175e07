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


def test_commands_in_text_written_elsewhere_carry_local_too(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A step's failure cause, written by the pipeline: it cannot know about --local.
    cause = (
        "another build holds the lock (`petal build status b-0`); run petal bake again. "
        "petal local mode says so; petal --local create is right already"
    )
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    assert hints.in_text(cause) == cause
    monkeypatch.setenv("PETAL_STACK_NAME", STACK_NAME)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
    assert hints.in_text(cause) == (
        "another build holds the lock (`petal --local build status b-0`); run petal --local "
        "bake again. petal local mode says so; petal --local create is right already"
    )
