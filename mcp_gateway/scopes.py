"""Scope strings (docs/policies.md, "Scopes"): building, parsing and validating them.

    mcp:registry:admin
    mcp:registry:read
    mcp:server:{s}:read | execute | toggle | edit
    mcp:server:{s}:tool:{t}:execute

Server names are 1-64 characters of [a-z0-9_-] (as in gateway.toml). Tool names follow
the MCP spec's tool-name rule (SEP-986): 1-128 characters of [A-Za-z0-9._-]. None of
those characters is a colon, so every valid scope string splits one way only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

REGISTRY_ADMIN = "mcp:registry:admin"
REGISTRY_READ = "mcp:registry:read"

ServerAction = Literal["read", "execute", "toggle", "edit"]
SERVER_ACTIONS: tuple[ServerAction, ...] = ("read", "execute", "toggle", "edit")

_SERVER_NAME = re.compile(r"[a-z0-9_-]{1,64}")
_TOOL_NAME = re.compile(r"[A-Za-z0-9._-]{1,128}")


class ScopeError(ValueError):
    """A string that is not a valid scope, or a name that cannot appear in one."""


def is_server_name(name: object) -> bool:
    return isinstance(name, str) and _SERVER_NAME.fullmatch(name) is not None


def is_tool_name(name: object) -> bool:
    return isinstance(name, str) and _TOOL_NAME.fullmatch(name) is not None


def server_scope(server: str, action: ServerAction) -> str:
    if not is_server_name(server):
        raise ScopeError(f"invalid server name {server!r}: expected 1-64 characters of [a-z0-9_-]")
    if action not in SERVER_ACTIONS:
        raise ScopeError(f"invalid server action {action!r}: expected one of {', '.join(SERVER_ACTIONS)}")
    return f"mcp:server:{server}:{action}"


def tool_scope(server: str, tool: str) -> str:
    if not is_server_name(server):
        raise ScopeError(f"invalid server name {server!r}: expected 1-64 characters of [a-z0-9_-]")
    if not is_tool_name(tool):
        raise ScopeError(f"invalid tool name {tool!r}: expected 1-128 characters of [A-Za-z0-9._-]")
    return f"mcp:server:{server}:tool:{tool}:execute"


def tool_scope_prefix(server: str) -> str:
    """What every tool scope of `server` starts with."""
    return f"mcp:server:{server}:tool:"


@dataclass(frozen=True)
class Scope:
    """A parsed scope. `kind` is "registry", "server" or "tool"."""

    kind: Literal["registry", "server", "tool"]
    action: str
    server: str | None = None
    tool: str | None = None

    def __str__(self) -> str:
        if self.kind == "registry":
            return f"mcp:registry:{self.action}"
        if self.kind == "server":
            return f"mcp:server:{self.server}:{self.action}"
        return f"mcp:server:{self.server}:tool:{self.tool}:execute"


def parse_scope(text: object) -> Scope:
    """The parsed form of `text`; raises ScopeError naming what is wrong."""
    if not isinstance(text, str):
        raise ScopeError(f"a scope must be a string, got {type(text).__name__}")
    parts = text.split(":")
    if text in (REGISTRY_ADMIN, REGISTRY_READ):
        return Scope("registry", parts[2])
    if len(parts) >= 3 and parts[:2] == ["mcp", "server"] and not is_server_name(parts[2]):
        raise ScopeError(f"invalid scope {text!r}: server name {parts[2]!r} is not 1-64 characters of [a-z0-9_-]")
    if len(parts) == 4 and parts[:2] == ["mcp", "server"] and parts[3] in SERVER_ACTIONS:
        return Scope("server", parts[3], server=parts[2])
    if len(parts) == 6 and parts[:2] == ["mcp", "server"] and parts[3] == "tool" and parts[5] == "execute":
        if not is_tool_name(parts[4]):
            raise ScopeError(f"invalid scope {text!r}: tool name {parts[4]!r} is not 1-128 characters of [A-Za-z0-9._-]")
        return Scope("tool", "execute", server=parts[2], tool=parts[4])
    raise ScopeError(
        f"invalid scope {text!r}: expected mcp:registry:admin, mcp:registry:read, "
        "mcp:server:{s}:read|execute|toggle|edit or mcp:server:{s}:tool:{t}:execute"
    )


def is_scope(text: object) -> bool:
    try:
        parse_scope(text)
    except ScopeError:
        return False
    return True
