"""Masks secret tool-call arguments in the flows mitmproxy keeps, once they are forwarded.

mitmweb keeps every flow's request body on screen; a GitHub or AWS token passed as a tool
argument (docs/end-to-end-tokens.md) would sit there for anyone with the web UI. This addon
rewrites the stored request body after the request has gone upstream: in `responseheaders`
(the upstream has answered, so it has read the request), in `response` (also refused flows,
which never went upstream) and in `error`. The bytes sent upstream are never altered.
Patterns: `[gateway] masked_argument_names`. The server's upstream credential header, which the
forwarder added to the forwarded request, is masked in the stored flow the same way.
"""

from __future__ import annotations

import logging

from mitmproxy import http

from mcp_gateway.argument_masking import MASK, masked_body

from .flow_state import state_of
from .runtime import Runtime

log = logging.getLogger(__name__)

MASKED = "gateway.arguments_masked"


class MaskArguments:
    def __init__(self, runtime: Runtime):
        self.runtime = runtime

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        self._mask(flow)

    def response(self, flow: http.HTTPFlow) -> None:
        self._mask(flow)

    def error(self, flow: http.HTTPFlow) -> None:
        self._mask(flow)

    def _mask(self, flow: http.HTTPFlow) -> None:
        config = self.runtime.config
        if config is None or flow.metadata.get(MASKED):
            return
        flow.metadata[MASKED] = True
        server = state_of(flow).server
        if server is not None and server.upstream_header and server.upstream_header in flow.request.headers:
            flow.request.headers[server.upstream_header] = MASK
        if flow.request.method != "POST":
            return
        try:
            body = flow.request.get_content(strict=True)
        except ValueError:
            return
        masked = masked_body(body or b"", config.masked_argument_names)
        if masked is not None:
            flow.request.content = masked
