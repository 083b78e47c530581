"""First look at every request: are its headers and path unambiguous, which server, is it up,
is the body acceptable, may a browser on this Origin call it.

Runs at `requestheaders`, before any addon reads the body. The body rule also runs earlier
still, in error_pages, so that a body it refuses is never read at all.
"""

from __future__ import annotations

import logging
import re
import time

from mitmproxy import http

from mcp_gateway.routing import Area, RouteError, route

from . import error_pages
from .failclosed import refuse_on_error
from .responses import json_response
from .runtime import Runtime

log = logging.getLogger(__name__)

ROUTE = "gateway.route"
SERVER = "gateway.server"
STARTED = "gateway.started"
SEEN = "gateway.seen"
# A CR, LF or NUL inside a header: mitmproxy passes it on, and an upstream that reads a bare CR
# as a line end would see a header the gateway never saw (e.g. an X-User it strips).
_CONTROL_IN_HEADER = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
API_AREAS = (Area.SSE, Area.STREAMABLE, Area.REGISTRY, Area.API_OTHER)


def refuse(flow: http.HTTPFlow, status: int, message: str, headers: dict[str, str] | None = None, **extra) -> None:
    earlier = flow.metadata.get("gateway.decision") or {}
    kept = {k: earlier[k] for k in ("scope", "method", "tool") if earlier.get(k)} if earlier.get("decision") == "refused" else {}
    flow.metadata["gateway.decision"] = {**kept, "decision": "refused", "status": status, "reason": message}
    flow.response = json_response(status, message, headers, **extra)


def foreign_origin(request: http.Request, public_origin: str) -> bool:
    """True when a browser says the request comes from a page of another origin (or from several)."""
    origins = request.headers.get_all("origin")
    return len(origins) > 1 or (bool(origins) and origins[0] != public_origin)


class Router:
    def __init__(self, runtime: Runtime):
        self.runtime = runtime
        error_pages.refuse_before_body(self._body_problem_of)

    def _body_problem_of(self, request: http.Request) -> tuple[int, str] | None:
        config = self.runtime.config
        return None if config is None else self._body_problem(request, config.max_body_bytes)

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
        if any(_CONTROL_IN_HEADER.search(name + value) for name, value in request.headers.fields):
            return refuse(flow, 400, "a header contains a control character (CR, LF, NUL, ...)")
        if problem := self._body_problem(request, config.max_body_bytes):
            return refuse(flow, *problem)
        try:
            found = route(request.path)
        except RouteError as e:
            log.info("malformed path refused: %s", e.message)
            return refuse(flow, e.status, e.message)
        if found is None:
            return refuse(flow, 404, "no such path on this gateway")
        if found.area in API_AREAS:
            # MCP requires the Origin check (DNS rebinding, cross-site pages); a protocol upgrade
            # (WebSocket, h2c) would carry JSON-RPC past the per-message inspection.
            if foreign_origin(request, config.public_origin):
                log.warning("access refused: %s %s from a foreign Origin", request.method, request.path.split("?")[0])
                return refuse(flow, 403, "cross-origin request refused: a browser page may call /api/* "
                                         "only from the gateway's own origin")
            if "upgrade" in request.headers:
                return refuse(flow, 400, "protocol upgrades (WebSocket, h2c) are not accepted on /api/*")
        flow.metadata[ROUTE] = found
        if found.is_mcp:
            server = registry.get(found.server) or self.runtime.services.get("builtin_servers", {}).get(found.server)
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
