"""The registry API, answered by the gateway itself:

    GET    /api/servers              list (all with mcp:registry:read, else the readable ones)
    GET    /api/servers/{s}          read
    GET    /api/servers/{s}/tools    its tools (from the last health check), each with may_call and the scope
    POST   /api/servers/{s}/toggle   enable/disable ({"enabled": bool}; no body flips it)
    PUT    /api/servers/{s}          edit (PATCH too)
    POST   /api/servers              register
    DELETE /api/servers/{s}          delete

Changes are written by mcp_gateway.registry to the state file, never to gateway.toml.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from mitmproxy import http

from mcp_gateway.authz import Decision, decide_registry, readable_servers
from mcp_gateway.registry_fields import FieldProblem, check_body, decide_edit, origin_of
from mcp_gateway.scopes import server_scope
from mcp_gateway.config import ServerConfig
from mcp_gateway.registry import RegistryError
from mcp_gateway.registry_views import health_summary, tools_view
from mcp_gateway.routing import Area
from mcp_gateway.strict_json import BodyRejected, load_strict_json

from .failclosed import refuse_on_error
from .flow_state import Outcome, identified, state_of
from .health import health_board
from .refusals import refuse
from .responses import json_ok
from .runtime import Runtime

log = logging.getLogger(__name__)

MAX_BODY_DEPTH = 16  # an entry is flat but for its tags and tool list

ACTIONS = {
    ("collection", "GET"): "list",
    ("collection", "POST"): "register",
    ("entry", "GET"): "read",
    ("entry", "PUT"): "edit",
    ("entry", "PATCH"): "edit",
    ("entry", "DELETE"): "delete",
    ("toggle", "POST"): "toggle",
    ("tools", "GET"): "tools",
}


class RegistryApi:
    def __init__(self, runtime: Runtime, scopes_of):
        self.runtime = runtime
        self.scopes_of = scopes_of

    @refuse_on_error
    async def request(self, flow: http.HTTPFlow) -> None:
        if (seen := identified(flow)) is None:
            return
        found, identity = seen
        if found.area is Area.API_OTHER:
            return refuse(flow, 404, "no such API path")
        if found.area is not Area.REGISTRY:
            return
        action = ACTIONS.get((found.action, flow.request.method))
        if action is None:
            return refuse(flow, 405, f"{flow.request.method} is not allowed on this registry path")
        registry = self.runtime.registry
        assert registry is not None
        open_access = identity.kind == "anonymous"
        scopes = frozenset() if open_access else self.scopes_of(identity)
        try:
            if not open_access:
                decision = self._decide(flow, scopes, action, found.server)
                if not decision.allowed:
                    log.warning("access refused: registry %s %s by %s: %s", action, found.server or "",
                                identity.username, decision.reason)
                    # No insufficient_scope challenge: scopes come from groups, authorizing again cannot help.
                    return refuse(flow, 403, decision.reason, decided=Outcome.of(decision), scope=decision.scope)
                state_of(flow).decide(Outcome.of(decision))
            flow.response = await self._perform(flow, action, found.server, scopes, open_access)
        except RegistryError as e:
            log.warning("registry %s %s refused (%d): %s", action, found.server or "", e.status, e.message)
            refuse(flow, e.status, e.message)

    def _decide(self, flow: http.HTTPFlow, scopes: frozenset[str], action: str, name: str | None) -> Decision:
        """Edits are decided field by field (mcp_gateway/registry_fields.py); the rest by action."""
        if action != "edit":
            return decide_registry(scopes, "read" if action == "tools" else action, name)
        if not decide_registry(scopes, "edit", name).allowed and server_scope(name, "toggle") not in scopes:
            return decide_registry(scopes, "edit", name)  # no scope of the table: refused before the body is read
        fields = self._edit_fields(flow, name)
        config = self.runtime.config
        others = [s for s in self.runtime.registry.all() if s.name != name]
        return decide_edit(scopes, name, fields, config.editor_upstream_hosts if config else (),
                           [origin for s in others if (origin := origin_of(s.url))])

    def _edit_fields(self, flow: http.HTTPFlow, name: str | None) -> dict[str, Any]:
        body = self._body(flow, required=True)
        if "name" in body and body["name"] != name:
            raise RegistryError(400, "a server cannot be renamed; register a new one")
        fields = {k: v for k, v in body.items() if k != "name"}
        try:
            check_body(fields, with_name=False)
        except FieldProblem as e:
            raise RegistryError(400, str(e)) from None
        return fields

    async def _perform(self, flow: http.HTTPFlow, action: str, name: str | None, scopes: frozenset[str],
                       open_access: bool) -> http.Response:
        """Reads are answered from memory; changes (file lock, write, fsync) run in a thread."""
        registry = self.runtime.registry
        assert registry is not None
        if action == "list":
            servers = registry.all()
            visible = {s.name for s in servers} if open_access else readable_servers(scopes, [s.name for s in servers])
            return json_ok({"servers": [self._entry(s) for s in servers if s.name in visible]})
        if action == "read":
            return json_ok(self._entry(self._existing(name)))
        if action == "tools":
            server = self._existing(name)
            health = self._health(server.name)
            return json_ok({"server": server.name, "health": health_summary(health),
                            "tools": tools_view(None if open_access else scopes, server.name, health)})
        if action == "delete":
            await asyncio.to_thread(registry.delete, name)
            log.info("registry: server %s deleted", name)
            return json_ok({"deleted": name})
        body = self._body(flow, required=action in ("register", "edit"))
        if action == "toggle":
            current = self._existing(name)
            enabled = body.get("enabled", not current.enabled) if body else not current.enabled
            if not isinstance(enabled, bool):
                raise RegistryError(400, '"enabled" must be true or false')
            server = await asyncio.to_thread(registry.set_enabled, name, enabled)
            log.info("registry: server %s %s", name, "enabled" if enabled else "disabled")
            return json_ok(self._entry(server))
        if action == "edit":
            fields = self._edit_fields(flow, name)
            server = await asyncio.to_thread(registry.edit, name, fields)
            log.info("registry: server %s edited (%s)", name, ", ".join(sorted(fields)))
            _warn_unverified(server)
            return json_ok(self._entry(server))
        server = await asyncio.to_thread(registry.register, body)
        log.info("registry: server %s registered -> %s", server.name, server.url)
        _warn_unverified(server)
        return json_ok(self._entry(server), status=201)

    def _existing(self, name: str | None) -> ServerConfig:
        server = self.runtime.registry.get(name) if name and self.runtime.registry else None
        if server is None:
            raise RegistryError(404, f"unknown server {name!r}")
        return server

    @staticmethod
    def _body(flow: http.HTTPFlow, required: bool) -> dict[str, Any]:
        raw = flow.request.raw_content or b""
        if not raw.strip():
            if required:
                raise RegistryError(400, "a JSON object body is required")
            return {}
        if not flow.request.headers.get("content-type", "").startswith("application/json"):
            raise RegistryError(415 if required else 400, "send the body as application/json")
        try:
            body = load_strict_json(raw, len(raw), MAX_BODY_DEPTH)
        except BodyRejected as problem:
            raise RegistryError(400, f"the body is not JSON read one way only: {problem.reason}") from None
        if not isinstance(body, dict):
            raise RegistryError(400, "the body must be a JSON object")
        return body

    def _entry(self, server: ServerConfig) -> dict[str, Any]:
        public = self.runtime.config.public_url if self.runtime.config else ""
        return {
            "name": server.name,
            "description": server.description,
            "enabled": server.enabled,
            "url": server.url,
            "sse_path": server.sse_path,
            "streamable_path": server.streamable_path,
            "endpoints": {
                "sse": f"{public}/api/execute/{server.name}/sse",
                "streamable": f"{public}/api/streamable/{server.name}",
            },
            "tags": list(server.tags),
            "verify_tls": server.verify_tls,
            "upstream_header": server.upstream_header or None,
            "health": health_summary(self._health(server.name)),
        }

    def _health(self, name: str):
        board = health_board(self.runtime)
        return board.latest.get(name) if board is not None else None


def _warn_unverified(server: ServerConfig) -> None:
    if server.scheme == "https" and not server.verify_tls:
        log.warning("registry: server %s: verify_tls = false: its TLS certificate is NOT verified", server.name)
