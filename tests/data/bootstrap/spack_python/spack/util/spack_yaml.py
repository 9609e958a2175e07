"""Stand-in for spack.util.spack_yaml in the bootstrap tests: PyYAML's safe loader."""

from typing import IO, Any

import yaml


def load(stream: IO[str]) -> Any:
    return yaml.safe_load(stream)


def dump(data: Any, stream: IO[str] | None = None, default_flow_style: bool = False) -> Any:
    return yaml.safe_dump(data, stream, default_flow_style=default_flow_style, sort_keys=False)
