"""The built-in registry MCP server at /api/streamable/registry, answered inside the proxy.

It speaks the Streamable HTTP subset a stateless server needs — POST of initialize, ping,
notifications, tools/list and tools/call, answered as application/json — so the caller's
identity, the connect/method/tool decision (made by the Authorizer like for any server named
`registry`) and the tools/list filtering all apply unchanged. The tools themselves
(mcp_gateway.registry_tools) apply the registry API's decisions on their target.
It has no SSE transport: /api/execute/registry answers 404. docs/registry-ui.md."""

from __future__ import annotations

import logging
from typing import Any

from mitmproxy import http

from mcp_gateway.config import ServerConfig
from mcp_gateway.jsonrpc import JsonRpcRejected, RpcMessage, parse_mcp_payload
from mcp_gateway.registry_tools import NAME, SERVER_INFO, SUPPORTED_VERSIONS, TOOLS, RegistryTools
from mcp_gateway.routing import Area

from .failclosed import refuse_on_error
from .flow_state import identified, state_of
from .health import health_board
from .refusals import refuse
from .responses import json_ok
from .runtime import Runtime

log = logging.getLogger(__name__)

# Nothing listens on port 1: if this addon were missing, a request would fail, never leak.
VIRTUAL = ServerConfig(name=NAME, url="http://127.0.0.1:1", description="The registry itself, as an MCP server")
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602


class RegistryMcp:
    def __init__(self, runtime: Runtime):
        self.runtime = runtime
        runtime.builtin_servers[NAME] = VIRTUAL

    @refuse_on_error
    def request(self, flow: http.HTTPFlow) -> None:
        if flow.response or (seen := identified(flow)) is None:
            return
        found, identity = seen
        if found.server != NAME or not found.is_mcp or self.runtime.registry.get(NAME) is not None:
            return  # a configured server named "registry" wins over the built-in one
        if found.area is Area.SSE:
            return refuse(flow, 404, "the built-in registry server speaks Streamable HTTP only: "
                                     "use /api/streamable/registry")
        if flow.request.method == "DELETE":
            flow.response = json_ok({})
            return
        if flow.request.method != "POST":
            return refuse(flow, 405, "the registry server opens no stream; POST JSON-RPC requests", {"allow": "POST"})
        assert self.runtime.config is not None
        try:
            payload = parse_mcp_payload(flow.request.raw_content or b"", self.runtime.config.max_body_bytes)
        except JsonRpcRejected as e:
            return refuse(flow, e.status, f"unreadable MCP body: {e.reason}")
        scopes = None if identity.kind == "anonymous" else state_of(flow).scopes
        board = health_board(self.runtime)
        tools = RegistryTools(self.runtime.registry, board.latest if board else {}, self.runtime.config.public_url,
                              scopes)
        answers = [a for a in (self._answer(m, tools, identity.username) for m in payload.messages) if a is not None]
        if not answers:
            flow.response = http.Response.make(202, b"", {"cache-control": "no-store"})
            return
        flow.response = json_ok(answers if payload.batch else answers[0])

    def _answer(self, message: RpcMessage, tools: RegistryTools, user: str) -> dict[str, Any] | None:
        if message.kind != "request":
            return None  # notifications and responses get no answer
        params = message.raw.get("params") if isinstance(message.raw.get("params"), dict) else {}
        if message.method == "initialize":
            asked = params.get("protocolVersion")
            result: dict[str, Any] = {
                "protocolVersion": asked if asked in SUPPORTED_VERSIONS else SUPPORTED_VERSIONS[-1],
                "capabilities": {"tools": {"listChanged": False}}, "serverInfo": SERVER_INFO,
                "instructions": "Lists the gateway's MCP servers and their tools; toggles servers you may toggle."}
        elif message.method == "ping":
            result = {}
        elif message.method == "tools/list":
            result = {"tools": TOOLS}
        elif message.method == "tools/call":
            arguments = params.get("arguments") or {}
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
