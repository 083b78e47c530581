"""First look at every request: are its headers and path unambiguous, which server, is it up,
is the body acceptable, may a browser on this Origin call it.

Runs at `requestheaders`, before any addon reads the body. The body rule also runs earlier
still, in error_pages, so that a body it refuses is never read at all.
"""

from __future__ import annotations

import logging
import re

from mitmproxy import http

from mcp_gateway.content_type import json_content_type_problem
from mcp_gateway.routing import Area, Route, RouteError, method_problem, route

from . import error_pages
from .failclosed import refuse_on_error
from .flow_state import LEGACY_ROUTE, set_route, start, state_of
from .refusals import refuse
from .runtime import Runtime

log = logging.getLogger(__name__)

# `refuse` and the key ROUTE lived here; both are re-exported for addons written against them
# (one release; docs/architecture.md §5): use refusals.refuse and flow_state.state_of(flow).route.
ROUTE = LEGACY_ROUTE
# A CR, LF or NUL inside a header: mitmproxy passes it on, and an upstream that reads a bare CR
# as a line end would see a header the gateway never saw (e.g. an X-User it strips).
_CONTROL_IN_HEADER = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
API_AREAS = (Area.SSE, Area.STREAMABLE, Area.REGISTRY, Area.API_OTHER)


def foreign_origin(request: http.Request, public_origin: str) -> bool:
    """True when a browser says the request comes from a page of another origin (or from several)."""
    origins = request.headers.get_all("origin")
    return len(origins) > 1 or (bool(origins) and origins[0] != public_origin)


class Router:
    def __init__(self, runtime: Runtime):
        self.runtime = runtime
        error_pages.refuse_before_body(self._body_problem_of)

    def _body_problem_of(self, request: http.Request) -> tuple[int, str] | None:
        """The rule applied to a request head before its body is read (error_pages)."""
        config = self.runtime.config
        if config is None:
            return None
        if problem := self._body_problem(request, config.max_body_bytes):
            return problem
        if foreign_origin(request, config.public_origin):
            return None  # refused with 403 in requestheaders, as every foreign Origin is
        try:
            found = route(request.path)
        except RouteError:
            return None  # the router answers it
        return _mcp_body_problem(request, found) if found is not None else None

    @refuse_on_error
    def requestheaders(self, flow: http.HTTPFlow) -> None:
        if flow.response or flow.error or not flow.live:
            return
        state = start(flow)
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
        set_route(flow, found)
        if found.is_mcp:
            if problem := _mcp_body_problem(request, found):
                return refuse(flow, *problem)
            server = registry.get(found.server) or self.runtime.builtin_servers.get(found.server)
            problem = ((404, f"unknown server {found.server!r}") if server is None else
                       (503, f"server {found.server!r} is disabled") if not server.enabled else None)
            if problem is None:
                state.server = server
            elif config.auth.enabled:
                state.server_problem = problem  # no enumeration before sign-in
            else:
                return refuse(flow, *problem)
        elif found.area is Area.LOGIN and self.runtime.login_app_url is None:
            return refuse(flow, 503, "the login app is not running")

    @refuse_on_error
    def request(self, flow: http.HTTPFlow) -> None:
        # A body that arrived without a Content-Length (HTTP/2 DATA frames) on a method the
        # gateway does not inspect: the head looked bodiless, the body is here now.
        found = state_of(flow).route
        if (flow.response or flow.error or not flow.live or found is None or not found.is_mcp
                or flow.request.method == "POST" or not flow.request.raw_content):
            return
        refuse(flow, 400, _BODY_ON_UNINSPECTED_METHOD.format(method=flow.request.method))

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


_BODY_ON_UNINSPECTED_METHOD = "a body on {method} is not accepted on MCP paths; only POST bodies are read and forwarded"


def _mcp_body_problem(request: http.Request, found: Route) -> tuple[int, str] | None:
    """A method the route does not take; a body on a method the gateway does not inspect (only
    POST bodies are, on MCP paths); a POST body that is not UTF-8 JSON (docs/data-plane.md)."""
    if not found.is_mcp:
        return None
    if problem := method_problem(found, request.method):
        return problem
    if request.method != "POST":
        length = request.headers.get("content-length", "0").strip()  # a number: checked by _body_problem
        return (400, _BODY_ON_UNINSPECTED_METHOD.format(method=request.method)) if int(length) > 0 else None
    if problem := json_content_type_problem(request.headers.get_all("content-type")):
        return 415, problem
    return None
