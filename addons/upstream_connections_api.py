"""`/api/connections`: the services a user has connected (per-user upstream tokens), and disconnecting.

- `GET /api/connections`: the caller's connections — every server with `[servers.upstream_oauth]`
  the caller may use, connected or not, with its connect URL. Never a token.
- `DELETE /api/connections/{server}`: disconnect (the tokens are forgotten, and revoked at the
  service's authorization server where it offers revocation).
- `?user=<provider:subject>` on either: another user's connections; needs `mcp:registry:admin`.
  The value is the `user` field `GET /api/connections` shows.

Logout does not disconnect: a connection belongs to the person, not to one browser session.
"""

from __future__ import annotations

import logging
from typing import Any, Callable
from urllib.parse import parse_qsl

from mitmproxy import http

from mcp_gateway.authz import decide_mcp_connect
from mcp_gateway.identity import Identity
from mcp_gateway.routing import Route
from mcp_gateway.scopes import REGISTRY_ADMIN
from mcp_gateway.sessions import StoreUnavailable
from mcp_gateway.upstream_connections import UpstreamConnections
from mcp_gateway.upstream_oauth import UpstreamOAuthError, connect_url

from .responses import json_ok
from .flow_state import Outcome, state_of
from .refusals import refuse
from .runtime import Runtime

log = logging.getLogger(__name__)

MAX_USER_LENGTH = 512


class ConnectionsApi:
    def __init__(self, runtime: Runtime, scopes_of: Callable[[Identity], frozenset[str]],
                 connections: Callable[[], UpstreamConnections]):
        self.runtime = runtime
        self.scopes_of = scopes_of
        self.connections = connections

    async def answer(self, flow: http.HTTPFlow, found: Route, identity: Identity) -> None:
        if identity.kind == "anonymous":
            return refuse(flow, 404, "per-user upstream connections need sign-in, which is off")
        method = flow.request.method
        if (found.server is None and method != "GET") or (found.server is not None and method != "DELETE"):
            return refuse(flow, 405, "use GET /api/connections or DELETE /api/connections/{server}")
        pairs = parse_qsl(found.query, keep_blank_values=True)
        if any(name != "user" for name, _ in pairs) or len(pairs) > 1:
            return refuse(flow, 400, "the only query parameter is user=<provider:subject>, once")
        owner = identity.owner
        if pairs:
            owner = pairs[0][1]
            if not owner or len(owner) > MAX_USER_LENGTH or not owner.isprintable():
                return refuse(flow, 400, "user: give the provider:subject that GET /api/connections shows")
            if REGISTRY_ADMIN not in self.scopes_of(identity):
                log.warning("access refused: %s asked for the upstream connections of another user", identity.username)
                return refuse(flow, 403, f"another user's connections need {REGISTRY_ADMIN}", scope=REGISTRY_ADMIN)
        try:
            if found.server is None:
                return await self._list(flow, identity, owner, owner != identity.owner)
            return await self._disconnect(flow, identity, owner, found.server)
        except StoreUnavailable:
            return refuse(flow, 503, "the session store is unavailable; try again shortly")

    def _oauth_servers(self):
        assert self.runtime.registry is not None
        return [s for s in self.runtime.registry.all() if s.upstream_oauth is not None]

    async def _list(self, flow: http.HTTPFlow, identity: Identity, owner: str, as_admin: bool) -> None:
        assert self.runtime.config is not None
        public = self.runtime.config.public_url
        servers = self._oauth_servers()
        connected = await self.connections().vault.connected(owner, [s.name for s in servers])
        scopes = self.scopes_of(identity)
        entries: list[dict[str, Any]] = []
        for server in servers:
            tokens = connected.get(server.name)
            if tokens is None and not as_admin and not decide_mcp_connect(scopes, server.name).allowed:
                continue
            entries.append({
                "server": server.name, "connected": tokens is not None,
                "expires_at": int(tokens.expires_at) if tokens and tokens.expires_at else None,
                "scope": tokens.scope if tokens else None,
                "refreshable": bool(tokens and tokens.refresh_token),
                "connect_url": connect_url(public, server.name),
            })
        _allowed(flow, "upstream connections listed")
        flow.response = json_ok({"user": owner, "connections": entries})

    async def _disconnect(self, flow: http.HTTPFlow, identity: Identity, owner: str, name: str) -> None:
        assert self.runtime.registry is not None
        server = self.runtime.registry.get(name)
        unknown = server is None or server.upstream_oauth is None
        connections = None if unknown else self.connections()
        if not unknown and owner == identity.owner and not decide_mcp_connect(self.scopes_of(identity), name).allowed:
            # Who may not use a server learns nothing about it — unless they still hold a
            # connection to it (kept after losing access), which they may always remove.
            unknown = name not in await connections.vault.connected(owner, [name])
        if unknown:
            return refuse(flow, 404, f"no server {name!r} with per-user upstream tokens")
        tokens = await connections.vault.forget(owner, name)
        if tokens is not None and tokens.access_token:
            try:
                await connections.oauth_for(server).revoke(tokens)
            except UpstreamOAuthError as e:
                log.warning("upstream oauth: revocation at %s's authorization server failed: %s", name, e)
        log.info("upstream oauth: %s disconnected %s from %s%s", identity.username, owner, name,
                 "" if tokens is not None else " (was not connected)")
        _allowed(flow, "upstream connection removed")
        flow.response = json_ok({"user": owner, "server": name, "disconnected": tokens is not None})


def _allowed(flow: http.HTTPFlow, reason: str) -> None:
    state_of(flow).decide(Outcome("allowed", 200, reason=reason))
