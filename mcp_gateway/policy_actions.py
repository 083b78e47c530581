"""What a set of scopes may do on a server, by action name — the vocabulary shared by
`policy test`, `policy diff` and `policy replay` (docs/policies.md). Every answer comes from
mcp_gateway.authz, the code the gateway decides with."""

from __future__ import annotations

from collections.abc import Sequence

from .authz import Decision, decide_mcp, decide_mcp_connect, decide_registry, tool_filter
from .jsonrpc import RpcMessage

REGISTRY_ACTIONS = ("list", "read", "toggle", "edit", "register", "delete")
MCP_ACTIONS = ("connect", "call")
ACTIONS = MCP_ACTIONS + REGISTRY_ACTIONS  # and any MCP method name, e.g. "resources/read"
SERVERLESS_ACTIONS = ("list", "register")


def is_action(action: str) -> bool:
    return action in ACTIONS or ("/" in action and action != "tools/call")


def decide_action(scopes: frozenset[str], server: str | None, action: str, tool: str | None = None) -> Decision:
    """The gateway's decision for `action` on `server`: connect, call (a tools/call of
    `tool`), a registry action, or an MCP method name."""
    if action in REGISTRY_ACTIONS:
        return decide_registry(scopes, action, server)  # type: ignore[arg-type]
    assert server is not None
    if action == "connect":
        return decide_mcp_connect(scopes, server)
    if action == "call":
        return decide_mcp(scopes, server, [RpcMessage("request", 1, "tools/call", tool or "", {})])
    return decide_mcp(scopes, server, [RpcMessage("request", 1, action, None, {})])


def visible_tools(scopes: frozenset[str], server: str, tools: Sequence[str]) -> list[str] | None:
    """The tools a tools/list answer shows of `tools` (sorted), or None when the scopes do
    not even allow connecting to the server."""
    if not decide_mcp_connect(scopes, server).allowed:
        return None
    allowed = tool_filter(scopes, server)
    return sorted(tools if allowed is None else (tool for tool in tools if tool in allowed))


def describe(action: str, server: str | None, tool: str | None = None) -> str:
    """'call notes/search', 'toggle notes', 'register', 'resources/read on notes'."""
    if action == "call":
        return f"call {server}/{tool}"
    if action in SERVERLESS_ACTIONS and server is None:
        return action
    if "/" in action:
        return f"{action} on {server}"
    return f"{action} {server}"
