"""JSON instead of mitmproxy's HTML error pages.

When mitmproxy itself answers — the upstream refused the connection, a request could not
be parsed — it writes a small HTML page from `_http1.make_error_response`. MCP clients and
scripts need JSON, so the gateway replaces that function once, at import. This is the one
place the gateway reaches into mitmproxy's internals; the test suite pins the behaviour
(an upstream that is down answers 502 with a JSON body), so an incompatible mitmproxy
upgrade fails loudly rather than silently serving HTML.
"""

from __future__ import annotations

from mitmproxy import http, version
from mitmproxy.net.http import http1
from mitmproxy.proxy.layers.http import _http1

from .responses import json_body

_MESSAGES = {
    400: "the request could not be parsed",
    413: "request body too large",
    502: "the upstream server could not be reached or broke the connection",
}


def make_json_error_response(status_code: int, message: str = "") -> bytes:
    # mitmproxy's own message can name internal addresses (the login app, upstream
    # hosts): say what happened, not where.
    text = _MESSAGES.get(status_code, "the gateway could not complete this request")
    response = http.Response.make(
        status_code,
        json_body(status_code, text),
        http.Headers(
            Server=version.MITMPROXY,
            Connection="close",
            Content_Type="application/json",
            Cache_Control="no-store",
        ),
    )
    return http1.assemble_response(response)


def install() -> None:
    _http1.make_error_response = make_json_error_response
