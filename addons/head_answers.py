"""An answer to `HEAD` carries no body (RFC 9110 §9.3.2).

mitmproxy writes whatever body an addon's answer holds, even to a `HEAD`: on a kept-alive
connection the client reads the answer's head, stops, and takes those body bytes for the start
of its next answer (a desynchronised connection). The gateway's own answers — refusals, health,
protected-resource metadata, registry API — therefore lose their body here, last in the chain
(after the audit and metrics have seen it). Their headers, `Content-Length` included, stay as a
`GET` would have them."""

from __future__ import annotations

from mitmproxy import http


class HeadAnswers:
    def response(self, flow: http.HTTPFlow) -> None:
        if flow.response is not None and flow.request.method.upper() == "HEAD" and flow.response.raw_content:
            flow.response.raw_content = b""  # the setter leaves Content-Length alone
