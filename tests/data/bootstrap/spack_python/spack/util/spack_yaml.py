"""Stand-in for spack.util.spack_yaml in the bootstrap tests: PyYAML's safe loader."""

from typing import IO, Any

import yaml


def load(stream: IO[str]) -> Any:
    return yaml.safe_load(stream)
