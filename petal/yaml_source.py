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
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

import yaml
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.resolver import Resolver

# The largest YAML document petal reads at all; a seed's own, smaller limit is
# petal.seed.model.MAX_SEED_BYTES (checked before this).
MAX_BYTES: Final = 1024 * 1024
MAX_NODES: Final = 20_000  # values after alias expansion; a large real seed has ~2,000
MAX_DEPTH: Final = 32
# A number longer than this is no count, size or id petal uses; Python itself refuses
# decimal strings over 4,300 digits (and converting long ones is slow).
MAX_NUMBER_CHARACTERS: Final = 100

_TAG: Final = "tag:yaml.org,2002:"
_STR, _INT, _FLOAT, _BOOL, _NULL = (f"{_TAG}{t}" for t in ("str", "int", "float", "bool", "null"))
_MAP, _SEQ, _MERGE = f"{_TAG}map", f"{_TAG}seq", f"{_TAG}merge"
# What YAML itself refuses to read (PyYAML's Reader.NON_PRINTABLE), found before parsing
# so the message names the line and column instead of a byte offset.
_NOT_YAML: Final = re.compile(
    "[^\x09\x0a\x0d\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]"
)
_PLAIN_TYPES: Final = "text, numbers, true/false, null, lists and mappings"


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


class _Resolver(Resolver):
    # YAML 1.1's implicit timestamps (2024-01-05 becomes a date, 2024-13-45 a crash) and
    # `=` values are no petal type: such plain scalars stay text.
    yaml_implicit_resolvers = {  # noqa: RUF012 - PyYAML's own class attribute
        first: [
            (tag, regexp)
            for tag, regexp in resolvers
            if tag in (_INT, _FLOAT, _BOOL, _NULL, _MERGE)
        ]
        for first, resolvers in Resolver.yaml_implicit_resolvers.items()
    }


class _BoundedComposer(Composer):
    """PyYAML's composer, refusing too deep nesting and too many nodes as it goes.

    The stock composer recurses once per level, so 5,000 nested `[` ended in a
    RecursionError after seconds of work; here the limit stops it at level 33."""

    peek_event: Callable[[], yaml.Event]  # from the parser it is mixed with

    def __init__(self) -> None:
        super().__init__()
        self.depth = 0
        self.nodes = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        self.depth += 1
        self.nodes += 1
        try:
            if self.depth > MAX_DEPTH + 1:  # the document itself is level 0
                raise YamlSourceError(f"nests deeper than {MAX_DEPTH} levels", self._line())
            if self.nodes > MAX_NODES:
                raise YamlSourceError(f"has more than {MAX_NODES:,} values", self._line())
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1

    def _line(self) -> int | None:
        mark = self.peek_event().start_mark
        return mark.line + 1 if mark is not None else None


if yaml.__with_libyaml__:
    # libyaml's parser is C: a 500-package seed parses in a few milliseconds.
    from yaml._yaml import CParser as _Parser
else:  # pragma: no cover - every supported wheel has libyaml
    from yaml.parser import Parser as _Parser  # type: ignore[assignment]


class _Loader(_BoundedComposer, _Parser, _Resolver):
    def __init__(self, text: str) -> None:
        _Parser.__init__(self, text)
        _BoundedComposer.__init__(self)
        _Resolver.__init__(self)


def load_yaml_document(text: str | bytes, *, max_bytes: int = MAX_BYTES) -> YamlDocument:
    # surrogatepass: a lone surrogate is then reported as "not UTF-8", not raised.
    raw = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    if len(raw) > max_bytes:
        raise YamlSourceError(f"is {len(raw):,} bytes; at most {max_bytes:,} are read")
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
    loader = _Loader(decoded)
    try:
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = mark.line + 1 if mark else None
        # "while parsing ..." contexts add noise; "expected a single document" explains.
        context = error.context if error.context and not error.context.startswith("while") else None
        what = ", ".join(filter(None, [context, error.problem])) or "invalid YAML"
        if "nesting depth" in what:  # libyaml's own limit (1,000), reached while scanning ahead
            raise YamlSourceError(f"nests deeper than {MAX_DEPTH} levels", line) from None
        column = f" (column {mark.column + 1})" if mark else ""
        raise YamlSourceError(f"YAML syntax error: {what}{column}", line) from None
    except yaml.YAMLError as error:
        raise YamlSourceError(f"YAML syntax error: {error}") from None
    except RecursionError:  # pragma: no cover - the depth limit comes first
        raise YamlSourceError(f"nests deeper than {MAX_DEPTH} levels") from None
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
        # SafeLoader's own constructors for the plain scalar types, and nothing else.
        self.scalars = SafeConstructor()

    def convert(self, node: yaml.Node, path: str, depth: int) -> Any:
        line = node.start_mark.line + 1
        self.budget -= 1
        if self.budget < 0:
            raise YamlSourceError(
                f"expands to more than {MAX_NODES:,} values (aliases that repeat aliases?)", line
            )
        if depth > MAX_DEPTH:  # aliases can nest what the composer saw as shallow
            raise YamlSourceError(f"nests deeper than {MAX_DEPTH} levels", line, path)
        self.document.lines.setdefault(path, line)
        if isinstance(node, yaml.MappingNode):
            self._check_tag(node, (_MAP,), path)
            result: dict[str, Any] = {}
            for key_node, value_node in node.value:
                key_line = key_node.start_mark.line + 1
                if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == _MERGE:
                    raise YamlSourceError(
                        "keys must be plain names (no complex keys or '<<' merges)", key_line, path
                    )
                self._check_tag(key_node, (_STR, _INT, _FLOAT, _BOOL, _NULL), path)
                key = key_node.value
                child = join_path(path, key)
                if key in result:
                    raise YamlSourceError(f"{child} is given twice", key_line)
                self.document.lines[child] = key_line
                result[key] = self.convert(value_node, child, depth + 1)
            return result
        if isinstance(node, yaml.SequenceNode):
            self._check_tag(node, (_SEQ,), path)
            return [
                self.convert(item, join_path(path, index), depth + 1)
                for index, item in enumerate(node.value)
            ]
        return self._scalar(node, path)

    def _check_tag(self, node: yaml.Node, allowed: tuple[str, ...], path: str) -> None:
        if node.tag not in allowed:
            tag = node.tag.replace(_TAG, "!!")
            raise YamlSourceError(
                f"the tag {tag!r} is not allowed: petal reads plain YAML "
                f"({_PLAIN_TYPES}); remove the tag (quote the value to make it text)",
                node.start_mark.line + 1,
                path,
            )

    def _scalar(self, node: yaml.Node, path: str) -> Any:
        self._check_tag(node, (_STR, _INT, _FLOAT, _BOOL, _NULL), path)
        value = str(node.value)
        if node.tag == _STR:
            return value
        kind = {_INT: "a whole number", _FLOAT: "a number", _BOOL: "true or false", _NULL: "null"}
        line = node.start_mark.line + 1
        if node.tag in (_INT, _FLOAT) and len(value) > MAX_NUMBER_CHARACTERS:
            raise YamlSourceError(
                f"a number of {len(value):,} characters is too long (at most "
                f"{MAX_NUMBER_CHARACTERS}); quote it if it is meant as text",
                line,
                path,
            )
        try:
            return self.scalars.construct_object(node)
        except (ValueError, TypeError, KeyError, AttributeError, yaml.YAMLError):
            # Only an explicit tag (`!!int 0x`) gets here: implicit ones match their regex.
            shown = value if len(value) <= 40 else value[:37] + "..."
            raise YamlSourceError(
                f"{shown!r} is not {kind[node.tag]}: fix the value or remove the tag",
                line,
                path,
            ) from None
