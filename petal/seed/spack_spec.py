"""A strict subset of Spack's spec syntax, parsed and written back in one canonical form.

Seed specs end up in a root shell on the build instance, so anything outside this
grammar is refused rather than escaped:

    spec      := node ( "^" node )*
    node      := name ( "@" versions )? modifier*
    modifier  := ("+" | "~" | "++" | "~~") variant-name
               | key ( "=" | "==" ) value        (target=, os=, platform=, any variant)
               | "%" name ( "@" versions )?     (compiler)
    versions  := version-item ( "," version-item )*
    version-item := "="? version | version? ":" version?

Tokens may be separated by spaces or written together (``samtools@1.17%gcc@11.3.0``).

Versions mean what a seed's author expects, not what Spack's shorthand does: in Spack
``@4.3.0`` is a range (it also matches 4.3.0.0 and 4.3.0.4). In a seed a version without
``:`` is exact, and the rendered environment says so with Spack's ``@=``
(`Spec.spack_form`). Ranges keep Spack's meaning: ``@3.11:3.11`` is any 3.11.x,
``@1.2:`` anything from 1.2 on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_NAME = r"[a-z0-9][a-z0-9_-]*"
_VERSION = r"[A-Za-z0-9_][A-Za-z0-9_.-]*"
_VERSION_ITEM = rf"(?:={_VERSION}|(?:{_VERSION})?:(?:{_VERSION})?|{_VERSION})"
_VERSIONS = rf"{_VERSION_ITEM}(?:,{_VERSION_ITEM})*"
_VALUE = r"[A-Za-z0-9_.:-]+(?:,[A-Za-z0-9_.:-]+)*"

_TOKEN = re.compile(
    rf"""
    (?P<space>\s+)
  | (?P<dep>\^)
  | (?P<compiler>%\s*(?P<cname>{_NAME})(?:@(?P<cversion>{_VERSIONS}))?)
  | (?P<version>@(?P<vvalue>{_VERSIONS}))
  | (?P<flag>(?P<fsign>\+\+|~~|\+|~)(?P<fname>{_NAME}))
  | (?P<keyvalue>(?P<key>{_NAME})(?P<eq>==?)(?P<kvalue>{_VALUE}))
  | (?P<name>{_NAME})
    """,
    re.VERBOSE,
)

GRAMMAR_HINT = (
    "a Spack spec: name[@version][+variant|~variant|key=value][%compiler[@version]]"
    "[^dependency ...], e.g. 'openmpi@4.1.4 +legacylaunchers fabrics=ofi %gcc@11.3.0'"
)


class SpecError(ValueError):
    """A string that is not a spec of the accepted grammar; `column` is 1-based."""

    def __init__(self, message: str, column: int) -> None:
        super().__init__(message)
        self.column = column


@dataclass(frozen=True)
class SpecNode:
    name: str
    versions: str | None = None
    # (sign, name) for boolean variants, sign in "+", "~", "++", "~~"
    flags: tuple[tuple[str, str], ...] = ()
    # (key, "=" or "==", value)
    settings: tuple[tuple[str, str, str], ...] = ()
    compiler: str | None = None

    def canonical(self) -> str:
        parts = [self.name + (f"@{self.versions}" if self.versions else "")]
        parts += [sign + name for sign, name in sorted(self.flags, key=lambda f: f[1])]
        parts += [key + eq + value for key, eq, value in sorted(self.settings)]
        if self.compiler:
            parts.append("%" + self.compiler)
        return " ".join(parts)

    def spack_form(self) -> str:
        """canonical(), with every exact version written as Spack's exact `@=`."""
        parts = [self.name + (f"@{exact_versions(self.versions)}" if self.versions else "")]
        parts += [sign + name for sign, name in sorted(self.flags, key=lambda f: f[1])]
        parts += [key + eq + value for key, eq, value in sorted(self.settings)]
        if self.compiler:
            parts.append("%" + exact_compiler(self.compiler))
        return " ".join(parts)


def exact_versions(versions: str) -> str:
    """A seed's version list in Spack's words: `1.17` -> `=1.17`; ranges stay ranges."""
    return ",".join(
        item if item.startswith("=") or ":" in item else "=" + item for item in versions.split(",")
    )


def exact_compiler(compiler: str) -> str:
    """`gcc@12.3.0` -> `gcc@=12.3.0` (a compiler token: name[@versions])."""
    name, at, versions = compiler.partition("@")
    return name + (at + exact_versions(versions) if at else "")


@dataclass(frozen=True)
class Spec:
    root: SpecNode
    dependencies: tuple[SpecNode, ...] = ()

    @property
    def name(self) -> str:
        return self.root.name

    def canonical(self) -> str:
        """One spelling per meaning: variants sorted, dependencies sorted, one space."""
        deps = sorted(self.dependencies, key=lambda d: d.name)
        return " ".join([self.root.canonical(), *("^" + d.canonical() for d in deps)])

    def spack_form(self) -> str:
        """The spec as the rendered environment writes it: canonical, versions exact."""
        deps = sorted(self.dependencies, key=lambda d: d.name)
        return " ".join([self.root.spack_form(), *("^" + d.spack_form() for d in deps)])

    def nodes(self) -> tuple[SpecNode, ...]:
        return (self.root, *self.dependencies)


class _NodeBuilder:
    def __init__(self, name: str) -> None:
        self.name = name
        self.versions: str | None = None
        self.flags: dict[str, str] = {}
        self.settings: dict[str, tuple[str, str]] = {}
        self.compiler: str | None = None

    def build(self) -> SpecNode:
        return SpecNode(
            name=self.name,
            versions=self.versions,
            flags=tuple((sign, name) for name, sign in self.flags.items()),
            settings=tuple((key, eq, value) for key, (eq, value) in self.settings.items()),
            compiler=self.compiler,
        )

    def modify(self, kind: str, match: re.Match[str], column: int) -> None:
        """Apply a version, compiler, flag or key=value token, each at most once."""
        if kind == "version":
            if self.versions is not None:
                raise SpecError(f"a second version for {self.name!r}", column)
            self.versions = match.group("vvalue")
        elif kind == "compiler":
            if self.compiler is not None:
                raise SpecError(f"a second compiler for {self.name!r}", column)
            cversion = match.group("cversion")
            self.compiler = match.group("cname") + (f"@{cversion}" if cversion else "")
        elif kind == "flag":
            fname = match.group("fname")
            if fname in self.flags or fname in self.settings:
                raise SpecError(f"variant {fname!r} given twice", column)
            self.flags[fname] = match.group("fsign")
        else:
            key = match.group("key")
            if key in self.settings or key in self.flags:
                raise SpecError(f"{key!r} given twice", column)
            self.settings[key] = (match.group("eq"), match.group("kvalue"))


_AFTER = {
    "@": "a version such as 1.17, =1.17 or 1.2:1.4",
    "%": "a compiler such as gcc@12.3.0",
    "+": "a variant name",
    "~": "a variant name",
}


def _unexpected(text: str, pos: int) -> str:
    char = text[pos]
    if char in _AFTER and pos + 1 < len(text):
        return f"'{char}' must be followed by {_AFTER[char]}, not {text[pos + 1]!r}"
    return f"unexpected {char!r}"


def parse_spec(text: str) -> Spec:
    """Parse `text` or raise SpecError naming the first offending character."""
    _check_characters(text)
    root, *deps = (node.build() for node in _Parser(text).nodes())
    names = [d.name for d in deps]
    for name in names:
        if names.count(name) > 1 or name == root.name:
            raise SpecError(f"dependency {name!r} given twice", 1)
    return Spec(root=root, dependencies=tuple(deps))


def _check_characters(text: str) -> None:
    if not text.strip():
        raise SpecError("is empty", 1)
    for index, char in enumerate(text):
        if not char.isascii() or (not char.isprintable() and char not in " \t"):
            raise SpecError(f"contains the control or non-ASCII character {char!r}", index + 1)


def _kind(match: re.Match[str]) -> str:
    # lastgroup names the innermost group, so pick the outermost token kind.
    return next(
        k
        for k in ("space", "dep", "compiler", "version", "flag", "keyvalue", "name")
        if match.group(k) is not None
    )


class _Parser:
    """Tokens left to right into nodes: the root, then one per '^'."""

    def __init__(self, text: str) -> None:
        self._text = text
        self._nodes: list[_NodeBuilder] = []
        self._current: _NodeBuilder | None = None
        self._expect_dependency = False

    def nodes(self) -> list[_NodeBuilder]:
        text = self._text
        pos = 0
        while pos < len(text):
            match = _TOKEN.match(text, pos)
            if match is None or match.end() == pos:
                raise SpecError(_unexpected(text, pos), pos + 1)
            self._take(_kind(match), match)
            pos = match.end()
        if self._expect_dependency:
            raise SpecError("ends with '^' and no dependency", len(text))
        if not self._nodes:
            raise SpecError("has no package name", 1)
        return self._nodes

    def _take(self, kind: str, match: re.Match[str]) -> None:
        column = match.start() + 1
        if kind == "space":
            return
        if kind == "dep":
            if self._current is None or self._expect_dependency:
                raise SpecError("'^' must follow a package and precede a dependency name", column)
            self._expect_dependency = True
        elif kind == "name":
            self._start_node(match, column)
        elif self._current is None or self._expect_dependency:
            raise SpecError("must start with a package name", column)
        else:
            self._current.modify(kind, match, column)

    def _start_node(self, match: re.Match[str], column: int) -> None:
        name = match.group("name")
        if self._text.startswith("=", match.end()):
            raise SpecError(f"'{name}=' needs a value, e.g. {name}=VALUE", match.end() + 1)
        if self._current is not None and not self._expect_dependency:
            raise SpecError(
                f"a second package name {name!r}: one spec per list entry, dependencies after '^'",
                column,
            )
        self._current = _NodeBuilder(name)
        self._nodes.append(self._current)
        self._expect_dependency = False
