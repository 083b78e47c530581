"""The gateway's chain as ONE addon in mitmproxy's chain: one hook dispatch per event.

mitmproxy hands every hook event to every addon in its chain: for each one it walks the
addon's sub-addons, looks the hook up by name and enters a context manager that logs errors.
With the gateway's twenty addons that is some seventy addon visits and five hundred lookups
per request, most of them finding nothing (docs/benchmarks.md, "Where the time goes").

`ChainDispatch(chain)` takes the chain's place. Built once, it knows for every hook which of
the chain's addons implement it, and calls exactly those, in order — the same calls mitmproxy
would make, with mitmproxy's semantics: sync handlers of lifecycle hooks stay sync (`load`,
`configure`, `done`), an awaitable result is awaited, an exception in one addon is logged as
"Addon error" and the next addon still runs, and `AddonHalt` stops the event.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Sequence
from typing import Any

import mitmproxy.proxy.layers  # noqa: F401  (registers the HTTP, TLS, TCP, WebSocket and DNS hooks)
import mitmproxy.proxy.server_hooks  # noqa: F401
from mitmproxy import exceptions, hooks
from mitmproxy.addonmanager import traverse

log = logging.getLogger(__name__)

Handler = Callable[..., Any]


def _sync_dispatch(handlers: Sequence[Handler]) -> Handler:
    def dispatch(*args: Any) -> None:
        for handler in handlers:
            try:
                handler(*args)
            except (exceptions.AddonHalt, exceptions.OptionsError):
                raise
            except Exception as e:
                log.error(f"Addon error: {e}", exc_info=True)

    return dispatch


def _async_dispatch(handlers: Sequence[Handler]) -> Handler:
    async def dispatch(*args: Any) -> None:
        for handler in handlers:
            try:
                result = handler(*args)
                if result is not None and inspect.isawaitable(result):
                    await result
            except (exceptions.AddonHalt, exceptions.OptionsError):
                raise
            except Exception as e:
                log.error(f"Addon error: {e}", exc_info=True)

    return dispatch


class ChainDispatch:
    name = "gateway-chain"

    def __init__(self, chain: Sequence[object]) -> None:
        self.chain = list(chain)
        everyone = list(traverse(self.chain))  # with their sub-addons, in mitmproxy's order
        for hook in hooks.all_hooks:
            handlers = [getattr(addon, hook) for addon in everyone if callable(getattr(addon, hook, None))]
            if not handlers:
                continue
            asynchronous = any(inspect.iscoroutinefunction(handler) for handler in handlers)
            setattr(self, hook, (_async_dispatch if asynchronous else _sync_dispatch)(handlers))

    def __repr__(self) -> str:
        return f"ChainDispatch({', '.join(type(addon).__name__ for addon in self.chain)})"
