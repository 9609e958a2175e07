from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.local_session import Demo, local_session


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    """`petal` in subprocesses with an emulator of its own, stopped at the end."""
    with local_session(tmp_path / "local") as session:
        yield session
