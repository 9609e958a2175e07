"""checkov's lock file: every pin hashed, and checkov.in's pin in it (`make lock`)."""

from __future__ import annotations

from tests.unit.test_lock_files import LOCKS, Lock, assert_pinned, requirements_in


def test_checkov_is_locked_with_hashes_at_its_declared_version() -> None:
    lock = Lock.read("checkov.txt")
    declared = requirements_in(LOCKS / "checkov.in")
    assert [str(r.specifier).startswith("==") for r in declared] == [True]
    assert_pinned(lock, declared)
    assert [name for name, hashed in lock.hashed.items() if not hashed] == []
