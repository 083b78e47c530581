"""Rate limits per identity and server: requests per second (a token bucket) and event streams
held open at once (leases).

Where they are counted follows the session store: in Redis (atomic Lua scripts, Redis's own
clock) when `[session] store` is Redis, so every instance and worker counts together; in the
process's memory otherwise (SQLite is for one machine, and each process then has its own
counts). The Redis side is mcp_gateway/rate_limits_redis.py. See docs/rate-limits.md.

A stream lease expires `STREAM_LEASE_TTL` seconds after it was last renewed, so a stream whose
instance was killed stops counting by itself; the holder renews its leases every
`STREAM_LEASE_RENEW` seconds.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass, field

from .config import RateLimitsConfig
from .sessions import is_redis_url

STREAM_LEASE_TTL = 30.0
STREAM_LEASE_RENEW = 10.0
KEY_PREFIX = "mcpgw:rate:"
MAX_MEMORY_BUCKETS = 100_000  # past this many, the memory limiter forgets the buckets that refilled


class RateLimitStoreUnavailable(Exception):
    """Redis cannot be asked: the caller refuses (fails closed) rather than allow unlimited."""


def limit_key(caller: str, server: str) -> str:
    """One counter per caller and server; hashed so a long or odd subject makes a short key.
    The server name comes first: it cannot contain the separator, so no two pairs collide."""
    return hashlib.sha256(f"{server}\0{caller}".encode()).hexdigest()[:32]


def capacity_of(limits: RateLimitsConfig) -> int:
    return limits.burst or max(1, math.ceil(limits.requests_per_second))


@dataclass
class Bucket:
    tokens: float
    updated: float

    def take(self, now: float, rate: float, capacity: int) -> float:
        """Take one token: 0.0 when there was one, else the seconds until there is one."""
        self.tokens = min(capacity, self.tokens + max(0.0, now - self.updated) * rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / rate


class RateLimiter:
    """The interface both backends offer (the memory one is also the reference for Redis's scripts)."""

    def __init__(self, limits: RateLimitsConfig):
        self.limits = limits

    async def take(self, key: str) -> float:
        raise NotImplementedError

    async def open_stream(self, key: str, stream: str) -> bool:
        raise NotImplementedError

    async def close_stream(self, key: str, stream: str) -> None:
        raise NotImplementedError

    async def renew_streams(self, leases: dict[str, str]) -> None:
        """Renew the leases of the streams still open here (stream id → key)."""

    async def close(self) -> None:
        pass


@dataclass
class MemoryRateLimiter(RateLimiter):
    limits: RateLimitsConfig
    buckets: dict[str, Bucket] = field(default_factory=dict)
    streams: dict[str, set[str]] = field(default_factory=dict)
    forget_at: int = MAX_MEMORY_BUCKETS

    async def take(self, key: str) -> float:
        now = time.monotonic()
        capacity = capacity_of(self.limits)
        bucket = self.buckets.setdefault(key, Bucket(capacity, now))
        wait = bucket.take(now, self.limits.requests_per_second, capacity)
        if len(self.buckets) > self.forget_at:
            self._forget_full(now, capacity)
        return wait

    def _forget_full(self, now: float, capacity: int) -> None:
        """Forget the buckets that have refilled by now: they behave exactly like new ones. (A
        bucket's `tokens` are as of its last take, so they must be brought up to now first.)"""
        rate = self.limits.requests_per_second
        self.buckets = {key: bucket for key, bucket in self.buckets.items()
                        if bucket.tokens + max(0.0, now - bucket.updated) * rate < capacity}
        # Buckets still filling stay; the next sweep waits until there are twice as many, so a
        # flood of fresh keys costs each request O(1) on average, not a sweep of them all.
        self.forget_at = max(MAX_MEMORY_BUCKETS, 2 * len(self.buckets))

    async def open_stream(self, key: str, stream: str) -> bool:
        held = self.streams.setdefault(key, set())
        if len(held) >= self.limits.concurrent_streams:
            return False
        held.add(stream)
        return True

    async def close_stream(self, key: str, stream: str) -> None:
        held = self.streams.get(key)
        if held is not None:
            held.discard(stream)
            if not held:
                del self.streams[key]


def rate_limiter_for(limits: RateLimitsConfig, store_url: str) -> RateLimiter | None:
    """None when no limit is configured."""
    if not limits.enabled:
        return None
    if is_redis_url(store_url):
        from .rate_limits_redis import RedisRateLimiter  # the client library only when Redis is used
        return RedisRateLimiter(limits, store_url)
    return MemoryRateLimiter(limits)
