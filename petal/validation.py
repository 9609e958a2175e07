"""Checking documents against petal's JSON Schemas, with messages that name the fix.

Every document petal reads from people or from the network (seeds, build requests,
registry documents, ~/.petal/config.yaml, the CDK settings) is checked here against its
schema in petal/schemas/, and every problem is reported the same way: a field path
such as `software.packages[2]` and a sentence saying what is allowed.

A value's schema can shape the sentences with two annotations: `description` says how
to fix it ("use <description>"), and `title` names what it is ("must be <title>",
"'x' is not <title>").
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any, Final, Literal

if TYPE_CHECKING:
    import jsonschema

    from petal.yaml_source import YamlDocument

# jsonschema (with attrs and referencing) and PyYAML are imported on first use, not
# here: many modules import this one for `Problem` or `short` alone, and in Lambda, which
# compiles them from source at every cold start, they cost about 200 ms.

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Problem:
    path: str  # "" is the document itself
    message: str
    line: int | None = None
    severity: Severity = "error"

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message

    def format(self, source: str) -> str:
        where = f"{source}:{self.line}" if self.line else source
        label = "warning: " if self.severity == "warning" else ""
        return f"{where}: {label}{self}"


@dataclass(frozen=True)
class Vocabulary:
    """The words for a document's parts, as its authors know them."""

    mapping: str = "a mapping"  # a dict value, in "not a mapping"
    object: str = "a mapping of fields"  # in "must be a mapping of fields"
    null: str = "empty (null)"
    key: str = "field"  # a mapping's key, in "unknown field"


YAML = Vocabulary()
JSON = Vocabulary(mapping="an object", object="an object", null="null")


@cache
def load_schema(name: str) -> dict[str, Any]:
    """A schema of petal/schemas/ by file name, e.g. "seed.schema.json"; callers must
    not change it (it is shared)."""
    text = resources.files("petal").joinpath(f"schemas/{name}").read_text()
    return dict(json.loads(text))


def _is_integer(checker: Any, instance: Any) -> bool:
    # JSON Schema counts 14400.0 (and, in Python, True) as an integer; petal hands these
    # values to AWS APIs, templates and arithmetic that need a real int, so only an int is.
    return isinstance(instance, int) and not isinstance(instance, bool)


@cache
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def pattern_matches(pattern: str, value: str) -> bool:
    """Whether `value` matches a schema `pattern` as petal reads it.

    jsonschema uses re.search, where `$` also matches before a final newline, so
    "c6a.xlarge\\n" passed `^...$` and broke the files and commands it reached. A pattern
    that ends in `$` must match the whole value (as it does in ECMA regex, which editors
    use); one without is a deliberate prefix check ("^https?://")."""
    regex = _compiled(pattern)
    if pattern.endswith("$") and not pattern.endswith("\\$"):
        return regex.fullmatch(value) is not None
    return regex.search(value) is not None


def _pattern(
    validator: Any, pattern: str, instance: Any, schema: Mapping[str, Any]
) -> Iterator[jsonschema.ValidationError]:
    import jsonschema

    if isinstance(instance, str) and not pattern_matches(pattern, instance):
        yield jsonschema.ValidationError(f"{instance!r} does not match {pattern!r}")


@cache
def _validator_class() -> Any:
    import jsonschema
    import jsonschema.validators

    return jsonschema.validators.extend(  # type: ignore[no-untyped-call]
        jsonschema.Draft202012Validator,
        validators={"pattern": _pattern},
        type_checker=jsonschema.Draft202012Validator.TYPE_CHECKER.redefine("integer", _is_integer),
    )


@cache
def _validator(name: str) -> Any:
    return _validator_class()(load_schema(name))


# C0 and C1 controls, DEL, and the Unicode line and paragraph separators: none belongs in
# a name, spec, id or description, and each breaks the YAML, JSON, tags, shell commands
# and terminal output these values end up in.
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_CONTROL_NAMES: Final = {"\n": "a line break", "\r": "a carriage return", "\t": "a tab"}


def control_character(text: str) -> str | None:
    """What the first control character of `text` is, in words, and where; None if none."""
    found = _CONTROL.search(text)
    if found is None:
        return None
    char = found.group()
    name = _CONTROL_NAMES.get(char, f"the control character U+{ord(char):04X}")
    return f"{name} at position {found.start() + 1}"


def control_problems(document: Any, path: str = "") -> Iterator[Problem]:
    """A problem for every string (value or key) in `document` with a control character."""
    from petal.yaml_source import join_path

    if isinstance(document, str):
        where = control_character(document)
        if where:
            message = f"{short(document)} contains {where}: remove it (one line of plain text)"
            yield Problem(path, message)
    elif isinstance(document, dict):
        for key, value in document.items():
            child = join_path(path, str(key))
            if isinstance(key, str) and control_character(key):
                message = f"the name {short(key)} contains {control_character(key)}: remove it"
                yield Problem(child, message)
            yield from control_problems(value, child)
    elif isinstance(document, list | tuple):
        for index, item in enumerate(document):
            yield from control_problems(item, join_path(path, index))


def problems(
    document: Any,
    schema: str,
    *,
    vocabulary: Vocabulary = YAML,
    leave: Collection[str] = (),
) -> list[Problem]:
    """Every way `document` breaks the schema of petal/schemas/ named `schema`, in
    field order; `leave` names keywords (e.g. "oneOf") the caller explains itself."""
    # Every string of every document, whatever its schema says: see _CONTROL. Such a
    # value's pattern or enum failure would only repeat the problem, less clearly.
    controls = list(control_problems(document))
    repeated = {p.path for p in controls}
    found = [
        problem
        for error in _validator(schema).iter_errors(document)
        if error.validator not in leave
        for problem in _explain(error, vocabulary)
        if not (error.validator in ("pattern", "enum") and problem.path in repeated)
    ]
    found += controls
    return sorted(found, key=lambda p: _sort_key(p.path))


def locate(found: Iterable[Problem], source: YamlDocument) -> list[Problem]:
    """The problems with the line of their field (or its nearest ancestor), in line order."""
    located = [
        problem if problem.line else replace(problem, line=source.line_of(problem.path))
        for problem in found
    ]
    return sorted(located, key=lambda p: (p.line or 0, _sort_key(p.path)))


def kind_of(value: Any, vocabulary: Vocabulary = YAML) -> str:
    """What `value` is, in words: "a list", "text", ..."""
    if isinstance(value, dict):
        return vocabulary.mapping
    if value is None:
        return vocabulary.null
    names = {bool: "a boolean", int: "a number", float: "a number", str: "text", list: "a list"}
    return names.get(type(value), type(value).__name__)


def short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _sort_key(path: str) -> list[tuple[int, int | str]]:
    # "a[10]" after "a[9]": indexes compare as numbers
    return [(0, int(p)) if p.isdigit() else (1, p) for p in re.split(r"[.\[\]]+", path) if p]


def _json_type(name: str, vocabulary: Vocabulary) -> str:
    return {
        "string": "text",
        "integer": "a whole number",
        "number": "a number",
        "boolean": "true or false",
        "array": "a list",
        "object": vocabulary.object,
        "null": vocabulary.null,
    }.get(name, name)


def _did_you_mean(value: str, options: list[str], cutoff: float) -> str:
    close = difflib.get_close_matches(value, options, n=1, cutoff=cutoff)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _explain(error: jsonschema.ValidationError, vocabulary: Vocabulary) -> Iterator[Problem]:
    from petal.yaml_source import join_path

    path = ""
    for part in error.absolute_path:
        path = join_path(path, part)
    schema = error.schema if isinstance(error.schema, dict) else {}
    value: Any = error.instance
    expected: Any = error.validator_value
    if error.validator == "additionalProperties":
        allowed = sorted(schema.get("properties", {}))
        for key in sorted(set(value) - set(allowed)):
            suggestion = _did_you_mean(str(key), allowed, 0.6)
            message = f"unknown {vocabulary.key}{suggestion}; allowed here: {', '.join(allowed)}"
            yield Problem(join_path(path, str(key)), message)
        return
    if error.validator == "required":
        for name in expected:
            if name not in value:
                sub = schema.get("properties", {}).get(name, {})
                detail = f": {sub['description']}" if "description" in sub else ""
                yield Problem(join_path(path, str(name)), f"is required{detail}")
        return
    yield Problem(path, _message(error, schema, vocabulary))


@dataclass(frozen=True)
class _Failure:
    """One failed schema keyword, with the annotations that shape its message."""

    keyword: str
    value: Any
    expected: Any  # the keyword's value in the schema
    schema: dict[str, Any]
    title: str | None
    hint: str | None
    words: Vocabulary


def _message(error: jsonschema.ValidationError, schema: dict[str, Any], words: Vocabulary) -> str:
    explain = _MESSAGES.get(str(error.validator))
    if explain is None:
        return re.sub(r"\s+", " ", error.message)[:200]
    failure = _Failure(
        keyword=str(error.validator),
        value=error.instance,
        expected=error.validator_value,
        schema=schema,
        # The document's own title names the schema ("petal seed"), not what a value must be.
        title=schema.get("title") if error.absolute_path else None,
        hint=schema.get("description"),
        words=words,
    )
    return explain(failure)


def _type_message(failure: _Failure) -> str:
    expected, value, words = failure.expected, failure.value, failure.words
    types = [expected] if isinstance(expected, str) else list(expected)
    wanted = failure.title or " or ".join(_json_type(t, words) for t in types)
    if "integer" in types and isinstance(value, float) and value.is_integer():
        # 14400.0 is refused (see _is_integer): say how to write it.
        return f"must be {wanted}, not {value!r}: write {int(value)}"
    # A scalar is shown too: "not text ('yes')" says which value to fix.
    shown = f" ({short(value)})" if type(value) in (str, int, float) else ""
    return f"must be {wanted}, not {kind_of(value, words)}{shown}"


def _enum_message(failure: _Failure) -> str:
    value, title = failure.value, failure.title
    options = [str(o) for o in failure.expected]
    # Numbers that are close as text ("31", "3") are not a likely slip.
    suggestion = _did_you_mean(value, options, 0.5) if isinstance(value, str) else ""
    what = f"not {title}" if title else "not allowed"
    return f"{short(value)} is {what}{suggestion}; use one of: {', '.join(options)}"


def _pattern_message(failure: _Failure) -> str:
    value, title, hint = failure.value, failure.title, failure.hint
    if title:
        return f"{short(value)} is not {title}" + (f": use {hint}" if hint else "")
    return f"{short(value)} is not valid: use {hint or 'the documented format'}"


def _bound_message(failure: _Failure) -> str:
    low, high = failure.schema.get("minimum"), failure.schema.get("maximum")
    return _range_message(failure.value, low, high, failure.title, failure.hint)


def _items_message(failure: _Failure) -> str:
    if failure.keyword == "minItems" and failure.expected == 1:
        return "must not be empty" + (f": {failure.hint}" if failure.hint else "")
    bound = "at least" if failure.keyword == "minItems" else "at most"
    return f"has {len(failure.value)} entries; {bound} {failure.expected} allowed"


def _length_message(failure: _Failure) -> str:
    bound = "at least" if failure.keyword == "minLength" else "at most"
    return f"is {len(failure.value)} characters long; {bound} {failure.expected} allowed"


# Keywords without an entry get jsonschema's own message.
_MESSAGES: Final[dict[str, Callable[[_Failure], str]]] = {
    "type": _type_message,
    "enum": _enum_message,
    "pattern": _pattern_message,
    "minimum": _bound_message,
    "maximum": _bound_message,
    "minItems": _items_message,
    "maxItems": _items_message,
    "minLength": _length_message,
    "maxLength": _length_message,
}


def _range_message(value: Any, low: Any, high: Any, title: str | None, hint: str | None) -> str:
    if low is not None and high is not None:
        bounds = f"from {low} to {high}"
    else:
        bounds = f"at least {low}" if low is not None else f"at most {high}"
    if title:
        joint = " " if high is not None and low is not None else " of "
        return f"must be {title}{joint}{bounds}, not {value}"
    return f"{value} is out of range: must be {bounds}" + (f" ({hint})" if hint else "")
