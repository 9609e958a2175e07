"""Load one YAML document defensively, keeping the line of every value.

Seeds come from users and from S3 uploads, so the loader refuses what PyYAML would
accept silently, or crash on, and says where: documents over a size limit, characters
YAML does not allow, several documents, duplicate keys, aliases whose expansion grows
beyond a fixed budget ("billion laughs"), nesting deeper than any petal document needs
(checked while composing, before the nesting costs time or stack), tags other than the
plain types, and values those plain types cannot hold (`!!int 0x`, a 5,000-digit
number). Dates stay text: no petal field is a date, and `2024-13-45` is no reason to fail.
Every failure is a `YamlSourceError` with the line (and field, when known); nothing
else escapes.

PyYAML itself is imported on the first load (petal.yaml_composing): the resolver and the
Lambda handlers that only name these types do not pay for it at a cold start.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Final

# The largest YAML document petal reads at all; a seed's own, smaller limit is
# petal.seed.model.MAX_SEED_BYTES (checked before this).
MAX_BYTES: Final = 1024 * 1024
MAX_NODES: Final = 20_000  # values after alias expansion; a large real seed has ~2,000
MAX_DEPTH: Final = 32
# A number longer than this is no count, size or id petal uses; Python itself refuses
# decimal strings over 4,300 digits (and converting long ones is slow).
MAX_NUMBER_CHARACTERS: Final = 100

# What YAML itself refuses to read (PyYAML's Reader.NON_PRINTABLE), found before parsing
# so the message names the line and column instead of a byte offset.
_NOT_YAML: Final = re.compile(
    "[^\x09\x0a\x0d\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]"
)


class YamlSourceError(ValueError):
    """The text is not one acceptable YAML document; `line` is 1-based when known,
    `path` the field ("" when the problem is the document's, or unknown)."""

    def __init__(self, message: str, line: int | None = None, path: str = "") -> None:
        super().__init__(message)
        self.line = line
        self.path = path


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
    # surrogatepass: a lone surrogate is then reported as "not UTF-8", not raised.
    raw = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    if len(raw) > MAX_BYTES:
        raise YamlSourceError(f"is {len(raw):,} bytes; at most {MAX_BYTES:,} are read")
    try:
        decoded = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise YamlSourceError(f"is not UTF-8 text ({error.reason} at byte {error.start})") from None
    bad = _NOT_YAML.search(decoded)
    if bad is not None:
        at = bad.start()
        bad_column = at - (decoded.rfind("\n", 0, at) + 1) + 1
        raise YamlSourceError(
            f"contains the character U+{ord(bad.group()):04X} (column {bad_column}), which "
            "YAML does not allow: remove it",
            decoded.count("\n", 0, at) + 1,
        )
    from petal.yaml_composing import compose_document

    return compose_document(decoded)
