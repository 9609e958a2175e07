"""Cluster overrides from a mapping (the resolver's request) or a --queue flag."""

from __future__ import annotations

from typing import Any

from petal.cluster.settings import ClusterOverrides, ConfigError
from petal.seed.model import Queue


def parse_queue(text: str) -> Queue:
    """`--queue NAME:INSTANCE_TYPE[:MIN_COUNT[:MAX_COUNT]]`."""
    parts = text.split(":")
    usage = "use NAME:INSTANCE_TYPE[:MIN_COUNT[:MAX_COUNT]], e.g. compute:c6a.8xlarge:0:16"
    if not 2 <= len(parts) <= 4 or not all(parts):
        raise ConfigError("cluster.queues", f"{text!r}: {usage}", "--queue")
    counts = parts[2:]
    if not all(c.isdigit() for c in counts):
        raise ConfigError("cluster.queues", f"{text!r}: counts must be numbers; {usage}", "--queue")
    min_count = int(counts[0]) if counts else 0
    max_count = int(counts[1]) if len(counts) > 1 else max(10, min_count)
    return Queue(parts[0], parts[1], min_count, max_count, ())


def overrides_from_mapping(data: Any, field: str = "overrides") -> ClusterOverrides:
    """ClusterOverrides from a request's JSON mapping (the resolver Lambda)."""
    if data is None:
        return ClusterOverrides()
    if not isinstance(data, dict):
        raise ConfigError(field, "must be a mapping")
    allowed = {
        "subnet_id": str,
        "key_name": str,
        "head_node_instance_type": str,
        "node_setup_uri": str,
        "deletion_policy": str,
        "size_gb": int,
    }
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key in allowed:
            kind = allowed[key]
            if isinstance(value, bool) or not isinstance(value, kind):
                raise ConfigError(f"{field}.{key}", f"must be {kind.__name__}, not {value!r}")
            values[key] = value
        elif key == "compute_subnet_ids":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ConfigError(f"{field}.{key}", "must be a list of subnet ids")
            values[key] = tuple(value)
        elif key == "queues":
            values[key] = tuple(
                _queue_from_mapping(q, f"{field}.queues[{i}]")
                for i, q in enumerate(value if isinstance(value, list) else [None])
            )
        else:
            names = ", ".join([*allowed, "compute_subnet_ids", "queues"])
            raise ConfigError(f"{field}.{key}", f"unknown override; allowed: {names}")
    return ClusterOverrides(**values)


def _queue_from_mapping(data: Any, field: str) -> Queue:
    if not isinstance(data, dict) or not isinstance(data.get("name"), str):
        raise ConfigError(field, "must be a mapping with name, instance_type, min_count, max_count")
    instance_type = data.get("instance_type")
    min_count, max_count = data.get("min_count", 0), data.get("max_count", 10)
    subnets = data.get("subnet_ids", [])
    if not isinstance(instance_type, str):
        raise ConfigError(f"{field}.instance_type", "is required, e.g. c6a.8xlarge")
    for key, count in (("min_count", min_count), ("max_count", max_count)):
        if isinstance(count, bool) or not isinstance(count, int):
            raise ConfigError(f"{field}.{key}", f"must be a whole number, not {count!r}")
    if not isinstance(subnets, list) or not all(isinstance(s, str) for s in subnets):
        raise ConfigError(f"{field}.subnet_ids", "must be a list of subnet ids")
    return Queue(data["name"], instance_type, min_count, max_count, tuple(subnets))
