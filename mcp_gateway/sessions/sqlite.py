"""Session store in one SQLite file (WAL), safe for several processes on one host.

All SQLite work runs on a small thread pool owned by the store, one connection per
thread, so the event loop never blocks on disk or on another process's lock.
Read-modify-write operations run in `BEGIN IMMEDIATE` transactions; a lock held longer
than `busy_timeout` becomes `StoreUnavailable`. Expired rows are purged opportunistically
when sessions are created, at most once per `purge_interval`.

First open is safe when several processes (gateway workers, login apps) and threads open a
fresh file at once: switching to WAL needs a lock SQLite does not wait for with its busy
handler, so the switch and the schema creation are retried until `busy_timeout` has passed,
and threads of one process take turns through a lock per file.
"""

import asyncio
import logging
import os
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from mcp_gateway.secretbox import SecretBox
from mcp_gateway.sessions.base import SessionStore, StoreUnavailable, key_digest, positive_seconds

log = logging.getLogger(__name__)

T = TypeVar("T")

_SESSION_COLUMNS = (
    "id", "subject", "username", "email", "provider", "groups", "scopes", "created_at", "expires_at",
    "last_seen_at", "groups_refreshed_at", "refresh_token_sealed", "kind", "client_id", "resources",
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY, subject TEXT NOT NULL, username TEXT NOT NULL, email TEXT,
    provider TEXT NOT NULL, groups TEXT NOT NULL, scopes TEXT NOT NULL,
    created_at REAL NOT NULL, expires_at REAL NOT NULL, last_seen_at REAL NOT NULL,
    groups_refreshed_at REAL NOT NULL, refresh_token_sealed TEXT, kind TEXT NOT NULL,
    client_id TEXT, resources TEXT NOT NULL,
    forget_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS sessions_forget_at ON sessions (forget_at);
CREATE TABLE IF NOT EXISTS bindings (key TEXT PRIMARY KEY, owner TEXT NOT NULL, expires_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS hits (key TEXT PRIMARY KEY, count INTEGER NOT NULL, expires_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS once (key TEXT PRIMARY KEY, value TEXT NOT NULL, expires_at REAL NOT NULL);
"""
_EXPIRING_TABLES = ("bindings", "hits", "once")
_TABLES = ("sessions", *_EXPIRING_TABLES)
_CONTENTION_CODES = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})

_open_locks: dict[str, threading.Lock] = {}
_open_locks_guard = threading.Lock()


def _open_lock(path: Path) -> threading.Lock:
    """One lock per database file for the whole process: its threads set the file up one at a time."""
    with _open_locks_guard:
        return _open_locks.setdefault(str(path.resolve()), threading.Lock())


def _is_contention(exc: sqlite3.Error) -> bool:
    return getattr(exc, "sqlite_errorcode", None) in _CONTENTION_CODES


def _set_up_schema(conn: sqlite3.Connection) -> None:
    if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
        conn.execute("PRAGMA journal_mode = WAL")
    # Only a file still missing its tables takes the write lock: opening a store must work
    # while another process holds that lock (reads go on in WAL mode).
    present = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if present.issuperset(_TABLES):
        return
    with _immediate(conn):
        for statement in filter(str.strip, _SCHEMA.split(";")):
            conn.execute(statement)


@contextmanager
def _immediate(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """A write transaction that takes the lock up front, so read-then-write is atomic across processes."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


class SqliteSessionStore(SessionStore):
    def __init__(
        self,
        path: Path,
        *,
        lifetime: float,
        idle_timeout: float,
        secretbox: SecretBox | None,
        touch_interval: float = 30.0,
        clock: Callable[[], float] = time.time,
        busy_timeout: float = 5.0,
        purge_interval: float = 60.0,
        max_threads: int = 4,
    ) -> None:
        super().__init__(
            lifetime=lifetime, idle_timeout=idle_timeout, secretbox=secretbox, touch_interval=touch_interval,
            clock=clock,
        )
        self.path = Path(path)
        self._busy_timeout = busy_timeout
        self._purge_interval = purge_interval
        self._last_purge = 0.0
        self._executor = ThreadPoolExecutor(max_workers=max_threads, thread_name_prefix="session-store")
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()
        self._schema_ready = False
        self._closed = False

    def __repr__(self) -> str:
        return f"SqliteSessionStore({str(self.path)!r})"

    # -- plumbing --------------------------------------------------------------------------

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        if self._closed:
            raise StoreUnavailable("session store is closed")
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._in_thread, work)

    def _in_thread(self, work: Callable[[sqlite3.Connection], T]) -> T:
        try:
            return work(self._connection())
        except (sqlite3.Error, OSError) as exc:
            raise StoreUnavailable(f"sqlite session store {self.path}: {exc}") from exc

    def _connection(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
            with self._connections_lock:
                self._connections.append(conn)
        return conn

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        is_new = not self.path.exists()
        conn = sqlite3.connect(self.path, timeout=self._busy_timeout, isolation_level=None, check_same_thread=False)
        try:
            if is_new:
                # The owner's only (SQLite gives the -wal/-shm files the same mode). chmod, not
                # open+close: closing any descriptor of the file drops this process's SQLite locks.
                os.chmod(self.path, 0o600)
            conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout * 1000)}")
            if not self._schema_ready:
                with _open_lock(self.path):
                    self._retry_while_contended(lambda: _set_up_schema(conn))
                self._schema_ready = True
            conn.execute("PRAGMA synchronous = NORMAL")
        except BaseException:
            conn.close()
            raise
        return conn

    def _retry_while_contended(self, setup: Callable[[], None]) -> None:
        """Run `setup` again while another process holds the lock it needs, for up to busy_timeout."""
        deadline = time.monotonic() + self._busy_timeout
        pause = 0.005
        while True:
            try:
                return setup()
            except sqlite3.OperationalError as exc:
                if not _is_contention(exc) or time.monotonic() >= deadline:
                    raise
            time.sleep(pause * (1 + random.random()))
            pause = min(pause * 2, 0.1)

    def _purge_if_due(self, conn: sqlite3.Connection, now: float) -> None:
        if now - self._last_purge < self._purge_interval:
            return
        self._last_purge = now
        with _immediate(conn):
            purged = conn.execute("DELETE FROM sessions WHERE forget_at <= ?", (now,)).rowcount
            for table in _EXPIRING_TABLES:
                conn.execute(f"DELETE FROM {table} WHERE expires_at <= ?", (now,))
        if purged:
            log.debug("purged %d ended sessions", purged)

    # -- sessions --------------------------------------------------------------------------

    async def _insert(self, record: dict[str, Any], ttl: float) -> None:
        def insert(conn: sqlite3.Connection) -> None:
            now = self._clock()
            columns = ", ".join((*record, "forget_at"))
            marks = ", ".join("?" * (len(record) + 1))
            conn.execute(f"INSERT INTO sessions ({columns}) VALUES ({marks})", (*record.values(), now + ttl))
            self._purge_if_due(conn, now)

        await self._run(insert)

    async def _load(self, session_id: str) -> Mapping[str, Any] | None:
        def load(conn: sqlite3.Connection) -> Mapping[str, Any] | None:
            sql = f"SELECT {', '.join(_SESSION_COLUMNS)} FROM sessions WHERE id = ?"
            row = conn.execute(sql, (session_id,)).fetchone()
            return None if row is None else dict(zip(_SESSION_COLUMNS, row, strict=True))

        return await self._run(load)

    async def _patch(self, session_id: str, changes: dict[str, Any], ttl: float | None = None) -> None:
        assignments = dict(changes)
        if ttl is not None:
            assignments["forget_at"] = self._clock() + ttl
        unknown = set(assignments) - {*_SESSION_COLUMNS, "forget_at"}
        if unknown:
            raise ValueError(f"unknown session fields: {sorted(unknown)}")
        sql = f"UPDATE sessions SET {', '.join(f'{name} = ?' for name in assignments)} WHERE id = ?"
        await self._run(lambda conn: conn.execute(sql, (*assignments.values(), session_id)))

    async def _remove(self, session_id: str) -> None:
        await self._run(lambda conn: conn.execute("DELETE FROM sessions WHERE id = ?", (session_id,)))

    # -- bindings, counters, single-use values ---------------------------------------------

    async def bind(self, key: str, owner: str, ttl: float) -> str:
        digest, ttl = key_digest(key), positive_seconds(ttl)

        def bind(conn: sqlite3.Connection) -> str:
            now = self._clock()
            with _immediate(conn):
                row = conn.execute(
                    "SELECT owner FROM bindings WHERE key = ? AND expires_at > ?", (digest, now)
                ).fetchone()
                if row is not None and row[0] != owner:
                    return row[0]
                conn.execute("INSERT OR REPLACE INTO bindings VALUES (?, ?, ?)", (digest, owner, now + ttl))
                return owner

        return await self._run(bind)

    async def unbind(self, key: str) -> None:
        digest = key_digest(key)
        await self._run(lambda conn: conn.execute("DELETE FROM bindings WHERE key = ?", (digest,)))

    async def hit(self, key: str, window: float) -> int:
        digest, window = key_digest(key), positive_seconds(window)

        def hit(conn: sqlite3.Connection) -> int:
            now = self._clock()
            with _immediate(conn):
                row = conn.execute("SELECT count FROM hits WHERE key = ? AND expires_at > ?", (digest, now)).fetchone()
                if row is None:
                    conn.execute("INSERT OR REPLACE INTO hits VALUES (?, 1, ?)", (digest, now + window))
                    return 1
                conn.execute("UPDATE hits SET count = count + 1 WHERE key = ?", (digest,))
                return row[0] + 1

        return await self._run(hit)

    async def admit(self, limits: Mapping[str, int], window: float) -> bool:
        window = positive_seconds(window)
        digests = {key_digest(key): limit for key, limit in limits.items()}

        def admit(conn: sqlite3.Connection) -> bool:
            now = self._clock()
            with _immediate(conn):
                for digest, limit in digests.items():
                    row = conn.execute("SELECT count FROM hits WHERE key = ? AND expires_at > ?",
                                       (digest, now)).fetchone()
                    if row is not None and row[0] >= limit:
                        return False
                for digest in digests:
                    conn.execute(
                        "INSERT INTO hits VALUES (?, 1, ?) ON CONFLICT (key) DO UPDATE SET "
                        "count = CASE WHEN expires_at > ? THEN count + 1 ELSE 1 END, "
                        "expires_at = CASE WHEN expires_at > ? THEN expires_at ELSE excluded.expires_at END",
                        (digest, now + window, now, now))
                return True

        return await self._run(admit)

    async def release(self, key: str) -> None:
        digest = key_digest(key)
        await self._run(lambda conn: conn.execute(
            "UPDATE hits SET count = count - 1 WHERE key = ? AND count > 0", (digest,)))

    async def hits(self, key: str) -> int:
        digest = key_digest(key)

        def read(conn: sqlite3.Connection) -> int:
            row = conn.execute("SELECT count FROM hits WHERE key = ? AND expires_at > ?",
                               (digest, self._clock())).fetchone()
            return row[0] if row else 0

        return await self._run(read)

    async def reset_hits(self, key: str) -> None:
        digest = key_digest(key)
        await self._run(lambda conn: conn.execute("DELETE FROM hits WHERE key = ?", (digest,)))

    async def put_once(self, key: str, value: str, ttl: float) -> None:
        digest, ttl = key_digest(key), positive_seconds(ttl)
        sql = "INSERT OR REPLACE INTO once VALUES (?, ?, ?)"
        await self._run(lambda conn: conn.execute(sql, (digest, value, self._clock() + ttl)))

    async def take_once(self, key: str) -> str | None:
        digest = key_digest(key)

        def take(conn: sqlite3.Connection) -> str | None:
            # DELETE ... RETURNING is one statement: of concurrent takers only one gets the row.
            rows = conn.execute("DELETE FROM once WHERE key = ? RETURNING value, expires_at", (digest,)).fetchall()
            return rows[0][0] if rows and rows[0][1] > self._clock() else None

        return await self._run(take)

    async def get_value(self, key: str) -> str | None:
        digest = key_digest(key)

        def read(conn: sqlite3.Connection) -> str | None:
            row = conn.execute("SELECT value FROM once WHERE key = ? AND expires_at > ?",
                               (digest, self._clock())).fetchone()
            return row[0] if row else None

        return await self._run(read)

    async def replace_value(self, key: str, expected: str, value: str, ttl: float) -> bool:
        digest, ttl, now = key_digest(key), positive_seconds(ttl), self._clock()
        sql = "UPDATE once SET value = ?, expires_at = ? WHERE key = ? AND value = ? AND expires_at > ?"
        return await self._run(lambda conn: conn.execute(sql, (value, now + ttl, digest, expected, now)).rowcount == 1)

    # -- lifecycle -------------------------------------------------------------------------

    async def ping(self) -> None:
        await self._run(lambda conn: conn.execute("SELECT 1 FROM sessions LIMIT 1").fetchall())

    async def close(self) -> None:
        self._closed = True
        await asyncio.to_thread(self._executor.shutdown, wait=True)
        with self._connections_lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()
