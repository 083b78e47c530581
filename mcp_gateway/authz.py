"""Authorization decisions: what each request needs (docs/policies.md) and the one value that
records the outcome. The adapters render a Decision; they never recompute it.

Method classes on server s:
  read-only  initialize, ping, server/discover, notifications/*, any */list, and a client's
             JSON-RPC responses (answers to sampling, elicitation, roots/list)
             → any of s's read, execute or tool scopes
  tools/call → server:{s}:execute or server:{s}:tool:{t}:execute
  the rest   (resources/read, prompts/get, completion/complete, logging/setLevel,
             resources/subscribe, tasks/*, …) → server:{s}:execute
mcp:registry:admin allows everything. Method names match exactly (case-sensitive); a name
with unexpected characters is never read-only.

When several scopes would allow a request, the narrowest one held is reported as the
deciding scope; a refusal names the narrowest scope that would have allowed it, and the
conventional group (policies/default.toml) that grants each scope it mentions, so the person
knows what to ask for.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from .jsonrpc import RpcMessage
from .scopes import (
    REGISTRY_ADMIN,
    REGISTRY_READ,
    ScopeError,
    is_tool_name,
    parse_scope,
    server_scope,
    tool_scope,
    tool_scope_prefix,
)

if TYPE_CHECKING:
    from .policy import PolicySet

RegistryAction = Literal["list", "read", "toggle", "edit", "register", "delete"]

READ_ONLY_METHODS = frozenset({"initialize", "ping", "server/discover"})
_LIST_METHOD = re.compile(r"[A-Za-z0-9_]+(?:/[A-Za-z0-9_]+)*/list")
_NOTIFICATION = re.compile(r"notifications(?:/[A-Za-z0-9_]+)+")


@dataclass(frozen=True)
class Decision:
    allowed: bool
    status: int  # 200 allowed; 403 insufficient scope; 400 unreadable body; 413 body too large
    scope: str | None  # the scope that decided (allowed) or the missing scope (refused)
    reason: str  # short human text, no secrets
    method: str | None = None
    tool: str | None = None


def held_scopes(policy: PolicySet, groups: Iterable[str], direct: Iterable[str],
                servers: Collection[str]) -> frozenset[str]:
    """What a person's groups (and allowed direct scopes) grant by `policy` — the policy in
    force or its shadow view. The proxy and the login app both ask this."""
    return frozenset(policy.scopes_for(groups, servers).scopes | policy.direct_scopes(direct))


def usable_scopes(held: frozenset[str], granted: Iterable[str] | None) -> frozenset[str]:
    """What one credential may use: what is held, within an OAuth facade token's granted scope."""
    return held if granted is None else held & frozenset(granted)


def refused_unreadable(reason: str, status: int = 400) -> Decision:
    """The decision for an MCP body that could not be read unambiguously."""
    return Decision(False, status, None, f"unreadable MCP body: {reason}")


def is_read_only_method(method: str) -> bool:
    return method in READ_ONLY_METHODS or bool(_LIST_METHOD.fullmatch(method) or _NOTIFICATION.fullmatch(method))


# --- MCP ------------------------------------------------------------------------------------


def decide_mcp(scopes: frozenset[str], server: str, messages: list[RpcMessage]) -> Decision:
    """A batch is allowed only if every message is; otherwise it is refused whole,
    naming the first message's missing scope."""
    if not messages:
        return refused_unreadable("no JSON-RPC message")
    decisions = []
    for message in messages:
        decision = _decide_message(scopes, server, message)
        if not decision.allowed:
            return decision
        decisions.append(decision)
    if len(decisions) == 1:
        return decisions[0]
    return Decision(
        True,
        200,
        " ".join(_unique(d.scope for d in decisions)),
        f"batch of {len(decisions)} messages on {server!r} allowed",
        method=",".join(_unique(d.method for d in decisions)) or None,
        tool=",".join(_unique(d.tool for d in decisions)) or None,
    )


def decide_mcp_connect(scopes: frozenset[str], server: str) -> Decision:
    """Opening a stream (SSE GET, streamable GET) or ending a session (DELETE) on `server`."""
    return _decide_connect_level(scopes, server, "connect", None)


def _decide_message(scopes: frozenset[str], server: str, message: RpcMessage) -> Decision:
    method = message.method
    if method is None:  # the client's answer to a server→client request
        return _decide_connect_level(scopes, server, "response", None)
    if is_read_only_method(method):
        return _decide_connect_level(scopes, server, _shown(method), method)
    if method == "tools/call":
        return _decide_tool_call(scopes, server, message.tool or "")
    needed = server_scope(server, "execute")
    held = _first_held(scopes, needed, REGISTRY_ADMIN)
    if held:
        return Decision(True, 200, held, f"{_shown(method)} on {server!r} allowed", method=method)
    return Decision(False, 403, needed, f"{_shown(method)} on server {server!r} needs {needs(needed)}",
                    method=method)


def _decide_tool_call(scopes: frozenset[str], server: str, tool: str) -> Decision:
    execute = server_scope(server, "execute")
    # A name outside the MCP tool-name alphabet cannot appear in a tool scope; only the
    # server-wide execute scope (or admin) can allow calling it.
    narrow = tool_scope(server, tool) if is_tool_name(tool) else None
    held = _first_held(scopes, narrow, execute, REGISTRY_ADMIN)
    what = f"tools/call of {_shown(tool)} on server {server!r}"
    if held:
        return Decision(True, 200, held, f"{what} allowed", method="tools/call", tool=tool)
    missing = narrow or execute
    return Decision(False, 403, missing, f"{what} needs {needs(narrow, execute)}", method="tools/call", tool=tool)


def _decide_connect_level(scopes: frozenset[str], server: str, what: str, method: str | None) -> Decision:
    read = server_scope(server, "read")
    held = _first_held(scopes, read, server_scope(server, "execute")) or _any_tool_scope(scopes, server)
    held = held or _first_held(scopes, REGISTRY_ADMIN)
    if held:
        return Decision(True, 200, held, f"{what} on server {server!r} allowed", method=method)
    return Decision(
        False, 403, read,
        f"{what} on server {server!r} needs {needs(read)}, its execute scope or one of its tool scopes "
        f"(group mcp-server-{server}-tool-<tool>)", method=method,
    )


def _any_tool_scope(scopes: frozenset[str], server: str) -> str | None:
    prefix = tool_scope_prefix(server)
    return min((scope for scope in scopes if scope.startswith(prefix)), default=None)


# --- registry -------------------------------------------------------------------------------


def decide_registry(scopes: frozenset[str], action: RegistryAction, server: str | None) -> Decision:
    """Registry API requests. `list` is always allowed: its answer is filtered with
    readable_servers()."""
    target = f"{action} {server!r}" if server else action
    if action == "list":
        held = _first_held(scopes, REGISTRY_READ, REGISTRY_ADMIN)
        reason = "registry list allowed" if held else "registry list allowed, filtered to readable servers"
        return Decision(True, 200, held, reason)
    if action in ("register", "delete"):
        candidates: tuple[str, ...] = (REGISTRY_ADMIN,)
    elif server is None:
        raise ValueError(f"registry action {action!r} needs a server")
    elif action == "read":
        candidates = (server_scope(server, "read"), REGISTRY_READ, REGISTRY_ADMIN)
    elif action in ("toggle", "edit"):
        candidates = (server_scope(server, action), REGISTRY_ADMIN)
    else:
        raise ValueError(f"unknown registry action {action!r}")
    held = _first_held(scopes, *candidates)
    if held:
        return Decision(True, 200, held, f"registry {target} allowed")
    return Decision(False, 403, candidates[0], f"registry {target} needs {needs(candidates[0])}")


def readable_servers(scopes: frozenset[str], all_servers: Iterable[str]) -> set[str]:
    """The servers whose registry entry the caller may read."""
    if REGISTRY_ADMIN in scopes or REGISTRY_READ in scopes:
        return set(all_servers)
    return {server for server in all_servers if server_scope(server, "read") in scopes}


# --- tools/list filtering -------------------------------------------------------------------


def tool_filter(scopes: frozenset[str], server: str) -> frozenset[str] | None:
    """None when the caller may call every tool of `server`; otherwise the tool names it
    may call (tools/list answers are narrowed to exactly those, possibly none)."""
    if REGISTRY_ADMIN in scopes or server_scope(server, "execute") in scopes:
        return None
    prefix = tool_scope_prefix(server)
    suffix = ":execute"
    return frozenset(
        scope[len(prefix) : -len(suffix)] for scope in scopes if scope.startswith(prefix) and scope.endswith(suffix)
    )


def filter_tools_list_result(message: dict[str, Any], allowed: Collection[str]) -> dict[str, Any]:
    """A copy of a tools/list JSON-RPC response keeping only the allowed tools. Entries
    without a string name are dropped; anything that is not a tools/list result is
    returned as is."""
    result = message.get("result")
    if not isinstance(result, dict) or not isinstance(result.get("tools"), list):
        return message
    tools = [
        tool
        for tool in result["tools"]
        if isinstance(tool, dict) and isinstance(tool.get("name"), str) and tool["name"] in allowed
    ]
    return {**message, "result": {**result, "tools": tools}}


# --- naming what would grant a scope ---------------------------------------------------------


def conventional_group(scope: str) -> str | None:
    """The group of the shipped policy (policies/default.toml) that grants `scope`."""
    try:
        parsed = parse_scope(scope)
    except ScopeError:
        return None
    if parsed.server is None:
        return {REGISTRY_ADMIN: "mcp-admin", REGISTRY_READ: "mcp-user"}.get(scope)
    if parsed.tool is not None:
        return f"mcp-server-{parsed.server}-tool-{parsed.tool}"
    if parsed.action in ("read", "execute"):
        return f"mcp-server-{parsed.server}"
    return f"mcp-server-{parsed.server}-{parsed.action}"


def granting_groups(scope: str | None) -> list[str]:
    """The conventional groups that would allow what `scope` (a refusal's missing scope) allows."""
    if scope is None:
        return []
    try:
        parsed = parse_scope(scope)
    except ScopeError:
        return []
    wider = server_scope(parsed.server, "execute") if parsed.tool is not None and parsed.server else None
    return _unique(conventional_group(s) for s in (scope, wider) if s)


def needs(*scopes: str | None) -> str:
    """'scope A (group a) or B (group b)': the scopes that would allow a request, each with its group."""
    named = [f"{scope} (group {group})" if (group := conventional_group(scope)) else scope
             for scope in scopes if scope]
    return "scope " + " or ".join(named)


# --- helpers --------------------------------------------------------------------------------


def _first_held(scopes: frozenset[str], *candidates: str | None) -> str | None:
    return next((scope for scope in candidates if scope is not None and scope in scopes), None)


def _unique(values: Iterable[str | None]) -> list[str]:
    return list(dict.fromkeys(value for value in values if value))


def _shown(name: str) -> str:
    """A client-supplied name made safe for a one-line reason."""
    return repr(name if len(name) <= 80 else name[:80] + "…")
