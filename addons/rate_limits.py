"""Rate limits on MCP requests, per identity and server (`[rate_limits]`, docs/rate-limits.md).

Runs after identify: the caller is known (with authentication off, the client's address is
the caller). Over the limit: 429 with `Retry-After` and a JSON body. Event streams (SSE and
Streamable HTTP GET) take a lease when they open and give it back when they end. The
counting lives in mcp_gateway/rate_limits.py; if Redis cannot be asked, the request is
refused with 503 (fail closed), never let through uncounted.
"""

from __future__ import annotations

import asyncio
import logging
import math

from mitmproxy import http

from mcp_gateway.identity import Identity
from mcp_gateway.rate_limits import (
    STREAM_LEASE_RENEW,
    RateLimiter,
    RateLimitStoreUnavailable,
    limit_key,
    rate_limiter_for,
)
from mcp_gateway.routing import Route

from .failclosed import refuse_on_error
from .flow_state import state_of
from .refusals import refuse
from .runtime import Runtime

log = logging.getLogger(__name__)

LEASE = "gateway.rate_limits.lease"  # the limit key of a stream holding a lease
STREAM_RETRY_AFTER = 5  # seconds: a stream slot frees when another stream ends, which cannot be foreseen


def caller_of(flow: http.HTTPFlow, identity: Identity) -> str:
    if identity.kind == "anonymous":
        return "address:" + (flow.client_conn.peername[0] if flow.client_conn.peername else "-")
    return identity.owner


def is_stream_request(flow: http.HTTPFlow, found: Route) -> bool:
    return flow.request.method == "GET" and found.is_mcp


class RateLimits:
    def __init__(self, runtime: Runtime):
        self.runtime = runtime
        self.limiter: RateLimiter | None = None
        self.leases: dict[str, str] = {}  # flow id → limit key, for streams open in this process
        self._renewer: asyncio.Task | None = None

    def configure(self, updated: set[str]) -> None:
        if "gateway_config" not in updated or self.runtime.config is None:
            return
        config = self.runtime.config
        old, self.limiter = self.limiter, rate_limiter_for(config.rate_limits, config.session.store)
        if old is not None:
            self._close_later(old)
        if self.limiter is not None:
            where = "in redis (all instances)" if "Redis" in type(self.limiter).__name__ else "per process"
            log.info("rate limits %s: %s", where, config.rate_limits)

    def running(self) -> None:
        self._renewer = asyncio.get_running_loop().create_task(self._renew_leases())

    def done(self) -> None:
        if self._renewer is not None:
            self._renewer.cancel()
        if self.limiter is not None:
            self._close_later(self.limiter)

    @staticmethod
    def _close_later(limiter: RateLimiter) -> None:
        try:
            asyncio.get_running_loop().create_task(limiter.close())
        except RuntimeError:
            pass

    @refuse_on_error
    async def request(self, flow: http.HTTPFlow) -> None:
        if flow.response or flow.error or not flow.live or self.limiter is None:
            return
        state = state_of(flow)
        found: Route | None = state.route
        identity: Identity | None = state.identity
        if found is None or not found.is_mcp or identity is None:
            return
        if state.server_problem is not None:
            return  # no server (or a disabled one): refused later; a bucket per made-up name would be unbounded
        limits = self.limiter.limits
        key = limit_key(caller_of(flow, identity), found.server or "")
        try:
            if limits.requests_per_second > 0:
                wait = await self.limiter.take(key)
                if wait > 0:
                    seconds = max(1, math.ceil(wait))
                    log.warning("rate limit: %s on %s over %g requests/s", identity.username, found.server,
                                limits.requests_per_second)
                    return refuse(flow, 429, f"rate limit: more than {limits.requests_per_second:g} requests per "
                                             f"second to {found.server!r}; retry in {seconds}s",
                                  {"retry-after": str(seconds)}, retry_after=seconds)
            if limits.concurrent_streams > 0 and is_stream_request(flow, found):
                if not await self.limiter.open_stream(key, flow.id):
                    log.warning("rate limit: %s holds %d streams to %s already", identity.username,
                                limits.concurrent_streams, found.server)
                    return refuse(flow, 429, f"rate limit: at most {limits.concurrent_streams} open streams to "
                                             f"{found.server!r} at once", {"retry-after": str(STREAM_RETRY_AFTER)},
                                  retry_after=STREAM_RETRY_AFTER)
                flow.metadata[LEASE] = key
                self.leases[flow.id] = key
        except RateLimitStoreUnavailable as e:
            log.error("rate limits: %s", e)
            refuse(flow, 503, "rate limits cannot be checked (the store is unavailable); try again later")

    async def response(self, flow: http.HTTPFlow) -> None:
        await self._release(flow)

    async def error(self, flow: http.HTTPFlow) -> None:
        await self._release(flow)

    async def _release(self, flow: http.HTTPFlow) -> None:
        key = flow.metadata.pop(LEASE, None)
        self.leases.pop(flow.id, None)
        if key is None or self.limiter is None:
            return
        try:
            await self.limiter.close_stream(key, flow.id)
        except RateLimitStoreUnavailable as e:
            log.warning("rate limits: a stream's lease stays until it expires: %s", e)

    async def _renew_leases(self) -> None:
        while True:
            await asyncio.sleep(STREAM_LEASE_RENEW)
            if self.limiter is not None and self.leases:
                try:
                    await self.limiter.renew_streams(dict(self.leases))
                except RateLimitStoreUnavailable as e:
                    log.warning("rate limits: cannot renew stream leases: %s", e)
