"""Sends approved requests to their upstream and streams the answers back as they come.

The last gateway addon in the `request` chain: whatever no earlier addon answered is
either forwarded here — with the upstream's own Host, none of the caller's credentials,
and per-server upstream credentials added — or refused. Responses are streamed
(`flow.response.stream`), with a transforming callable where SSE events must change.
"""

from __future__ import annotations

import logging

from mitmproxy import http

from mcp_gateway.answer_headers import UPSTREAM_ANSWER_HEADERS, is_redirect, origin_wide
from mcp_gateway.config import ServerConfig
from mcp_gateway.header_policy import HeaderStripList, is_forwarding, other_spelling
from mcp_gateway.identity import SESSION_COOKIE
from mcp_gateway.routing import Area, Route
from mcp_gateway.upstream import upstream_target

from .failclosed import refuse_on_error
from .flow_state import state_of
from .healthz import health_response
from .refusals import refuse, restore_refusal_body
from .responses import media_type
from .runtime import Runtime
from .sse_stream import SSE_MESSAGE_FILTER, SseTransformer
from .upstream_credentials import upstream_credential
from .upstream_oauth import inject_user_token

log = logging.getLogger(__name__)

JSON = "application/json"


class Forwarder:
    def __init__(self, runtime: Runtime):
        self.runtime = runtime
        self._strip_list: tuple[tuple[str, ...], HeaderStripList] | None = None

    def strip_list(self) -> HeaderStripList:
        """Identity, forwarding and override headers a client must never set for the upstream
        (mcp_gateway/header_policy.py), plus the operator's `strip_request_headers`."""
        config = self.runtime.config
        extra = config.strip_request_headers if config is not None else ()
        if self._strip_list is None or self._strip_list[0] != extra:
            self._strip_list = (extra, HeaderStripList(extra))
        return self._strip_list[1]

    @refuse_on_error
    def request(self, flow: http.HTTPFlow) -> None:
        if flow.response or flow.error or not flow.live:
            return
        state = state_of(flow)
        found = state.route
        if found is None:
            return  # not routed: the sentinel refuses it
        if found.is_mcp:
            if state.server is None:  # unknown or disabled, and the checks before did not say so
                return refuse(flow, *(state.server_problem or (404, f"unknown server {found.server!r}")))
            self._to_server(flow, state.server, found)
        elif found.area is Area.LOGIN:
            self._to_login_app(flow)
        elif found.area is Area.HEALTH:
            if flow.request.method not in ("GET", "HEAD"):
                return refuse(flow, 405, "/healthz answers GET and HEAD only", {"allow": "GET, HEAD"})
            flow.response = health_response(self.runtime)
        else:
            refuse(flow, 404, "no such path on this gateway")

    def _strip_client_headers(self, headers: http.Headers) -> None:
        # One pass over the raw fields: deleting key by key re-scans mitmproxy's header list each time.
        strips = self.strip_list().strips
        headers.fields = tuple(
            (name, value) for name, value in headers.fields if not strips(name.decode("latin-1"))
        )
        remove_session_cookie(headers)

    def _to_server(self, flow: http.HTTPFlow, server: ServerConfig, found: Route) -> None:
        request = flow.request
        # mitmproxy reads `post` as POST, and so did every decision; the upstream gets that
        # spelling too, not the client's (a framework that upper-cases methods would otherwise
        # be the only reader of a method another one refuses).
        request.method = request.method
        self._strip_client_headers(request.headers)
        # The gateway reads the upstream's event streams (tools/list narrowing, refusals on the
        # stream, the endpoint rewrite): a compressed one would pass unread.
        request.headers["accept-encoding"] = "identity"
        if request.method == "POST":
            # The router let only UTF-8 JSON through: the upstream parses exactly what was inspected.
            request.headers["content-type"] = JSON
        _drop_other_spellings(request.headers, server.upstream_header,
                              server.upstream_oauth.token_header if server.upstream_oauth else None)
        if server.upstream_header:
            value = upstream_credential(server)
            if value is None:
                return refuse(flow, 502, f"upstream credentials for {server.name!r} are not available")
            request.headers[server.upstream_header] = value
        inject_user_token(flow, server, request.headers)  # after the static one: the user's token wins a shared header
        request.scheme = server.scheme
        request.host = server.host
        request.port = server.port
        request.path = upstream_target(server, found)
        request.host_header = server.host_header
        state_of(flow).forwarded_to = server.name
        state_of(flow).approved = True

    def _to_login_app(self, flow: http.HTTPFlow) -> None:
        target = self.runtime.login_app_url
        assert target is not None
        request = flow.request
        client_ip = flow.client_conn.peername[0] if flow.client_conn.peername else ""
        request.headers.fields = tuple(
            (name, value) for name, value in request.headers.fields if not is_forwarding(name.decode("latin-1"))
        )
        request.headers["x-forwarded-for"] = client_ip
        scheme, _, hostport = target.partition("://")
        host, _, port = hostport.partition(":")
        request.scheme = scheme
        request.host = host
        request.port = int(port) if port else (443 if scheme == "https" else 80)
        request.host_header = hostport
        state_of(flow).forwarded_to = "login-app"
        state_of(flow).approved = True

    @refuse_on_error
    def responseheaders(self, flow: http.HTTPFlow) -> None:
        state = state_of(flow)
        if flow.error or not state.approved or flow.response is None or flow.response.stream:
            return  # (a stream already set: an addon before refused the answer at its head)
        if state.forwarded_to == "login-app":
            return  # small pages and JSON: buffered, so mitmweb shows them whole
        found = state.route
        assert found is not None and state.server is not None  # approved: routed to a server
        if is_redirect(flow.response.status_code):
            log.warning("server %s answered %d (a redirect); not passed on", state.server.name,
                        flow.response.status_code)
            return refuse(flow, 502, "the upstream answered with a redirect, which the gateway does not pass on; "
                                     "check the server's url and paths", after_answer=True)
        _keep_to_its_server(flow.response.headers, state.server.name)
        events = media_type(flow.response) == "text/event-stream"
        read_on_the_way = ((found.area is Area.SSE and flow.request.method == "GET")
                           or (SSE_MESSAGE_FILTER in flow.metadata and not flow.metadata.get("gateway.buffer_response")))
        if read_on_the_way and not events and 200 <= flow.response.status_code < 300:
            log.warning("server %s: a stream request was answered %r, not an event stream; refused", state.server.name,
                        flow.response.headers.get("content-type", ""))
            return refuse(flow, 502, "the upstream answered a stream request with something other than an event "
                                     "stream, which the gateway must read (endpoint, narrowing)", after_answer=True)
        if events and (found.area is Area.SSE or SSE_MESSAGE_FILTER in flow.metadata):
            if flow.response.headers.get("content-encoding", "identity").strip().lower() != "identity":
                log.error("server %s: the upstream compressed an event stream though asked not to", state.server.name)
                return refuse(flow, 502, "the upstream sent a compressed event stream the gateway cannot read",
                              after_answer=True)
            _unframe(flow)
            flow.response.stream = SseTransformer(state.server, flow, rewrite_endpoint=found.area is Area.SSE)
        elif flow.metadata.get("gateway.buffer_response"):
            return  # an addon needs the whole body (e.g. to filter a tools/list answer)
        else:
            flow.response.stream = True

    def response(self, flow: http.HTTPFlow) -> None:
        restore_refusal_body(flow)


def _keep_to_its_server(headers: http.Headers, server: str) -> None:
    """An upstream answer may not act on the gateway's whole origin (mcp_gateway/answer_headers.py)."""
    if dropped := origin_wide(headers.keys()):
        log.info("server %s: dropped from its answer: %s", server, ", ".join(dropped))
        for name in dropped:
            del headers[name]
    headers.update(UPSTREAM_ANSWER_HEADERS)


def _unframe(flow: http.HTTPFlow) -> None:
    """A rewritten event stream has another length than the upstream's `Content-Length` said:
    without it, mitmproxy frames the answer itself (chunked for an HTTP/1.1 client)."""
    if "content-length" in flow.response.headers:
        del flow.response.headers["content-length"]
        if flow.request.http_version == "HTTP/1.1":
            flow.response.headers["transfer-encoding"] = "chunked"


def _drop_other_spellings(headers: http.Headers, *injected: str | None) -> None:
    """A client's `X_Api_Key` beside the injected `X-Api-Key` would reach a WSGI upstream as a
    second value of it (mcp_gateway/header_policy.py): only the gateway's spelling travels."""
    names = [name for name in injected if name]
    if names:
        headers.fields = tuple((name, value) for name, value in headers.fields
                               if not any(other_spelling(name.decode("latin-1"), of) for of in names))


def remove_session_cookie(headers: http.Headers) -> None:
    """Drop the gateway's own cookie, keep any other cookie the upstream may use — byte for byte:
    mitmproxy's `request.cookies` would re-quote the others when it writes the header back."""
    kept: list[str] = []
    for header in headers.get_all("cookie"):
        for part in header.split(";"):
            name = part.split("=", 1)[0].strip()
            if part.strip() and name != SESSION_COOKIE:
                kept.append(part.strip())
    if "cookie" in headers:
        del headers["cookie"]
    if kept:
        headers["cookie"] = "; ".join(kept)


__all__ = ["Forwarder", "remove_session_cookie"]
