"""Session store in Redis, for several gateway and login-app instances sharing sessions.

Keys (all under `key_prefix`, default `mcpgw:`), each with a TTL so nothing outlives its use:

- `session:<sha256 of token>`: a hash of the session record, expiring when the session would
  end unless seen again (renewed on each touch);
- the channel `session-changes`: the id of every session deleted or changed (other than its
  `last_seen_at` touch), published in the same transaction, for the proxies' session caches
  (`mcp_gateway/sessions/cache.py`);
- `bind:<sha256 of key>`, `hits:<sha256 of key>`, `once:<sha256 of key>`: MCP session
  owners, failure counters and single-use values. Caller keys are hashed because some
  (authorization codes, OAuth state) are secrets themselves.

Session expiry is measured with the store's `clock`; the other keys expire by Redis's own TTL.
Operations that must be atomic across instances are Lua scripts (run atomically by Redis)
or single commands (SET PX, GETDEL).
"""

import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from mcp_gateway.secretbox import SecretBox
from mcp_gateway.sessions.base import SessionStore, StoreUnavailable, key_digest, positive_seconds

log = logging.getLogger(__name__)

T = TypeVar("T")

# Set fields of an existing record only (a deleted session must not come back half-made),
# clear others, and renew the TTL if one is given (ARGV[1] > 0).
_PATCH = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local nset = tonumber(ARGV[2])
for i = 0, nset - 1 do redis.call('HSET', KEYS[1], ARGV[3 + 2 * i], ARGV[4 + 2 * i]) end
for i = 3 + 2 * nset, #ARGV do redis.call('HDEL', KEYS[1], ARGV[i]) end
if tonumber(ARGV[1]) > 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return 1
"""

_BIND = """
local current = redis.call('GET', KEYS[1])
if not current then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return ARGV[1]
end
if current == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return current
"""

_HIT = """
local count = redis.call('INCR', KEYS[1])
if count == 1 or redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return count
"""

# Check every key against its limit (ARGV[1 + i]), then count one attempt under each; all or nothing.
_ADMIT = """
for i = 1, #KEYS do
  if tonumber(redis.call('GET', KEYS[i]) or '0') >= tonumber(ARGV[1 + i]) then return 0 end
end
for i = 1, #KEYS do
  local count = redis.call('INCR', KEYS[i])
  if count == 1 or redis.call('PTTL', KEYS[i]) < 0 then redis.call('PEXPIRE', KEYS[i], ARGV[1]) end
end
return 1
"""

_RELEASE = """
if tonumber(redis.call('GET', KEYS[1]) or '0') > 0 then redis.call('DECR', KEYS[1]) end
"""

_REPLACE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
"""


def _milliseconds(seconds: float) -> int:
    return max(1, math.ceil(seconds * 1000))


def _text(value: Any) -> str:
    return repr(value) if isinstance(value, float) else str(value)


class RedisSessionStore(SessionStore):
    def __init__(
        self,
        url: str,
        *,
        lifetime: float,
        idle_timeout: float,
        secretbox: SecretBox | None,
        touch_interval: float = 30.0,
        clock: Callable[[], float] = time.time,
        key_prefix: str = "mcpgw:",
        connect_timeout: float = 2.0,
        command_timeout: float = 5.0,
    ) -> None:
        super().__init__(
            lifetime=lifetime, idle_timeout=idle_timeout, secretbox=secretbox, touch_interval=touch_interval,
            clock=clock,
        )
        self._prefix = key_prefix
        self._redis = aioredis.Redis.from_url(
            url,
            decode_responses=True,
            socket_connect_timeout=connect_timeout,
            socket_timeout=command_timeout,
            # One quick retry covers a pooled connection that a Redis restart closed; more
            # would only delay the 503 callers must give when Redis is really down.
            retry=Retry(ExponentialBackoff(cap=0.2, base=0.05), 1, supported_errors=(RedisConnectionError,)),
        )
        self.changes_channel = f"{key_prefix}session-changes"
        self._patch_script = self._redis.register_script(_PATCH)
        self._bind_script = self._redis.register_script(_BIND)
        self._hit_script = self._redis.register_script(_HIT)
        self._admit_script = self._redis.register_script(_ADMIT)
        self._release_script = self._redis.register_script(_RELEASE)
        self._replace_script = self._redis.register_script(_REPLACE)

    def __repr__(self) -> str:
        return f"RedisSessionStore(prefix={self._prefix!r})"

    def _key(self, kind: str, name: str) -> str:
        return f"{self._prefix}{kind}:{name}"

    def subscriber(self) -> aioredis.client.PubSub:
        """A pub/sub connection of this store's pool (for `changes_channel`)."""
        return self._redis.pubsub()

    async def _call(self, operation: Awaitable[T]) -> T:
        try:
            return await operation
        except RedisError as exc:
            raise StoreUnavailable(f"redis session store: {exc}") from exc

    # -- sessions --------------------------------------------------------------------------

    async def _insert(self, record: dict[str, Any], ttl: float) -> None:
        key = self._key("session", record["id"])
        fields = {name: _text(value) for name, value in record.items() if value is not None}
        pipe = self._redis.pipeline(transaction=True)
        pipe.hset(key, mapping=fields)
        pipe.pexpire(key, _milliseconds(ttl))
        await self._call(pipe.execute())

    async def _load(self, session_id: str) -> Mapping[str, Any] | None:
        record = await self._call(self._redis.hgetall(self._key("session", session_id)))
        return record or None

    async def _patch(self, session_id: str, changes: dict[str, Any], ttl: float | None = None) -> None:
        to_set = [(name, _text(value)) for name, value in changes.items() if value is not None]
        to_clear = [name for name, value in changes.items() if value is None]
        args = [0 if ttl is None else _milliseconds(ttl), len(to_set)]
        args += [item for pair in to_set for item in pair] + to_clear
        if set(changes) == {"last_seen_at"}:  # a touch: caches judge idleness themselves
            await self._call(self._patch_script(keys=[self._key("session", session_id)], args=args))
            return
        pipe = self._redis.pipeline(transaction=True)
        await self._patch_script(keys=[self._key("session", session_id)], args=args, client=pipe)
        pipe.publish(self.changes_channel, session_id)
        await self._call(pipe.execute())

    async def _remove(self, session_id: str) -> None:
        pipe = self._redis.pipeline(transaction=True)
        pipe.delete(self._key("session", session_id))
        pipe.publish(self.changes_channel, session_id)
        await self._call(pipe.execute())

    # -- bindings, counters, single-use values ---------------------------------------------

    async def bind(self, key: str, owner: str, ttl: float) -> str:
        args = [owner, _milliseconds(positive_seconds(ttl))]
        return await self._call(self._bind_script(keys=[self._key("bind", key_digest(key))], args=args))

    async def unbind(self, key: str) -> None:
        await self._call(self._redis.delete(self._key("bind", key_digest(key))))

    async def hit(self, key: str, window: float) -> int:
        args = [_milliseconds(positive_seconds(window))]
        return int(await self._call(self._hit_script(keys=[self._key("hits", key_digest(key))], args=args)))

    async def admit(self, limits: Mapping[str, int], window: float) -> bool:
        keys = [self._key("hits", key_digest(key)) for key in limits]
        args = [_milliseconds(positive_seconds(window)), *(int(limit) for limit in limits.values())]
        return bool(await self._call(self._admit_script(keys=keys, args=args)))

    async def release(self, key: str) -> None:
        await self._call(self._release_script(keys=[self._key("hits", key_digest(key))]))

    async def hits(self, key: str) -> int:
        value = await self._call(self._redis.get(self._key("hits", key_digest(key))))
        return int(value or 0)

    async def reset_hits(self, key: str) -> None:
        await self._call(self._redis.delete(self._key("hits", key_digest(key))))

    async def put_once(self, key: str, value: str, ttl: float) -> None:
        ttl_ms = _milliseconds(positive_seconds(ttl))
        await self._call(self._redis.set(self._key("once", key_digest(key)), value, px=ttl_ms))

    async def take_once(self, key: str) -> str | None:
        return await self._call(self._redis.getdel(self._key("once", key_digest(key))))

    async def get_value(self, key: str) -> str | None:
        return await self._call(self._redis.get(self._key("once", key_digest(key))))

    async def replace_value(self, key: str, expected: str, value: str, ttl: float) -> bool:
        args = [expected, value, _milliseconds(positive_seconds(ttl))]
        return bool(await self._call(self._replace_script(keys=[self._key("once", key_digest(key))], args=args)))

    # -- lifecycle -------------------------------------------------------------------------

    async def ping(self) -> None:
        await self._call(self._redis.ping())

    async def close(self) -> None:
        await self._redis.aclose()
