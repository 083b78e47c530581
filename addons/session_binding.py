"""MCP sessions belong to the identity that opened them.

SSE: when the upstream announces a session in the stream's `endpoint` event, the gateway
records in the shared store who owns it and which message path it announced
(`sse:{server}:{session_id}` → owner, path). A POST under /api/execute/{s} is forwarded only
when its path and session id match such a record of the caller's: there is no binding on
first claim, so no other upstream endpoint and no session the gateway did not see opened is
reachable. Streamable HTTP: an `Mcp-Session-Id` is bound when the upstream returns it, and
only such an id is accepted (404 otherwise: no binding on first claim, so a session opened
through one server entry cannot be taken through another entry with the same upstream).
Anyone else presenting either — on POST, GET or DELETE — is refused with 403 and logged.
Records live in the shared session store, so they hold across workers and instances.

A stream whose owner cannot be recorded is refused (503) — checked with a store write before
the stream is opened — and cut if the record fails as the endpoint event passes; its session
is then unknown to every gateway, so nobody can post into it.

With authentication off (the data plane alone) nothing is bound; POSTs are still routed only
to a message path this process saw a stream of that server announce (docs/data-plane.md).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import OrderedDict

from mitmproxy import http

from mcp_gateway.identity import Identity
from mcp_gateway.routing import Area, Route, RouteError
from mcp_gateway.sessions import StoreUnavailable
from mcp_gateway.upstream import session_id_from_query

from .failclosed import refuse_on_error
from .flow_state import identified, state_of
from .refusals import cut_stream, refuse
from .runtime import Runtime
from .sse_stream import SSE_SESSION_OPENED

log = logging.getLogger(__name__)

MCP_SESSION_HEADER = "mcp-session-id"
OWNER_CACHE_SECONDS = 60.0
OWNER_CACHE_SIZE = 10_000
# The client may post as soon as it has the endpoint event, maybe to another worker, while the
# record is still being written: a POST naming an unknown session waits this long for it.
RECORD_WAIT_SECONDS = 1.0
ANNOUNCED_PATHS_PER_SERVER = 16
NOT_ROUTED = ("no such MCP session on this path: POST under /api/execute/{server} goes to the message "
              "endpoint the SSE stream announced, with its session id")


UNKNOWN_STREAMABLE_SESSION = ("unknown MCP session: start a new one (initialize without Mcp-Session-Id); a session "
                              "is valid only on the server it was opened on")
# Marks a Streamable session the gateway saw the upstream hand out: there is no binding on first
# claim, or a session opened through one server entry could be claimed through another entry
# with the same upstream.
HANDED_OUT = "handed-out:"


async def bind_streamable_session(store, key: str, owner: str, ttl: float) -> str:
    """Bind (or renew) the Streamable session `key` (`streamable:{server}:{id}`) for `owner`;
    returns the owner in force, another one for a session that is not `owner`'s."""
    bound = await store.bind(key, owner, ttl)
    if bound == owner:
        await store.put(HANDED_OUT + key, owner, ttl)
    return bound


def _other_transports_session(flow: http.HTTPFlow, found: Route) -> str | None:
    """Why the request names a session of the other transport, None when it does not.

    Each transport's session is checked where it belongs: the SSE `session_id` query on the
    message path, `Mcp-Session-Id` on /api/streamable. Carried on the other transport, it would
    pass unchecked to an upstream path an editor may have pointed elsewhere (`streamable_path`
    at the SSE message endpoint, `sse_path` at the Streamable one), into another identity's
    session."""
    if found.area is Area.SSE:
        if MCP_SESSION_HEADER in flow.request.headers:
            return "Mcp-Session-Id belongs to Streamable HTTP (/api/streamable/{server}), not to the SSE transport"
        return None
    try:
        named = session_id_from_query(found.query) is not None
    except RouteError:
        named = True
    return "an SSE session_id query has no meaning on Streamable HTTP" if named else None


class SessionBinding:
    def __init__(self, runtime: Runtime):
        self.runtime = runtime
        self._owners: OrderedDict[str, tuple[str, float]] = OrderedDict()
        self._streams: OrderedDict[str, tuple[dict, float]] = OrderedDict()
        self._writing: dict[str, asyncio.Task] = {}
        self._announced: dict[str, OrderedDict[str, None]] = {}  # auth off: server → message paths seen

    def _ttl(self) -> float:
        assert self.runtime.config is not None
        return self.runtime.config.session.lifetime

    def _store(self):
        assert self.runtime.store is not None  # auth on: Settings built one
        return self.runtime.store

    @refuse_on_error
    async def request(self, flow: http.HTTPFlow) -> None:
        if (seen := identified(flow)) is None or not seen[0].is_mcp:
            return
        found, identity = seen
        if (foreign := _other_transports_session(flow, found)) is not None:
            log.warning("auth: %s refused: user=%s %s %s", foreign, identity.username, found.server, flow.request.method)
            return refuse(flow, 400, foreign)
        if found.area is Area.SSE:
            return await self._sse_request(flow, found, identity)
        if identity.kind == "anonymous":
            return
        values = flow.request.headers.get_all(MCP_SESSION_HEADER)
        if len(values) > 1:
            return refuse(flow, 400, "more than one Mcp-Session-Id header")
        if not values:
            return
        try:
            owner = await self._owner(self._store(), f"streamable:{found.server}:{values[0]}",
                                      identity.owner)
        except StoreUnavailable:
            return refuse(flow, 503, "the session store is unavailable; try again shortly")
        if owner is None:
            log.warning("auth: unknown MCP session refused: user=%s %s %s", identity.username, found.server,
                        flow.request.method)
            return refuse(flow, 404, UNKNOWN_STREAMABLE_SESSION)
        if owner != identity.owner:
            return self._hijack(flow, found, identity)

    # -- SSE ---------------------------------------------------------------------------------

    async def _sse_request(self, flow: http.HTTPFlow, found: Route, identity: Identity) -> None:
        try:
            session_id = session_id_from_query(found.query)
        except RouteError as e:
            log.warning("auth: ambiguous MCP session id refused: user=%s %s %s: %s", identity.username,
                        found.server, flow.request.method, e.message)
            return refuse(flow, e.status, e.message)
        anonymous = identity.kind == "anonymous"
        if found.is_sse_stream and session_id is None:
            return self._learn_paths(flow, found) if anonymous else await self._open_stream(flow, found, identity)
        if session_id is None:
            return refuse(flow, 404, NOT_ROUTED)
        if anonymous:
            if found.is_sse_stream or found.rest in self._announced.get(found.server or "", {}):
                return
            return refuse(flow, 404, NOT_ROUTED)
        key = f"sse:{found.server}:{session_id}"
        try:
            record = await self._stream_record(key)
        except StoreUnavailable:
            return refuse(flow, 503, "the session store is unavailable; try again shortly")
        if record is None:
            log.warning("auth: POST into an unknown SSE session refused: user=%s %s %s", identity.username,
                        found.server, found.rest or "/")
            return refuse(flow, 404, NOT_ROUTED)
        if record.get("owner") != identity.owner:
            return self._hijack(flow, found, identity)
        if not found.is_sse_stream and record.get("path") != found.rest:
            log.warning("auth: POST to a path the SSE session did not announce refused: user=%s %s %s",
                        identity.username, found.server, found.rest)
            return refuse(flow, 404, NOT_ROUTED)

    async def _open_stream(self, flow: http.HTTPFlow, found: Route, identity: Identity) -> None:
        store = self._store()
        try:
            # A write now: a stream whose owner cannot be recorded is refused before it opens.
            await store.bind(f"sse-open:{identity.owner}", identity.owner, 60)
        except StoreUnavailable:
            log.error("auth: SSE stream on %s refused: the session store is unavailable", found.server)
            return refuse(flow, 503, "the session store is unavailable; try again shortly")
        loop = asyncio.get_running_loop()

        def opened(session_id: str | None, path: str) -> bool:
            if session_id is None:
                log.error("server %s: the endpoint event names no session id; stream refused", found.server)
                return False
            key = f"sse:{found.server}:{session_id}"
            record = {"owner": identity.owner, "path": path}
            self._writing[key] = loop.create_task(self._record_stream(flow, key, record))
            return True

        flow.metadata[SSE_SESSION_OPENED] = opened

    async def _record_stream(self, flow: http.HTTPFlow, key: str, record: dict) -> None:
        store = self._store()
        try:
            earlier = await store.get_value(key)
            if earlier is not None and json.loads(earlier).get("owner") != record["owner"]:
                return self._cut(flow, "the upstream announced a session id another identity owns")
            await store.put(key, json.dumps(record), self._ttl())
            self._remember(self._streams, key, record)
        except StoreUnavailable:
            self._cut(flow, "the session store is unavailable: the stream's owner could not be recorded")
        except Exception:
            log.exception("auth: recording an SSE stream's owner failed")
            self._cut(flow, "the stream's owner could not be recorded")
        finally:
            self._writing.pop(key, None)

    @staticmethod
    def _cut(flow: http.HTTPFlow, reason: str) -> None:
        log.error("auth: SSE stream cut: %s", reason)
        cut_stream(flow, 503, reason)
        transformer = flow.response.stream if flow.response is not None else None
        if callable(getattr(transformer, "cut", None)):
            transformer.cut(reason)

    async def _stream_record(self, key: str) -> dict | None:
        cached = self._streams.get(key)
        if cached is not None and cached[1] > time.monotonic():
            return cached[0]
        deadline = time.monotonic() + RECORD_WAIT_SECONDS
        while True:
            writing = self._writing.get(key)
            if writing is not None:
                await asyncio.wait({writing}, timeout=RECORD_WAIT_SECONDS)
            raw = await self._store().get_value(key)
            if raw is not None:
                record = json.loads(raw)
                self._remember(self._streams, key, record)
                return record
            if time.monotonic() > deadline:
                return None
            await asyncio.sleep(0.1)

    def _learn_paths(self, flow: http.HTTPFlow, found: Route) -> None:
        def opened(session_id: str | None, path: str) -> bool:
            paths = self._announced.setdefault(found.server or "", OrderedDict())
            paths[path] = None
            while len(paths) > ANNOUNCED_PATHS_PER_SERVER:
                paths.popitem(last=False)
            return True

        flow.metadata[SSE_SESSION_OPENED] = opened

    # -- shared ------------------------------------------------------------------------------

    @staticmethod
    def _hijack(flow: http.HTTPFlow, found: Route, identity: Identity) -> None:
        log.warning("auth: MCP session hijack refused: user=%s presented a session of another identity on %s %s",
                    identity.username, found.server, flow.request.method)
        refuse(flow, 403, "this MCP session belongs to another identity")

    def _remember(self, cache: OrderedDict, key: str, value: object) -> None:
        cache[key] = (value, time.monotonic() + OWNER_CACHE_SECONDS)
        cache.move_to_end(key)
        while len(cache) > OWNER_CACHE_SIZE:
            cache.popitem(last=False)

    async def _owner(self, store, key: str, claimant: str) -> str | None:
        """The identity owning `key`, None for a session the gateway did not see handed out on
        this server. A binding never changes hands while it lives, so an owner learned from the
        store is remembered here for a minute: most requests of a session cost no store round
        trip, and the store's TTL is still refreshed while in use."""
        cached = self._owners.get(key)
        if cached is not None and cached[1] > time.monotonic():
            return cached[0]
        if await store.get_value(HANDED_OUT + key) is None:
            return None
        owner = await bind_streamable_session(store, key, claimant, self._ttl())
        self._remember(self._owners, key, owner)
        return owner

    @refuse_on_error
    async def responseheaders(self, flow: http.HTTPFlow) -> None:
        state = state_of(flow)
        found, identity = state.route, state.identity
        if (flow.response is None or not state.approved or found is None
                or found.area is not Area.STREAMABLE or identity is None or identity.kind == "anonymous"):
            return
        session_id = flow.response.headers.get(MCP_SESSION_HEADER)
        if session_id and not flow.request.headers.get(MCP_SESSION_HEADER):
            try:
                owner = await bind_streamable_session(
                    self._store(), f"streamable:{found.server}:{session_id}", identity.owner, self._ttl())
            except StoreUnavailable:
                # An unbound session would be open to anyone who learns its id: do not hand it out.
                log.error("auth: could not bind a new MCP session on %s: session store unavailable", found.server)
                return refuse(flow, 503, "the session store is unavailable; try again shortly", after_answer=True)
            if owner != identity.owner:
                # An upstream reusing an id another identity owns: do not hand it over.
                log.error("auth: upstream %s issued an Mcp-Session-Id already bound to another identity", found.server)
                refuse(flow, 502, "upstream session clash", after_answer=True)
