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

from . import refusals

log = logging.getLogger(__name__)


def refuse_on_error(hook):
    """Decorate an addon hook `(self, flow)`: an exception answers 500 instead of propagating."""

    def fail(flow: http.HTTPFlow, exc: BaseException) -> None:
        log.error("gateway error in %s for %s %s: %s: %s — refused", hook.__qualname__, flow.request.method,
                  flow.request.path.split("?")[0], type(exc).__name__, exc, exc_info=exc)
        refusals.fail(flow)

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
