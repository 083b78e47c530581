"""The sentinel refuses every flow the gateway did not approve.

It is registered directly with mitmproxy's master, not through the `-s` script's
`addons` list, so it stays when a broken edit makes mitmproxy unload the script during a
hot reload — exactly the moment traffic would otherwise flow through unchecked. It runs
after the gateway's addons; a flow that reaches it without an answer and without the
gateway's approval is refused with 503.
"""

from __future__ import annotations

import logging

from mitmproxy import ctx, http

from .flow_state import Outcome, state_of
from .responses import json_response

log = logging.getLogger(__name__)

NAME = "mcpgatewaysentinel"


class Sentinel:
    name = NAME

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        self._guard(flow, "requestheaders")

    def request(self, flow: http.HTTPFlow) -> None:
        self._guard(flow, "request")

    def _guard(self, flow: http.HTTPFlow, stage: str) -> None:
        if flow.response is not None or flow.error is not None:
            return
        state = state_of(flow)
        if stage == "requestheaders" and state.seen:
            return
        if stage == "request" and state.approved:
            return
        log.error("sentinel: refusing %s %s — the gateway addon is not loaded or not configured",
                  flow.request.method, flow.request.path.split("?")[0])
        state.decide(Outcome("refused", 503, reason="gateway not ready"))
        flow.response = json_response(
            503, "the gateway is not loaded or not configured; no request is forwarded until it is")
        flow.marked = ":no_entry:"


def install() -> None:
    """Register the sentinel with the master once; later reloads of the script find it there."""
    if ctx.master.addons.get(NAME) is None:
        ctx.master.addons.add(Sentinel())
