"""Rate limits per identity and server: requests per second (a token bucket) and event streams
held open at once (leases).

Where they are counted follows the session store: in Redis (atomic Lua scripts, Redis's own
clock) when `[session] store` is Redis, so every instance and worker counts together; in the
process's memory otherwise (SQLite is for one machine, and each process then has its own
counts). See docs/rate-limits.md.

A stream lease expires `STREAM_LEASE_TTL` seconds after it was last renewed, so a stream whose
instance was killed stops counting by itself; the holder renews its leases every
`STREAM_LEASE_RENEW` seconds.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass, field

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from .config import RateLimitsConfig

STREAM_LEASE_TTL = 30.0
STREAM_LEASE_RENEW = 10.0
KEY_PREFIX = "mcpgw:rate:"


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

    async def take(self, key: str) -> float:
        now = time.monotonic()
        capacity = capacity_of(self.limits)
        bucket = self.buckets.setdefault(key, Bucket(capacity, now))
        wait = bucket.take(now, self.limits.requests_per_second, capacity)
        if len(self.buckets) > 100_000:  # forget full buckets: they behave exactly like new ones
            self.buckets = {k: b for k, b in self.buckets.items() if b.tokens < capacity}
        return wait

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


# KEYS[1]: the bucket (a hash); ARGV: rate, capacity, expiry in ms. Returns the wait, as text
# (a Lua number would be cut to an integer in the reply).
_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local rate, capacity = tonumber(ARGV[1]), tonumber(ARGV[2])
local saved = redis.call('HMGET', KEYS[1], 'tokens', 'updated')
local tokens = tonumber(saved[1]) or capacity
local updated = tonumber(saved[2]) or now
tokens = math.min(capacity, tokens + math.max(0, now - updated) * rate)
local wait = 0
if tokens >= 1 then tokens = tokens - 1 else wait = (1 - tokens) / rate end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'updated', tostring(now))
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return tostring(wait)
"""

# KEYS[1]: the key's leases (a sorted set scored by expiry); ARGV: limit, stream id, ttl.
_OPEN_STREAM = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if not redis.call('ZSCORE', KEYS[1], ARGV[2]) and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then
  return 0
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[2])
redis.call('EXPIRE', KEYS[1], math.ceil(tonumber(ARGV[3])) + 1)
return 1
"""

# KEYS: lease sets; ARGV: ttl, then one stream id per key.
_RENEW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
for i, key in ipairs(KEYS) do
  redis.call('ZADD', key, 'XX', now + tonumber(ARGV[1]), ARGV[i + 1])
  redis.call('EXPIRE', key, math.ceil(tonumber(ARGV[1])) + 1)
end
return 1
"""


class RedisRateLimiter(RateLimiter):
    def __init__(self, limits: RateLimitsConfig, url: str, *, command_timeout: float = 2.0):
        super().__init__(limits)
        self._redis = aioredis.Redis.from_url(url, decode_responses=True, socket_connect_timeout=command_timeout,
                                              socket_timeout=command_timeout)
        self._take = self._redis.register_script(_TAKE)
        self._open = self._redis.register_script(_OPEN_STREAM)
        self._renew = self._redis.register_script(_RENEW)

    async def _call(self, operation):
        try:
            return await operation
        except (RedisError, OSError) as e:
            raise RateLimitStoreUnavailable(f"rate limits in redis: {e}") from e

    async def take(self, key: str) -> float:
        rate = self.limits.requests_per_second
        capacity = capacity_of(self.limits)
        # Kept until a full bucket would have refilled: after that it is the same as a new one.
        expiry_ms = max(1000, math.ceil(capacity / rate * 1000) + 1000)
        wait = await self._call(self._take(keys=[f"{KEY_PREFIX}rps:{key}"], args=[rate, capacity, expiry_ms]))
        return float(wait)

    async def open_stream(self, key: str, stream: str) -> bool:
        opened = await self._call(self._open(keys=[f"{KEY_PREFIX}streams:{key}"],
                                             args=[self.limits.concurrent_streams, stream, STREAM_LEASE_TTL]))
        return bool(opened)

    async def close_stream(self, key: str, stream: str) -> None:
        await self._call(self._redis.zrem(f"{KEY_PREFIX}streams:{key}", stream))

    async def renew_streams(self, leases: dict[str, str]) -> None:
        if leases:
            keys = [f"{KEY_PREFIX}streams:{key}" for key in leases.values()]
            await self._call(self._renew(keys=keys, args=[STREAM_LEASE_TTL, *leases.keys()]))

    async def close(self) -> None:
        await self._redis.aclose()


def rate_limiter_for(limits: RateLimitsConfig, store_url: str) -> RateLimiter | None:
    """None when no limit is configured."""
    if not limits.enabled:
        return None
    if store_url.split(":", 1)[0].lower() in ("redis", "rediss", "unix"):
        return RedisRateLimiter(limits, store_url)
    return MemoryRateLimiter(limits)
