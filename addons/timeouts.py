"""Upstream timeouts: a clear 504 (or 502) instead of a request that hangs.

mitmproxy has no connect or response timeout of its own: it waits as long as the
upstream does. For each forwarded request this addon starts a watchdog:

- not connected after `connect_timeout`: the connection attempt is cancelled, and the
  client gets mitmproxy's connect failure, a JSON 502;
- connected but no response headers after `response_timeout`: the gateway hands
  mitmproxy a 504 JSON response in the upstream's place and closes the upstream
  connection, so the flow ends the normal way (hooks, audit, mitmweb) with that 504.

Streams are not affected once their headers arrived: idle streams end after
`stream_idle_timeout` (mitmproxy's tcp_timeout).
"""

from __future__ import annotations

import asyncio
import logging

from mitmproxy import ctx, http
from mitmproxy.proxy import events

from .flow_state import state_of
from .responses import json_body
from .runtime import Runtime

log = logging.getLogger(__name__)

WATCHDOG = "gateway.timeout_watchdog"


def timeout_response(server: str, seconds: float) -> bytes:
    body = json_body(504, f"upstream {server!r} did not answer within {seconds:g}s")
    head = (f"HTTP/1.1 504 Gateway Timeout\r\ncontent-type: application/json\r\ncache-control: no-store\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n").encode()
    return head + body


class UpstreamTimeouts:
    def __init__(self, runtime: Runtime):
        self.runtime = runtime

    def request(self, flow: http.HTTPFlow) -> None:
        config = self.runtime.config
        if flow.response or flow.error or not state_of(flow).approved or config is None:
            return
        flow.metadata[WATCHDOG] = asyncio.get_running_loop().create_task(
            self._watch(flow, config.connect_timeout, config.response_timeout))

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        self._stop(flow)

    def error(self, flow: http.HTTPFlow) -> None:
        self._stop(flow)

    @staticmethod
    def _stop(flow: http.HTTPFlow) -> None:
        task = flow.metadata.pop(WATCHDOG, None)
        if task is not None:
            task.cancel()

    async def _watch(self, flow: http.HTTPFlow, connect_timeout: float, response_timeout: float) -> None:
        target = state_of(flow).forwarded_to or "upstream"
        await asyncio.sleep(min(connect_timeout, response_timeout))
        if self._waiting(flow) and flow.server_conn.timestamp_tcp_setup is None:
            io = self._transport(flow)
            if io is not None and io.handler is not None:
                log.warning("upstream %s: no connection within %gs; giving up", target, connect_timeout)
                io.handler.cancel()
            return
        await asyncio.sleep(max(0.0, response_timeout - min(connect_timeout, response_timeout)))
        if not self._waiting(flow):
            return
        handler = self._handler(flow)
        io = self._transport(flow)
        if handler is None or io is None:
            return
        log.warning("upstream %s: no response within %gs; answering 504", target, response_timeout)
        state_of(flow).amend(reason=f"upstream timeout after {response_timeout:g}s")
        await handler.server_event(events.DataReceived(flow.server_conn, timeout_response(target, response_timeout)))
        if io.writer is not None:
            io.writer.close()

    @staticmethod
    def _waiting(flow: http.HTTPFlow) -> bool:
        return flow.live and flow.response is None and flow.error is None

    @staticmethod
    def _handler(flow: http.HTTPFlow):
        proxyserver = ctx.master.addons.get("proxyserver")
        return proxyserver.connections.get(flow.client_conn.id) if proxyserver else None

    def _transport(self, flow: http.HTTPFlow):
        handler = self._handler(flow)
        return handler.transports.get(flow.server_conn) if handler else None
