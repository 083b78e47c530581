"""The registry as an MCP server: its tools and what each answers, free of any transport.

Each tool applies the same decisions as the registry API (mcp_gateway.authz via
registry_views): list_servers shows only readable servers, get_server_tools needs read on the
target, find_tools searches only readable servers, toggle_server needs
`mcp:server:{target}:toggle`. A refusal is a tool error naming the missing scope. Reaching the
server at all (connect, tools/call) is decided like any server named `registry`
(docs/registry-ui.md)."""

from __future__ import annotations

import json
import logging
from typing import Any

from .authz import decide_registry
from .health import Health
from .jsonrpc import RpcMessage
from .registry import Registry, RegistryError
from .registry_views import endpoints, health_summary, tools_view, visible
from .scopes import is_server_name

log = logging.getLogger(__name__)

NAME = "registry"
SERVER_INFO = {"name": "mcp-gateway-registry", "version": "1"}
SUPPORTED_VERSIONS = ("2025-03-26", "2025-06-18", "2025-11-25", "2026-07-28")

_SERVER_ARG = {"type": "string", "description": "a server name", "pattern": "^[a-z0-9_-]{1,64}$"}
TOOLS = [
    {"name": "list_servers", "description": "List the MCP servers of the registry you may read, with their state, "
     "endpoints, health and tool count.", "inputSchema": {"type": "object", "properties": {}}},
    {"name": "get_server_tools", "description": "The tools of one server, and for each whether you may call it.",
     "inputSchema": {"type": "object", "properties": {"server": _SERVER_ARG}, "required": ["server"]}},
    {"name": "find_tools", "description": "Find tools whose name or description contains every given word, "
     "across the servers you may read.", "inputSchema": {"type": "object", "properties": {
         "query": {"type": "string", "description": "words to look for", "maxLength": 500}}, "required": ["query"]}},
    {"name": "toggle_server", "description": "Enable or disable a server (needs mcp:server:{server}:toggle).",
     "inputSchema": {"type": "object", "properties": {"server": _SERVER_ARG, "enabled": {"type": "boolean"}},
                     "required": ["server", "enabled"]}},
]


METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INSTRUCTIONS = "Lists the gateway's MCP servers and their tools; toggles servers you may toggle."


class ToolRefused(Exception):
    pass


class RegistryTools:
    def __init__(self, registry: Registry, health: dict[str, Health], public_url: str,
                 scopes: frozenset[str] | None) -> None:
        self.registry = registry
        self.health = health
        self.public_url = public_url
        self.scopes = scopes  # None: authentication is off

    def call(self, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        """A tools/call result (MCP CallToolResult)."""
        try:
            if name == "list_servers":
                data = self.list_servers()
            elif name == "get_server_tools":
                data = self.get_server_tools(_server(arguments))
            elif name == "find_tools":
                data = self.find_tools(_text(arguments, "query"))
            elif name == "toggle_server":
                enabled = arguments.get("enabled")
                if not isinstance(enabled, bool):
                    raise ToolRefused('"enabled" must be true or false')
                data = self.toggle_server(_server(arguments), enabled)
            else:
                raise ToolRefused(f"unknown tool {name[:80]!r}")
        except ToolRefused as e:
            return {"content": [{"type": "text", "text": str(e)}], "isError": True}
        except RegistryError as e:
            return {"content": [{"type": "text", "text": e.message}], "isError": True}
        return {"content": [{"type": "text", "text": json.dumps(data)}], "structuredContent": data, "isError": False}

    def _allow(self, action: str, server: str | None) -> None:
        if self.scopes is None:
            return
        decision = decide_registry(self.scopes, action, server)  # type: ignore[arg-type]
        if not decision.allowed:
            raise ToolRefused(f"forbidden: {decision.reason}")

    def _readable(self, server: str):
        found = self.registry.get(server)
        if found is None or (self.scopes is not None and not decide_registry(self.scopes, "read", server).allowed):
            # Unknown and unreadable read alike: no enumeration of servers one may not read.
            raise ToolRefused(f"no server named {server!r} that you may read (it needs mcp:server:{server}:read)")
        return found

    def list_servers(self) -> dict[str, Any]:
        servers = visible(self.scopes, self.registry.all())
        return {"servers": [{"name": s.name, "description": s.description, "enabled": s.enabled,
                             "endpoints": endpoints(self.public_url, s.name),
                             "health": health_summary(self.health.get(s.name))} for s in servers]}

    def get_server_tools(self, server: str) -> dict[str, Any]:
        found = self._readable(server)
        health = self.health.get(found.name)
        return {"server": found.name, "health": health_summary(health),
                "tools": tools_view(self.scopes, found.name, health)}

    def find_tools(self, query: str) -> dict[str, Any]:
        words = [w for w in query.lower().split() if w]
        if not words:
            raise ToolRefused("give at least one word to look for")
        matches = []
        for server in visible(self.scopes, self.registry.all()):
            for tool in tools_view(self.scopes, server.name, self.health.get(server.name)):
                text = f"{tool['name']} {tool['description']}".lower()
                if all(word in text for word in words):
                    matches.append({"server": server.name, **tool})
        return {"query": query, "tools": matches}

    def toggle_server(self, server: str, enabled: bool) -> dict[str, Any]:
        self._allow("toggle", server)
        changed = self.registry.set_enabled(server, enabled)
        return {"server": changed.name, "enabled": changed.enabled}


def _server(arguments: dict[str, Any]) -> str:
    """A server name as the registry spells them; any other string names no server (and must
    never reach a scope decision, which would fail on it)."""
    value = _text(arguments, "server")
    if not is_server_name(value):
        raise ToolRefused(f"no server named {value[:80]!r}: names are 1-64 characters of a-z, 0-9, _ and -")
    return value


def _text(arguments: dict[str, Any], name: str) -> str:
    value = arguments.get(name)
    if not isinstance(value, str) or not value or len(value) > 500:
        raise ToolRefused(f'"{name}" must be a non-empty string')
    return value


def answer(message: RpcMessage, tools: RegistryTools, user: str) -> dict[str, Any] | None:
    """The JSON-RPC answer to one message, on either transport; None for notifications and responses."""
    if message.kind != "request":
        return None
    params = message.raw.get("params") if isinstance(message.raw.get("params"), dict) else {}
    if message.method == "initialize":
        asked = params.get("protocolVersion")
        result: dict[str, Any] = {
            "protocolVersion": asked if asked in SUPPORTED_VERSIONS else SUPPORTED_VERSIONS[-1],
            "capabilities": {"tools": {"listChanged": False}}, "serverInfo": SERVER_INFO,
            "instructions": INSTRUCTIONS}
    elif message.method == "ping":
        result = {}
    elif message.method == "tools/list":
        result = {"tools": TOOLS}
    elif message.method == "tools/call":
        arguments = params.get("arguments")
        if arguments is None:
            arguments = {}
        if not isinstance(arguments, dict):
            return _error(message, INVALID_PARAMS, "arguments must be an object")
        result = tools.call(message.tool or "", arguments)
        if result.get("isError"):
            log.warning("access refused: registry tool %s by %s: %s", message.tool, user,
                        result["content"][0]["text"][:200])
        else:
            log.info("registry: tool %s called by %s", message.tool, user)
    else:
        return _error(message, METHOD_NOT_FOUND, f"method not found: {str(message.method)[:80]}")
    return {"jsonrpc": "2.0", "id": message.id, "result": result}


def _error(message: RpcMessage, code: int, text: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": message.id, "error": {"code": code, "message": text}}
