"""First look at every request: is the path unambiguous, which server, is it up, is the body acceptable.

Runs at `requestheaders`, before mitmproxy reads the body, so a refusal costs nothing.
"""

from __future__ import annotations

import logging
import time

from mitmproxy import http

from mcp_gateway.routing import Area, RouteError, route

from .failclosed import refuse_on_error
from .responses import json_response
from .runtime import Runtime

log = logging.getLogger(__name__)

ROUTE = "gateway.route"
SERVER = "gateway.server"
STARTED = "gateway.started"
SEEN = "gateway.seen"


def refuse(flow: http.HTTPFlow, status: int, message: str, headers: dict[str, str] | None = None, **extra) -> None:
    earlier = flow.metadata.get("gateway.decision") or {}
    kept = {k: earlier[k] for k in ("scope", "method", "tool") if earlier.get(k)} if earlier.get("decision") == "refused" else {}
    flow.metadata["gateway.decision"] = {**kept, "decision": "refused", "status": status, "reason": message}
    flow.response = json_response(status, message, headers, **extra)


class Router:
    def __init__(self, runtime: Runtime):
        self.runtime = runtime

    @refuse_on_error
    def requestheaders(self, flow: http.HTTPFlow) -> None:
        if flow.response or flow.error or not flow.live:
            return
        flow.metadata[SEEN] = True
        flow.metadata[STARTED] = time.monotonic()
        flow.metadata["gateway.public_path"] = flow.request.path
        config, registry = self.runtime.config, self.runtime.registry
        if config is None or registry is None:
            return refuse(flow, 503, "the gateway is not configured; see its log")
        request = flow.request
        if request.method == "CONNECT" or request.authority:
            return refuse(flow, 400, "absolute-form request targets are not accepted; send a path")
        if problem := self._body_problem(request, config.max_body_bytes):
            return refuse(flow, *problem)
        try:
            found = route(request.path)
        except RouteError as e:
            log.info("malformed path refused: %s", e.message)
            return refuse(flow, e.status, e.message)
        if found is None:
            return refuse(flow, 404, "no such path on this gateway")
        flow.metadata[ROUTE] = found
        if found.is_mcp:
            server = registry.get(found.server)
            if server is None:
                return refuse(flow, 404, f"unknown server {found.server!r}")
            if not server.enabled:
                return refuse(flow, 503, f"server {found.server!r} is disabled")
            flow.metadata[SERVER] = server
        elif found.area is Area.LOGIN and self.runtime.login_app_url is None:
            return refuse(flow, 503, "the login app is not running")

    @staticmethod
    def _body_problem(request: http.Request, cap: int) -> tuple[int, str] | None:
        # A body mitmproxy would read without a known length (chunked) cannot be capped
        # before it is buffered, and TE + CL together is the classic smuggling vector.
        if "transfer-encoding" in request.headers:
            return 411, "chunked request bodies are not accepted; send Content-Length"
        lengths = request.headers.get_all("content-length")
        if len(lengths) > 1:
            return 400, "more than one Content-Length header"
        if lengths:
            value = lengths[0].strip()
            if not value.isdigit():
                return 400, "Content-Length is not a number"
            if int(value) > cap:
                return 413, f"request body larger than {cap} bytes"
        return None
