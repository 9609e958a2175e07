"""Load one YAML document defensively, keeping the line of every value.

Seeds come from users and from S3 uploads, so the loader refuses what PyYAML would
accept silently: files over 1 MiB, several documents, duplicate keys, and aliases whose
expansion grows beyond a fixed budget ("billion laughs").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

import yaml

MAX_BYTES: Final = 1024 * 1024
MAX_NODES: Final = 20_000  # values after alias expansion; a large real seed has ~2,000
MAX_DEPTH: Final = 32


class YamlSourceError(ValueError):
    """The text is not one acceptable YAML document; `line` is 1-based when known."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.line = line


@dataclass
class YamlDocument:
    data: Any
    # "software.packages[2]" -> 1-based line; "" is the document itself
    lines: dict[str, int] = field(default_factory=dict)

    def line_of(self, path: str) -> int | None:
        """The line of `path`, or of its nearest ancestor that has one."""
        while True:
            if path in self.lines:
                return self.lines[path]
            if not path:
                return None
            cut = max(path.rfind("."), path.rfind("["))
            path = path[: max(cut, 0)]


def join_path(parent: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{parent}[{key}]"
    return f"{parent}.{key}" if parent else key


def load_yaml_document(text: str | bytes) -> YamlDocument:
    raw = text.encode() if isinstance(text, str) else text
    if len(raw) > MAX_BYTES:
        raise YamlSourceError(f"is {len(raw):,} bytes; a seed may be at most {MAX_BYTES:,} bytes")
    try:
        decoded = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise YamlSourceError(f"is not UTF-8 text ({error.reason} at byte {error.start})") from None
    loader = yaml.SafeLoader(decoded)
    try:
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = mark.line + 1 if mark else None
        # "while parsing ..." contexts add noise; "expected a single document" explains.
        context = error.context if error.context and not error.context.startswith("while") else None
        what = ", ".join(filter(None, [context, error.problem])) or "invalid YAML"
        column = f" (column {mark.column + 1})" if mark else ""
        raise YamlSourceError(f"YAML syntax error: {what}{column}", line) from None
    except yaml.YAMLError as error:
        raise YamlSourceError(f"YAML syntax error: {error}") from None
    finally:
        loader.dispose()
    if node is None:
        raise YamlSourceError("is empty: a seed is a YAML mapping with at least name and software")
    document = YamlDocument(data=None)
    document.data = _Converter(document).convert(node, "", 0)
    return document


class _Converter:
    def __init__(self, document: YamlDocument) -> None:
        self.document = document
        self.budget = MAX_NODES
        # SafeLoader's own scalar resolution: ints, bools, null, floats, strings.
        self.scalars = yaml.constructor.SafeConstructor()

    def convert(self, node: yaml.Node, path: str, depth: int) -> Any:
        self.budget -= 1
        if self.budget < 0:
            raise YamlSourceError(
                f"expands to more than {MAX_NODES:,} values (aliases that repeat aliases?)",
                node.start_mark.line + 1,
            )
        if depth > MAX_DEPTH:
            raise YamlSourceError(f"nests deeper than {MAX_DEPTH} levels", node.start_mark.line + 1)
        self.document.lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            result: dict[str, Any] = {}
            for key_node, value_node in node.value:
                if (
                    not isinstance(key_node, yaml.ScalarNode)
                    or key_node.tag == "tag:yaml.org,2002:merge"
                ):
                    raise YamlSourceError(
                        "keys must be plain names (no complex keys or '<<' merges)",
                        key_node.start_mark.line + 1,
                    )
                key = key_node.value
                if key in result:
                    raise YamlSourceError(
                        f"{join_path(path, key)!s} is given twice", key_node.start_mark.line + 1
                    )
                child = join_path(path, key)
                self.document.lines[child] = key_node.start_mark.line + 1
                result[key] = self.convert(value_node, child, depth + 1)
            return result
        if isinstance(node, yaml.SequenceNode):
            return [
                self.convert(item, join_path(path, index), depth + 1)
                for index, item in enumerate(node.value)
            ]
        return self.scalars.construct_object(node)
