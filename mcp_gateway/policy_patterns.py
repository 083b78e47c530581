"""Group-name patterns and scope templates of policy rules.

A pattern such as "mcp-server-{server}-tool-{tool}" is literal text with the placeholders
{server} and {tool}, each at most once and never side by side. {server} binds only to a
known server name, {tool} only to a valid MCP tool name. A pattern's specificity is its
number of literal characters: the more literal text, the more specific.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .scopes import ScopeError, is_server_name, is_tool_name, parse_scope

PLACEHOLDERS = ("server", "tool")
# "X.Y" is a valid tool name but not a server name, so {tool} in a server's place fails.
_SAMPLE_VALUES = {"server": "x-sample", "tool": "X.Sample"}
_BRACED = re.compile(r"\{([^{}]*)\}")

Binding = tuple[tuple[str, str], ...]  # sorted (placeholder, value) pairs


class PatternError(ValueError):
    pass


def _split_placeholders(text: str) -> list[str]:
    """Literal and placeholder parts, alternating and starting with a literal:
    "a-{server}-b" → ["a-", "server", "-b"]. Raises PatternError."""
    parts = _BRACED.split(text)
    for name in parts[1::2]:
        if name not in PLACEHOLDERS:
            raise PatternError(f"unknown placeholder {{{name}}} (use {{server}} or {{tool}})")
    for literal in parts[0::2]:
        if "{" in literal or "}" in literal:
            raise PatternError(f"unbalanced brace in {text!r}")
    return parts


@dataclass(frozen=True)
class GroupPattern:
    text: str
    literals: tuple[str, ...]  # one more than placeholders
    placeholders: tuple[str, ...]
    specificity: int  # literal characters

    @classmethod
    def parse(cls, text: str) -> GroupPattern:
        if not text:
            raise PatternError("the group pattern is empty")
        parts = _split_placeholders(text)
        literals, placeholders = tuple(parts[0::2]), tuple(parts[1::2])
        if len(set(placeholders)) != len(placeholders):
            raise PatternError(f"a placeholder occurs twice in {text!r}")
        if any(not literal for literal in literals[1:-1]):
            raise PatternError(f"placeholders need literal text between them in {text!r}")
        return cls(text, literals, placeholders, sum(len(literal) for literal in literals))

    def render(self, binding: dict[str, str]) -> str:
        parts = [self.literals[0]]
        for placeholder, literal in zip(self.placeholders, self.literals[1:]):
            parts += [binding[placeholder], literal]
        return "".join(parts)

    def bindings(self, name: str) -> list[Binding]:
        """Every way `name` matches this pattern with syntactically valid names; whether a
        bound server exists is the caller's question."""
        if not self.placeholders:
            return [()] if name == self.literals[0] else []
        head, tail = self.literals[0], self.literals[-1]
        if len(name) < self.specificity + len(self.placeholders) or not name.startswith(head) or not name.endswith(tail):
            return []
        middle = name[len(head) : len(name) - len(tail)]
        found: list[Binding] = []
        self._bind(middle, 0, 0, (), found)
        return found

    def _bind(self, middle: str, index: int, pos: int, bound: Binding, found: list[Binding]) -> None:
        placeholder = self.placeholders[index]
        if index == len(self.placeholders) - 1:
            value = middle[pos:]
            if _fits(placeholder, value):
                found.append(tuple(sorted(bound + ((placeholder, value),))))
            return
        separator = self.literals[index + 1]
        cut = middle.find(separator, pos + 1)
        while cut != -1:
            value = middle[pos:cut]
            if _fits(placeholder, value):
                self._bind(middle, index + 1, cut + len(separator), bound + ((placeholder, value),), found)
            cut = middle.find(separator, cut + 1)


def _fits(placeholder: str, value: str) -> bool:
    return is_tool_name(value) if placeholder == "tool" else is_server_name(value)


@dataclass(frozen=True)
class ScopeTemplate:
    """A scope string that may hold {server} and {tool}."""

    text: str
    placeholders: frozenset[str]

    @classmethod
    def parse(cls, text: str) -> ScopeTemplate:
        parts = _split_placeholders(text)
        placeholders = frozenset(parts[1::2])
        try:
            scope = parse_scope(_render_parts(parts, _SAMPLE_VALUES))
        except ScopeError as problem:
            if not placeholders:
                raise PatternError(str(problem)) from None
            scope = None
        # Each placeholder must be a whole name segment, so that any valid name it binds
        # renders a valid scope (no check is needed when scopes are granted).
        if placeholders and (
            scope is None
            or ("server" in placeholders and scope.server != _SAMPLE_VALUES["server"])
            or ("tool" in placeholders and scope.tool != _SAMPLE_VALUES["tool"])
        ):
            raise PatternError(
                f"invalid scope template {text!r}: {{server}} must be the whole server name and {{tool}} "
                "the whole tool name, as in mcp:server:{server}:read or mcp:server:{server}:tool:{tool}:execute"
            )
        return cls(text, placeholders)

    def render(self, binding: dict[str, str]) -> str:
        text = self.text
        for placeholder in self.placeholders:
            text = text.replace("{" + placeholder + "}", binding[placeholder])
        return text

    def matcher(self) -> re.Pattern[str]:
        """A regex matching the scopes this template stands for, placeholders accepting any
        name valid in their position."""
        parts = _split_placeholders(self.text)
        return re.compile(
            "".join(
                ("(?:[a-z0-9_-]{1,64})" if part == "server" else "(?:[A-Za-z0-9._-]{1,128})") if i % 2 else re.escape(part)
                for i, part in enumerate(parts)
            )
        )


def _render_parts(parts: list[str], values: dict[str, str]) -> str:
    return "".join(values[part] if i % 2 else part for i, part in enumerate(parts))
