"""What every step's event says of its build."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def build_id_hint(event: Mapping[str, Any]) -> str | None:
    """The build id an event is about, before anything is validated (for log correlation)."""
    for path in (("build", "build_id"), ("request", "build_id"), ("state", "build", "build_id")):
        value: Any = event
        for part in path:
            value = value.get(part) if isinstance(value, Mapping) else None
        if isinstance(value, str):
            return value
    execution = event.get("execution")
    if isinstance(execution, Mapping) and isinstance(execution.get("name"), str):
        return str(execution["name"])
    return None
