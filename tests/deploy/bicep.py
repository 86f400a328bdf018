"""A small structural reader of Bicep files, enough for the checks in test_infra.py.

No Bicep compiler is available here, so the tests read the templates as text: comments
removed, string literals reduced to their ``${...}`` interpolations (so a word inside a
description is not mistaken for a use), then declarations found by regular expressions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

_PARAM = re.compile(r"^param\s+(\w+)\s+(\w+)(?:\s*=\s*(.+))?$", re.MULTILINE)
_MODULE = re.compile(r"^module\s+(\w+)\s+'([^']+)'\s*=\s*(?:if\s*\((.+?)\)\s*)?\{", re.MULTILINE)
_RESOURCE = re.compile(
    r"^resource\s+(\w+)\s+'([^'@]+)@([^']+)'\s*(existing\s*)?=\s*(?:if\s*\((.+?)\)\s*)?[{\[]",
    re.MULTILINE,
)
_KEY = re.compile(r"\s*([A-Za-z_]\w*)\s*:")


@dataclass(frozen=True)
class Param:
    """A ``param`` declaration."""

    name: str
    type: str
    default: str | None
    decorators: tuple[str, ...]


@dataclass(frozen=True)
class Module:
    """A ``module`` declaration: its symbol, the file it points to, its condition, its params."""

    symbol: str
    path: str
    condition: str | None
    params: dict[str, str]


@dataclass(frozen=True)
class Resource:
    """A ``resource`` declaration."""

    symbol: str
    type: str
    api_version: str
    existing: bool
    condition: str | None
    body: str


def strip_comments(text: str) -> str:
    """The text without ``//`` and ``/* */`` comments; strings are left untouched."""
    out: list[str] = []
    i = 0
    in_string = False
    while i < len(text):
        char = text[i]
        if in_string:
            out.append(char)
            if char == "\\":
                out.append(text[i + 1])
                i += 1
            elif char == "'":
                in_string = False
        elif char == "'":
            in_string = True
            out.append(char)
        elif text.startswith("//", i):
            i = text.find("\n", i)
            if i == -1:
                break
            continue
        elif text.startswith("/*", i):
            i = text.index("*/", i) + 2
            continue
        else:
            out.append(char)
        i += 1
    return "".join(out)


def code_view(text: str) -> str:
    """Comments removed and each string literal replaced by its interpolations only."""
    text = strip_comments(text)
    out: list[str] = []
    i = 0
    while i < len(text):
        if text[i] != "'":
            out.append(text[i])
            i += 1
            continue
        i += 1
        interpolations: list[str] = []
        while text[i] != "'":
            if text[i] == "\\":
                i += 2
            elif text.startswith("${", i):
                end = _matching(text, i + 1)
                interpolations.append(text[i + 2 : end])
                i = end + 1
            else:
                i += 1
        out.append("'" + " ".join(interpolations) + "'")
        i += 1
    return "".join(out)


def _matching(text: str, open_index: int) -> int:
    """Index of the bracket closing the one at ``open_index`` (strings taken into account)."""
    pairs = {"{": "}", "[": "]", "(": ")"}
    stack = [pairs[text[open_index]]]
    i = open_index + 1
    in_string = False
    while stack:
        char = text[i]
        if in_string:
            if char == "\\":
                i += 1
            elif char == "'":
                in_string = False
        elif char == "'":
            in_string = True
        elif char in pairs:
            stack.append(pairs[char])
        elif char == stack[-1]:
            stack.pop()
        i += 1
    return i - 1


def block(text: str, open_index: int) -> str:
    """The text inside the brackets opening at ``open_index``."""
    return text[open_index + 1 : _matching(text, open_index)]


def top_level_keys(body: str) -> dict[str, str]:
    """``key: value`` pairs at the top level of an object body (values as text)."""
    pairs: dict[str, str] = {}
    i = 0
    while i < len(body):
        match = _KEY.match(body, i)
        if match:
            value_end = _value_end(body, match.end())
            pairs[match.group(1)] = body[match.end() : value_end].strip()
        else:
            value_end = _value_end(body, i)
        i = value_end + 1
    return pairs


def object_literals(text: str) -> list[str]:
    """Bodies of the outermost ``{...}`` object literals in an expression (strings skipped)."""
    bodies = []
    i = 0
    while i < len(text):
        if text[i] == "'":
            i = _string_end(text, i)
        elif text[i] == "{":
            end = _matching(text, i)
            bodies.append(text[i + 1 : end])
            i = end
        i += 1
    return bodies


def _string_end(text: str, quote_index: int) -> int:
    i = quote_index + 1
    while text[i] != "'":
        i += 2 if text[i] == "\\" else 1
    return i


def _value_end(body: str, start: int) -> int:
    """End of the line starting at ``start``, brackets spanning lines included."""
    i = start
    while i < len(body) and body[i] != "\n":
        if body[i] == "'":
            i = _string_end(body, i)
        elif body[i] in "{[(":
            i = _matching(body, i)
        i += 1
    return i


class BicepFile:
    """One Bicep file, read for its declarations."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.text = path.read_text(encoding="utf-8")
        self.source = strip_comments(self.text)
        self.code = code_view(self.text)

    def params(self) -> dict[str, Param]:
        """Every ``param``, with the decorators written on the lines above it."""
        found: dict[str, Param] = {}
        lines = self.source.splitlines()
        for index, line in enumerate(lines):
            match = _PARAM.match(line)
            if not match:
                continue
            decorators: list[str] = []
            above = index - 1
            while above >= 0 and lines[above].startswith("@"):
                decorators.insert(0, lines[above])
                above -= 1
            name, type_, default = match.groups()
            found[name] = Param(name, type_, default, tuple(decorators))
        return found

    def param_uses(self, name: str) -> int:
        """How often ``name`` is read (declaration and object keys of that name excluded)."""
        as_key = re.compile(rf"^\s*{re.escape(name)}\s*:")
        pattern = re.compile(rf"(?<![\w.]){re.escape(name)}\b")
        return sum(
            len(pattern.findall(as_key.sub("", line)))
            for line in self.code.splitlines()
            if not _PARAM.match(line)
        )

    def modules(self) -> list[Module]:
        """Every ``module`` with its condition and the params it passes."""
        found = []
        for match in _MODULE.finditer(self.source):
            body = block(self.source, match.end() - 1)
            params_match = re.search(r"^\s*params\s*:\s*\{", body, re.MULTILINE)
            params = top_level_keys(block(body, params_match.end() - 1)) if params_match else {}
            found.append(Module(match.group(1), match.group(2), match.group(3), params))
        return found

    def resources(self) -> list[Resource]:
        """Every ``resource`` with its object body (for a loop, the body of one item)."""
        found = []
        for match in _RESOURCE.finditer(self.source):
            body = block(self.source, match.end() - 1)
            if self.source[match.end() - 1] == "[":
                # A loop: [for x in xs: {...}]; keep the object of one iteration.
                body = block(body, body.index("{"))
            symbol, type_, api, existing, condition = match.groups()
            found.append(Resource(symbol, type_, api, bool(existing), condition, body))
        return found

    def variable(self, name: str) -> str:
        """The source text of ``var name = ...`` (comments removed, strings kept)."""
        text = self.source
        match = re.search(rf"^var\s+{re.escape(name)}\s*=\s*", text, re.MULTILINE)
        if match is None:
            raise KeyError(f"no var {name} in {self.path}")
        start = match.end()
        if text[start] in "{[(":
            return text[start : _matching(text, start) + 1]
        end = re.compile(r"^(?:var|resource|module|output|param)\s", re.MULTILINE).search(
            text, start
        )
        return text[start : end.start() if end else len(text)].strip()

    def outputs(self) -> list[str]:
        """Names of the ``output`` declarations."""
        return re.findall(r"^output\s+(\w+)\s", self.code, re.MULTILINE)
