"""The transforming stream callable for the SSE transport's event stream.

mitmproxy calls it with each chunk from the upstream (and b"" at the end) and sends what
it returns at once. Chunks are cut into whole events; the `endpoint` event is rewritten to
the gateway's path, events other addons registered an interest in (e.g. `tools/list`
answers) go through their filters, and every other event passes through byte for byte,
as soon as its blank line arrives.
"""

from __future__ import annotations

import logging
from typing import Callable, Protocol

from mitmproxy import ctx, http

from mcp_gateway.config import ServerConfig
from mcp_gateway.routing import RouteError
from mcp_gateway.sse import EventTooLarge, SseEvent, SseEventSplitter
from mcp_gateway.upstream import public_endpoint, session_id_from_query

log = logging.getLogger(__name__)

SSE_MESSAGE_FILTER = "gateway.sse_message_filter"   # callable(SseEvent) -> SseEvent | None, set by other addons
SSE_SESSION_OPENED = "gateway.sse_session_opened"   # callable(session_id, path) -> bool (False: refuse the stream)


class MessageFilter(Protocol):
    def __call__(self, event: SseEvent) -> SseEvent | list[SseEvent]: ...


class SseTransformer:
    def __init__(self, server: ServerConfig, flow: http.HTTPFlow, rewrite_endpoint: bool = True):
        self.server = server
        self.flow = flow
        self.splitter = SseEventSplitter()
        self.dead = False
        # Only the SSE transport's stream announces an endpoint; elsewhere it is an ordinary event.
        self.endpoint_seen = not rewrite_endpoint

    def __call__(self, chunk: bytes) -> bytes:
        # An exception here would take down mitmproxy's connection handler: fail closed
        # by cutting this stream instead.
        try:
            return self._transform(chunk)
        except Exception as e:
            log.exception("SSE stream transformer failed")
            return self._die(f"internal error: {type(e).__name__}")

    def _transform(self, chunk: bytes) -> bytes:
        if self.dead:
            return b""
        if chunk == b"":
            return self.splitter.flush()
        try:
            events = self.splitter.feed(chunk)
        except EventTooLarge as e:
            return self._die(str(e))
        out = bytearray()
        message_filter: Callable | None = self.flow.metadata.get(SSE_MESSAGE_FILTER)
        for raw in events:
            if not self.endpoint_seen and b"endpoint" in raw:
                event = SseEvent.parse(raw)
                if event.event == "endpoint":
                    rewritten = self._rewrite_endpoint(event)
                    if rewritten is None:
                        return bytes(out) + self._die("the upstream's endpoint event was refused")
                    out += rewritten
                    continue
            if message_filter is not None and b"data" in raw:
                event = SseEvent.parse(raw)
                if event.event == "message":
                    changed = message_filter(event)
                    if changed is not event:
                        for replacement in changed if isinstance(changed, list) else [changed]:
                            out += replacement.serialize()
                        continue
            out += raw
        return bytes(out)

    def _rewrite_endpoint(self, event: SseEvent) -> bytes | None:
        try:
            event.data = public_endpoint(self.server, event.data)
            path, _, query = event.data.partition("?")
            session_id = session_id_from_query(query)
        except RouteError as e:
            log.error("server %s: %s", self.server.name, e.message)
            return None
        self.endpoint_seen = True
        on_session = self.flow.metadata.get(SSE_SESSION_OPENED)
        # The message endpoint, relative to /api/execute/{s}: POSTs are routed there only.
        announced = path[len(f"/api/execute/{self.server.name}"):]
        if on_session is not None and not on_session(session_id, announced):
            return None
        return event.serialize()

    def cut(self, reason: str) -> None:
        """End this stream from outside the stream (e.g. a failed store write): nothing more
        passes, and the upstream connection is closed, which ends the client's stream too."""
        self._die(reason)
        proxyserver = ctx.master.addons.get("proxyserver")
        handler = proxyserver.connections.get(self.flow.client_conn.id) if proxyserver else None
        io = handler.transports.get(self.flow.server_conn) if handler else None
        if io is not None and io.writer is not None:
            io.writer.close()

    def _die(self, reason: str) -> bytes:
        log.error("SSE stream from %s cut: %s", self.server.name, reason)
        self.dead = True
        return b""
