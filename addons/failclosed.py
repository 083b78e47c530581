"""Fail closed: mitmproxy logs an exception in a hook and forwards the request anyway.

Every gateway hook is wrapped so that an exception becomes a JSON 500 and the flow is
never forwarded. The sentinel (sentinel.py) is the second line: it refuses any flow the
gateway did not explicitly approve.
"""

from __future__ import annotations

import functools
import inspect
import logging

from mitmproxy import http

from .responses import json_response

log = logging.getLogger(__name__)

APPROVED = "gateway.approved"


def refuse_on_error(hook):
    """Decorate an addon hook `(self, flow)`: an exception answers 500 instead of propagating."""

    def fail(flow: http.HTTPFlow, exc: BaseException) -> None:
        log.error("gateway error in %s for %s %s: %s: %s — refused", hook.__qualname__, flow.request.method,
                  flow.request.path.split("?")[0], type(exc).__name__, exc, exc_info=exc)
        flow.metadata.pop(APPROVED, None)
        flow.metadata["gateway.decision"] = {"decision": "error", "status": 500, "reason": "internal error"}
        if flow.response is None or not flow.response.stream:
            flow.response = json_response(500, "the gateway failed while handling this request; it was not forwarded")

    if inspect.iscoroutinefunction(hook):
        @functools.wraps(hook)
        async def async_wrapper(self, flow):
            try:
                return await hook(self, flow)
            except Exception as exc:
                fail(flow, exc)
        return async_wrapper

    @functools.wraps(hook)
    def wrapper(self, flow):
        try:
            return hook(self, flow)
        except Exception as exc:
            fail(flow, exc)
    return wrapper
