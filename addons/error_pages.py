"""mitmproxy's HTTP/1 server, as the gateway needs it: JSON error pages, and request heads
and refused bodies that cost no memory.

- When mitmproxy itself answers — the upstream refused the connection, a request could not
  be parsed — it writes a small HTML page from `_http1.make_error_response`. MCP clients and
  scripts need JSON, so the gateway replaces that function once, at import.
- mitmproxy reads a request head of any size into memory ("FIXME: protect against header
  size DoS" in `_http1.Http1Server.read_headers`): a head larger than MAX_REQUEST_HEAD_BYTES
  gets a 431 and the connection is closed.
- mitmproxy reads, and buffers, a request's whole body before it sends an answer an addon
  gave at `requestheaders` — a refused 10 GB body would be held in memory. The Router
  registers its body rule here (`refuse_before_body`), and a head it refuses is answered and
  the connection closed before any of the body is read.

These are the places the gateway reaches into mitmproxy's internals; the test suite pins
each behaviour (a down upstream answers a JSON 502, an oversized head 431, a declared
oversized body 413 at once), so an incompatible mitmproxy upgrade fails loudly.
"""

from __future__ import annotations

import logging
from typing import Callable

from h11._receivebuffer import ReceiveBuffer
from mitmproxy import http, version
from mitmproxy.net.http import http1
from mitmproxy.proxy import commands, events
from mitmproxy.proxy.layers.http import _http1

from .responses import json_body

log = logging.getLogger(__name__)

MAX_REQUEST_HEAD_BYTES = 64 * 1024
_MESSAGES = {
    400: "the request could not be parsed",
    413: "request body too large",
    431: f"the request line and headers are larger than {MAX_REQUEST_HEAD_BYTES} bytes",
    502: "the upstream server could not be reached or broke the connection",
}
_ERRORS = {431: "request_header_fields_too_large"}

BodyRule = Callable[[http.Request], "tuple[int, str] | None"]
_body_rule: BodyRule | None = None


def make_json_error_response(status_code: int, message: str = "") -> bytes:
    # mitmproxy's own message can name internal addresses (the login app, upstream
    # hosts): say what happened, not where.
    text = _MESSAGES.get(status_code, "the gateway could not complete this request")
    return _assemble(status_code, json_body(status_code, text, **_extra(status_code)))


def _extra(status_code: int) -> dict[str, str]:
    return {"error": _ERRORS[status_code]} if status_code in _ERRORS else {}


def _assemble(status_code: int, body: bytes) -> bytes:
    response = http.Response.make(
        status_code, body,
        http.Headers(Server=version.MITMPROXY, Connection="close", Content_Type="application/json",
                     Cache_Control="no-store"),
    )
    return http1.assemble_response(response)


def refuse_before_body(rule: BodyRule) -> None:
    """Have `rule(request head)` decide, before the body is read, which requests to refuse."""
    global _body_rule
    _body_rule = rule


def _refusal(buffer: ReceiveBuffer) -> bytes | None:
    """The answer to a request head that must not be read further, None to go on as usual."""
    if len(buffer) <= MAX_REQUEST_HEAD_BYTES and _body_rule is None:
        return None
    probe = ReceiveBuffer()
    probe += bytes(buffer)[:MAX_REQUEST_HEAD_BYTES + 4]
    lines = probe.maybe_extract_lines()
    if lines is None:
        return make_json_error_response(431) if len(buffer) > MAX_REQUEST_HEAD_BYTES else None
    if not lines or _body_rule is None:
        return None
    head_text = b"".join(lines).lower()
    if b"content-length" not in head_text and b"transfer-encoding" not in head_text:
        return None  # no body to refuse: skip a second parse of the head (every GET takes this path)
    try:
        head = http1.read_request_head([bytes(line) for line in lines])
    except ValueError:
        return None  # mitmproxy answers it with a 400
    refused = _body_rule(head)
    if refused is None:
        return None
    status, message = refused
    log.info("request refused before its body was read: %s %s: %s", head.method, head.path.split("?")[0], message)
    return _assemble(status, json_body(status, message))


def _guarded(read_headers):
    def read_headers_guarded(self, event):
        if isinstance(event, events.DataReceived) and (answer := _refusal(self.buf)) is not None:
            yield commands.SendData(self.conn, answer)
            yield commands.CloseConnection(self.conn)
            self.state = self.done
            return
        yield from read_headers(self, event)

    read_headers_guarded.guarded = True
    return read_headers_guarded


def install() -> None:
    _http1.make_error_response = make_json_error_response
    if not getattr(_http1.Http1Server.read_headers, "guarded", False):
        _http1.Http1Server.read_headers = _guarded(_http1.Http1Server.read_headers)
