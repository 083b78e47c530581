"""Rate limits counted in Redis (mcp_gateway/rate_limits.py says what is counted): atomic Lua
scripts on Redis's own clock, so every instance and worker counts together."""

from __future__ import annotations

import math

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from .config import RateLimitsConfig
from .rate_limits import KEY_PREFIX, STREAM_LEASE_TTL, RateLimiter, RateLimitStoreUnavailable, capacity_of

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
