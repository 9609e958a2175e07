"""PyYAML's side of petal.yaml_source: composing a document with bounded depth and size,
and converting its nodes to plain values, keeping their lines. Imported by
`load_yaml_document` on its first call."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

import yaml
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.resolver import Resolver

from petal.yaml_source import (
    MAX_DEPTH,
    MAX_NODES,
    MAX_NUMBER_CHARACTERS,
    YamlDocument,
    YamlSourceError,
    join_path,
)

_TAG: Final = "tag:yaml.org,2002:"
_STR, _INT, _FLOAT, _BOOL, _NULL = (f"{_TAG}{t}" for t in ("str", "int", "float", "bool", "null"))
_MAP, _SEQ, _MERGE = f"{_TAG}map", f"{_TAG}seq", f"{_TAG}merge"
_PLAIN_TYPES: Final = "text, numbers, true/false, null, lists and mappings"


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


def compose_document(decoded: str) -> YamlDocument:
    """The document of text that passed load_yaml_document's checks of size and characters."""
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
