"""The proxy's session reads answered from memory, without letting a logout or revocation lag.

Every authenticated request used to read its session from the store (SQLite on a thread
pool, or a Redis round trip). `CachedSessionStore` keeps the sessions it has read and answers
`get(token)` from memory while a *change signal* says nothing it holds may have changed:

- SQLite: `PRAGMA data_version` on a connection of its own, read on the caller's thread before
  every answer from memory (a few microseconds; no busy wait: a locked file means "ask the
  store"). It changes whenever any other connection — another worker, the login app, this
  process's own store threads — commits to the file, and then the whole cache is dropped. So a
  logout committed before a request is seen by that request: no lag at all.
- Redis: a subscription to the store's change channel, on which `RedisSessionStore` publishes
  the id of every session it deletes or changes, in the same transaction as the change. The
  listener pings Redis every `PING_INTERVAL`; a pong proves every message published before its
  ping has arrived. The cache answers only while the last such proof is younger than
  `FRESH_FOR`, so a change on any instance takes effect everywhere within that time (plus
  one ping), and a lost connection or a stalled listener means "ask the store". Every
  (re)connection of the subscription drops the whole cache: what was published meanwhile is lost
  (a Redis restarted empty must not leave its sessions alive in the proxies).

A cached session is answered only while the store itself would answer it without a write:
not expired, not idle, and not due for its `last_seen_at` touch (then the store is asked, and
touches as before). Unknown or refused tokens are never cached. The store's other operations
pass through; the ones that change a session also drop it here at once.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from mcp_gateway.sessions.base import Session, SessionStore, _session_id_or_none
from mcp_gateway.sessions.sqlite import SqliteSessionStore

if TYPE_CHECKING:
    from mcp_gateway.sessions.redis import RedisSessionStore

log = logging.getLogger(__name__)

PING_INTERVAL = 0.1  # seconds between the Redis listener's pings
FRESH_FOR = 0.5  # seconds a pong lets the cache answer (the bound on a change's lag, with one ping)
MAX_ENTRIES = 10_000

Forget = Callable[[str | None], None]  # one session id, or None for everything


class SqliteDataVersion:
    """Changed whenever another connection committed to the SQLite file."""

    def __init__(self, store: SqliteSessionStore, forget: Forget) -> None:
        self._path = store.path
        self._forget = forget
        self._conn: sqlite3.Connection | None = None
        self._version: int | None = None

    def current(self) -> bool:
        try:
            if self._conn is None:
                if not self._path.exists():  # never create the file here; the store does, with its mode
                    return False
                # timeout=0: a lock never makes the event loop wait; the caller asks the store instead.
                self._conn = sqlite3.connect(self._path, timeout=0, isolation_level=None, check_same_thread=False)
            version = self._conn.execute("PRAGMA data_version").fetchone()[0]
        except sqlite3.Error as exc:
            log.debug("session cache: data_version unreadable (%s), asking the store", exc)
            self._forget(None)
            self._version = None
            return False
        if version != self._version:
            self._forget(None)
            self._version = version
        return True

    async def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class RedisChanges:
    """The change channel of a Redis store, proven current by ping and pong."""

    def __init__(self, store: RedisSessionStore, forget: Forget) -> None:
        self._store = store
        self._forget = forget
        self._proven_at = float("-inf")  # monotonic time of the last ping answered
        self._task: asyncio.Task[None] | None = None

    def current(self) -> bool:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._listen(), name="session-cache-listener")
        return time.monotonic() - self._proven_at <= FRESH_FOR

    async def _listen(self) -> None:
        pause = PING_INTERVAL
        while True:
            pubsub = self._store.subscriber()
            try:
                await pubsub.subscribe(self._store.changes_channel)
                # Whatever was published while not subscribed is lost: start from nothing, now
                # and whenever redis-py reconnects this subscription behind our back.
                pubsub.connection.register_connect_callback(self._reconnected)
                self._forget(None)
                pause = PING_INTERVAL
                await self._follow(pubsub)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # any failure: stop answering from memory until subscribed again
                self._proven_at = float("-inf")
                self._forget(None)
                log.warning("session cache: change channel lost (%s); reading every session from Redis", exc)
                await asyncio.sleep(pause)
                pause = min(pause * 2, 2.0)
            finally:
                await asyncio.shield(pubsub.aclose())

    def _reconnected(self, connection: Any) -> None:
        self._proven_at = float("-inf")
        self._forget(None)
        log.info("session cache: change channel reconnected; cached sessions dropped")

    async def _follow(self, pubsub: Any) -> None:
        pinged_at = 0.0
        while True:
            now = time.monotonic()
            if now - pinged_at >= PING_INTERVAL:
                pinged_at = now
                await pubsub.ping(repr(now))
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=PING_INTERVAL)
            if message is None:
                continue
            if message["type"] == "message":
                self._forget(str(message["data"]))
            elif message["type"] == "pong" and message["data"]:
                self._proven_at = max(self._proven_at, float(message["data"]))

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None


def _is_redis_store(store: SessionStore) -> bool:
    # Imported here, not at the top: only a gateway whose store is Redis loads the client library.
    from mcp_gateway.sessions.redis import RedisSessionStore
    return isinstance(store, RedisSessionStore)


class CachedSessionStore:
    """`store` with `get(token)` answered from memory while its change signal allows it."""

    def __init__(self, store: SessionStore, max_entries: int = MAX_ENTRIES) -> None:
        self.inner = store
        self._entries: dict[str, Session] = {}
        self._generation = 0
        self._max_entries = max_entries
        self._signal: SqliteDataVersion | RedisChanges
        if isinstance(store, SqliteSessionStore):
            self._signal = SqliteDataVersion(store, self._forget)
        elif _is_redis_store(store):
            self._signal = RedisChanges(store, self._forget)  # type: ignore[arg-type]
        else:
            raise TypeError(f"no change signal for {store!r}")

    def __repr__(self) -> str:
        return f"CachedSessionStore({self.inner!r})"

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def _forget(self, session_id: str | None) -> None:
        self._generation += 1
        if session_id is None:
            self._entries.clear()
        else:
            self._entries.pop(session_id, None)

    def _answerable(self, session: Session) -> bool:
        store = self.inner
        now = store._clock()
        seen_ago = now - session.last_seen_at
        return now < session.expires_at and seen_ago <= store.idle_timeout and seen_ago < store.touch_interval

    async def get(self, token: str) -> Session | None:
        session_id = _session_id_or_none(token)
        if session_id is None:
            return None
        if self._signal.current():
            session = self._entries.get(session_id)
            if session is not None and self._answerable(session):
                return session
        generation = self._generation
        session = await self.inner.get(token)
        # A change signalled while the store was read may postdate what was read: keep nothing then.
        if session is not None and generation == self._generation:
            if len(self._entries) >= self._max_entries:
                self._entries.pop(next(iter(self._entries)))
            self._entries[session_id] = session
        return session

    async def update(self, session_id: str, **changes: Any) -> None:
        self._forget(session_id)
        await self.inner.update(session_id, **changes)
        self._forget(session_id)

    async def delete(self, token: str) -> None:
        session_id = _session_id_or_none(token)
        if session_id is not None:
            self._forget(session_id)
        await self.inner.delete(token)
        if session_id is not None:
            self._forget(session_id)

    async def delete_by_id(self, session_id: str) -> None:
        self._forget(session_id)
        await self.inner.delete_by_id(session_id)
        self._forget(session_id)

    async def close(self) -> None:
        await self._signal.close()
        await self.inner.close()

    async def __aenter__(self) -> CachedSessionStore:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


def with_session_cache(store: SessionStore) -> SessionStore:
    """`store` with its session reads cached (typed as the store: every other method passes through)."""
    return CachedSessionStore(store)  # type: ignore[return-value]
