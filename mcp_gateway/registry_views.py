"""What a caller sees of the registry: one builder per view, shared by the registry API, the
registry pages and the registry MCP server, so the three always give the same answer with
the same decisions (mcp_gateway.authz). See docs/registry-ui.md."""

from __future__ import annotations

from typing import Any

from .authz import decide_mcp, decide_registry, readable_servers
from .config import ServerConfig
from .health import UNCHECKED, Health
from .jsonrpc import RpcMessage
from .scopes import REGISTRY_ADMIN


def endpoints(public_url: str, name: str) -> dict[str, str]:
    return {"sse": f"{public_url}/api/execute/{name}/sse", "streamable": f"{public_url}/api/streamable/{name}"}


def health_summary(health: Health | None) -> dict[str, Any]:
    return health.summary() if health is not None else dict(UNCHECKED)


def may(scopes: frozenset[str] | None, action: str, server: str | None) -> bool:
    """None scopes: authentication is off, everyone may do everything."""
    return scopes is None or decide_registry(scopes, action, server).allowed  # type: ignore[arg-type]


def visible(scopes: frozenset[str] | None, servers: list[ServerConfig]) -> list[ServerConfig]:
    if scopes is None:
        return servers
    names = readable_servers(scopes, [s.name for s in servers])
    return [s for s in servers if s.name in names]


def tool_access(scopes: frozenset[str] | None, server: str, tool: str) -> dict[str, Any]:
    """Whether the caller may call `tool` on `server`, and the scope that allows (or would allow) it."""
    if scopes is None:
        return {"may_call": True, "scope": None, "needs": None}
    message = RpcMessage("request", 1, "tools/call", tool, {})
    decision = decide_mcp(scopes, server, [message])
    return {"may_call": decision.allowed, "scope": decision.scope if decision.allowed else None,
            "needs": None if decision.allowed else decision.scope}


def tools_view(scopes: frozenset[str] | None, server: str, health: Health | None) -> list[dict[str, Any]]:
    tools = health.tools if health is not None else []
    return [{**tool, **tool_access(scopes, server, tool["name"])} for tool in tools]


def allowed_actions(scopes: frozenset[str] | None, server: str) -> dict[str, bool]:
    return {
        "toggle": may(scopes, "toggle", server),
        "edit": may(scopes, "edit", server),
        "delete": may(scopes, "delete", server),
        "edit_url": scopes is None or REGISTRY_ADMIN in scopes,
    }
