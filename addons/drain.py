"""Graceful shutdown: SIGTERM (or SIGINT) drains the gateway before it stops.

1. It stops accepting connections at once and `/healthz` answers 503 (for a request still
   arriving on an open connection), so load balancers take the instance out.
2. Requests in flight finish, up to `[gateway] drain_timeout`; answers given meanwhile carry
   `Connection: close`, so clients and load balancers open their next connection elsewhere.
3. Event streams that never end by themselves (SSE and Streamable HTTP GET streams) are then
   ended cleanly: the client receives the end of a complete chunked answer, not a reset, and
   an MCP client reconnects — through the load balancer, to another instance.
4. The process stops and exits 0. A second SIGINT (Ctrl-C twice) stops it at once; a
   second SIGTERM is ignored.

Works the same under the launcher and under `mitmdump -s addons/gateway.py`: the addon
takes over both signals from mitmproxy in `running`. See docs/operations.md#graceful-shutdown.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from typing import Any, Iterator

from mitmproxy import ctx, http
from mitmproxy.proxy import events
from mitmproxy.proxy.layers.http._http1 import Http1Client

from mcp_gateway.routing import Area

from .flow_state import state_of
from .runtime import Runtime

log = logging.getLogger(__name__)

POLL = 0.05
STREAM_END_GRACE = 2.0  # after ending the streams: time for their last bytes to reach the clients


def is_draining(runtime: Runtime) -> bool:
    return runtime.draining


def is_long_stream(flow: http.HTTPFlow) -> bool:
    """A GET event stream: it lasts as long as the MCP session, so draining ends it instead of
    waiting for it."""
    found = state_of(flow).route
    return (flow.request.method == "GET" and found is not None and found.area in (Area.SSE, Area.STREAMABLE)
            and flow.response is not None
            and flow.response.headers.get("content-type", "").lower().startswith("text/event-stream"))


class Drain:
    def __init__(self, runtime: Runtime):
        self.runtime = runtime
        self.in_flight: set[http.HTTPFlow] = set()
        self._task: asyncio.Task | None = None

    def running(self) -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.begin, signum)

    def begin(self, signum: int = signal.SIGTERM) -> None:
        if self._task is not None:
            # A second SIGTERM is common (systemd signals every process of the service, then the
            # launcher signals its workers): it must not cut the drain short. Ctrl-C twice does.
            if signum == signal.SIGINT:
                log.warning("second interrupt while draining: stopping now")
                ctx.master.shutdown()
            return
        self.runtime.draining = True
        self._task = asyncio.get_running_loop().create_task(self.drain())

    # -- requests in flight ------------------------------------------------------------------

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        if flow.live:
            self.in_flight.add(flow)

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        self._close_after(flow)

    def response(self, flow: http.HTTPFlow) -> None:
        self._close_after(flow)  # answers made by an addon have no responseheaders event
        self.in_flight.discard(flow)

    def error(self, flow: http.HTTPFlow) -> None:
        self.in_flight.discard(flow)

    def _close_after(self, flow: http.HTTPFlow) -> None:
        if is_draining(self.runtime) and flow.response is not None and flow.request.http_version == "HTTP/1.1":
            flow.response.headers["connection"] = "close"

    # -- the drain -----------------------------------------------------------------------------

    async def drain(self) -> None:
        config = self.runtime.config
        timeout = config.drain_timeout if config is not None else 20.0
        deadline = time.monotonic() + timeout
        closed = self._stop_listening()
        log.info("draining: stopped listening (%d listener(s)); %d request(s) in flight, waiting up to %gs",
                 closed, len(self.in_flight), timeout)
        while any(not is_long_stream(f) for f in self.in_flight) and time.monotonic() < deadline:
            await asyncio.sleep(POLL)
        streams = [f for f in self.in_flight if is_long_stream(f)]
        for flow in streams:
            asyncio.get_running_loop().create_task(self._end_stream(flow, deadline))
        grace = time.monotonic() + STREAM_END_GRACE
        while self.in_flight and time.monotonic() < max(deadline, grace if streams else 0):
            await asyncio.sleep(POLL)
        left = len(self.in_flight)
        for flow in list(self.in_flight):
            if flow.killable:
                flow.kill()
        if left:
            log.warning("draining: %d request(s) still open after drain_timeout (%gs); closed", left, timeout)
        await self._close_connections()
        log.info("drained; stopping")
        ctx.master.shutdown()

    @staticmethod
    def _stop_listening() -> int:
        """Close the listening sockets, keep the connections. (mitmproxy's own server stop would
        wait for every connection to close: asyncio.Server.wait_closed.)"""
        proxyserver = ctx.master.addons.get("proxyserver")
        closed = 0
        for instance in list(proxyserver.servers) if proxyserver else []:
            for server in getattr(instance, "_servers", []):
                server.close()
                closed += 1
        return closed

    @staticmethod
    async def _close_connections() -> None:
        """Close the clients' idle kept-alive connections the way mitmproxy closes a connection,
        so none is left for the event loop to cancel (and log) at exit."""
        proxyserver = ctx.master.addons.get("proxyserver")
        if proxyserver is None:
            return
        for handler in list(proxyserver.connections.values()):
            io = getattr(handler, "transports", {}).get(getattr(handler, "client", None))
            if io is not None and io.handler is not None:
                io.handler.cancel("the gateway is stopping")
        deadline = time.monotonic() + STREAM_END_GRACE
        while proxyserver.connections and time.monotonic() < deadline:
            await asyncio.sleep(POLL)

    async def _end_stream(self, flow: http.HTTPFlow, deadline: float) -> None:
        """End a chunked event stream as if the upstream had: the end-of-body chunk is fed to
        mitmproxy's reader of the upstream connection, at a chunk boundary, so the client gets
        a complete answer. mitmproxy offers no public way to end a streamed response."""
        flow.response.headers["connection"] = "close"
        while flow in self.in_flight and time.monotonic() < deadline:
            handler, reader = self._upstream_reader(flow)
            if reader is None:
                break
            at_boundary = (getattr(reader.body_reader, "_bytes_in_chunk", None) == 0
                           and not getattr(reader.body_reader, "_reading_trailer", True) and not len(reader.buf))
            if at_boundary:
                pending = getattr(reader.body_reader, "_bytes_to_discard", b"")
                await handler.server_event(events.DataReceived(flow.server_conn, pending + b"0\r\n\r\n"))
                return
            await asyncio.sleep(POLL)
        if flow in self.in_flight and flow.killable:
            flow.kill()  # not chunked, or never at a boundary: close it

    @staticmethod
    def _upstream_reader(flow: http.HTTPFlow) -> tuple[Any, Http1Client | None]:
        proxyserver = ctx.master.addons.get("proxyserver")
        handler = proxyserver.connections.get(flow.client_conn.id) if proxyserver else None
        if handler is None:
            return None, None
        for layer in _layers(handler.layer):
            if isinstance(layer, Http1Client) and layer.conn is flow.server_conn:
                return handler, layer
        return handler, None


def _layers(root: Any, depth: int = 12) -> Iterator[Any]:
    """mitmproxy's layer tree of one connection: child layers and the HTTP layer's per-connection layers."""
    if root is None or depth == 0:
        return
    yield root
    for name in ("layer", "child_layer"):
        yield from _layers(getattr(root, name, None), depth - 1)
    for child in getattr(root, "connections", {}).values() if isinstance(getattr(root, "connections", None), dict) else ():
        yield from _layers(child, depth - 1)
