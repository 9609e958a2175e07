"""The checks with the real Spack (`make spack-check`, which .ci/run runs): marked
`spack`, they run only when asked for with `-m spack`, and then need a Spack."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from petal.seed import spack_check


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Deselected (counted in pytest's summary), never skipped: `make test` stays free of
    # the tarball and `make spack-check` runs exactly these.
    if "spack" in (config.option.markexpr or ""):
        return
    chosen = [item for item in items if item.get_closest_marker("spack") is None]
    if len(chosen) != len(items):
        config.hook.pytest_deselected(items=[i for i in items if i not in chosen])
        items[:] = chosen


@pytest.fixture(scope="session")
def spack() -> spack_check.Spack:
    tarball = os.environ.get("PETAL_SPACK_TARBALL")
    root = os.environ.get("PETAL_SPACK_ROOT")
    if not tarball and not root:
        pytest.fail(
            "the spack tests need a Spack: `make spack-check SPACK_TARBALL=...` "
            "(or PETAL_SPACK_TARBALL / PETAL_SPACK_ROOT)"
        )
    return spack_check.prepare(
        tarball=Path(tarball) if tarball else None,
        spack_root=Path(root) if root and not tarball else None,
    )
