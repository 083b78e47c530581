"""MCP sessions belong to the identity that opened them.

An SSE `session_id` is bound when the upstream announces it in the `endpoint` event; a
Streamable HTTP `Mcp-Session-Id` when the upstream returns it. Anyone else presenting
either — on POST, GET or DELETE — is refused with 403 and logged. Bindings live in the
shared session store, so they hold across gateway instances.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict

from mitmproxy import http

from mcp_gateway.routing import Area, Route, RouteError
from mcp_gateway.sessions import StoreUnavailable
from mcp_gateway.upstream import session_id_from_query

from .failclosed import APPROVED, refuse_on_error
from .identify import IDENTITY
from .responses import json_response
from .router import ROUTE, refuse
from .runtime import Runtime
from .sse_stream import SSE_SESSION_OPENED

log = logging.getLogger(__name__)

MCP_SESSION_HEADER = "mcp-session-id"
OWNER_CACHE_SECONDS = 60.0
OWNER_CACHE_SIZE = 10_000


class SessionBinding:
    def __init__(self, runtime: Runtime):
        self.runtime = runtime
        self._owners: OrderedDict[str, tuple[str, float]] = OrderedDict()

    def _ttl(self) -> float:
        assert self.runtime.config is not None
        return self.runtime.config.session.lifetime

    @refuse_on_error
    async def request(self, flow: http.HTTPFlow) -> None:
        if flow.response or flow.error or not flow.live:
            return
        found: Route | None = flow.metadata.get(ROUTE)
        identity = flow.metadata.get(IDENTITY)
        if found is None or not found.is_mcp or identity is None or identity.kind == "anonymous":
            return
        store = self.runtime.services["store"]
        if found.area is Area.SSE:
            try:
                session_id = session_id_from_query(found.query)
            except RouteError as e:
                log.warning("auth: ambiguous MCP session id refused: user=%s %s %s: %s", identity.username,
                            found.server, flow.request.method, e.message)
                return refuse(flow, e.status, e.message)
            if session_id is None:
                loop = asyncio.get_running_loop()

                def opened(announced: str | None) -> bool:
                    if announced:
                        key = f"sse:{found.server}:{announced}"
                        loop.create_task(self._bind_quietly(store, key, identity.owner))
                    return True

                flow.metadata[SSE_SESSION_OPENED] = opened
                return
            key = f"sse:{found.server}:{session_id}"
        else:
            values = flow.request.headers.get_all(MCP_SESSION_HEADER)
            if len(values) > 1:
                return refuse(flow, 400, "more than one Mcp-Session-Id header")
            if not values:
                return
            key = f"streamable:{found.server}:{values[0]}"
        try:
            owner = await self._owner(store, key, identity.owner)
        except StoreUnavailable:
            return refuse(flow, 503, "the session store is unavailable; try again shortly")
        if owner != identity.owner:
            log.warning("auth: MCP session hijack refused: user=%s presented a session of another identity on %s %s",
                        identity.username, found.server, flow.request.method)
            return refuse(flow, 403, "this MCP session belongs to another identity")

    async def _owner(self, store, key: str, claimant: str) -> str:
        """The identity owning `key`. A binding never changes hands while it lives, so an
        owner learned from the store is remembered here for a minute: most requests of a
        session cost no store round trip, and the store's TTL is still refreshed while in use."""
        now = time.monotonic()
        cached = self._owners.get(key)
        if cached is not None and cached[1] > now:
            return cached[0]
        owner = await store.bind(key, claimant, self._ttl())
        self._owners[key] = (owner, now + OWNER_CACHE_SECONDS)
        self._owners.move_to_end(key)
        while len(self._owners) > OWNER_CACHE_SIZE:
            self._owners.popitem(last=False)
        return owner

    async def _bind_quietly(self, store, key: str, owner: str) -> None:
        try:
            await store.bind(key, owner, self._ttl())
        except StoreUnavailable:
            log.error("auth: could not bind an MCP session: session store unavailable")

    @refuse_on_error
    async def responseheaders(self, flow: http.HTTPFlow) -> None:
        found: Route | None = flow.metadata.get(ROUTE)
        identity = flow.metadata.get(IDENTITY)
        if (flow.response is None or not flow.metadata.get(APPROVED) or found is None
                or found.area is not Area.STREAMABLE or identity is None or identity.kind == "anonymous"):
            return
        session_id = flow.response.headers.get(MCP_SESSION_HEADER)
        if session_id and not flow.request.headers.get(MCP_SESSION_HEADER):
            try:
                owner = await self.runtime.services["store"].bind(
                    f"streamable:{found.server}:{session_id}", identity.owner, self._ttl())
            except StoreUnavailable:
                # An unbound session would be open to anyone who learns its id: do not hand it out.
                log.error("auth: could not bind a new MCP session on %s: session store unavailable", found.server)
                flow.response = json_response(503, "the session store is unavailable; try again shortly")
                return
            if owner != identity.owner:
                # An upstream reusing an id another identity owns: do not hand it over.
                log.error("auth: upstream %s issued an Mcp-Session-Id already bound to another identity", found.server)
                flow.response = http.Response.make(502, b'{"error":"bad_gateway","message":"upstream session clash"}',
                                                   {"content-type": "application/json"})
