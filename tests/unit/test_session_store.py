"""One test suite for every session store backend (SQLite file, real redis-server).

Like oauth2-proxy's shared session-store tests: each behaviour is checked against each
backend, and "another gateway instance" is a second store object on the same backend.
"""

import asyncio
import base64
import contextlib
import multiprocessing
import os
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis

from mcp_gateway.secretbox import SecretBox
from mcp_gateway.sessions import SessionStore, SqliteSessionStore, StoreUnavailable, open_store
from mcp_gateway.sessions.redis import RedisSessionStore
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.timeout(60)

SECRET = "a test SECRET_KEY of more than 32 bytes, not used elsewhere"


class FakeClock:
    """The wall clock a store measures expiry with, moved by the test instead of waited for."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@dataclass
class Backend:
    """One backend under test: open as many store instances on it as a test needs."""

    name: str
    opener: Callable[..., SessionStore]
    dump: Callable[[], bytes]  # every byte the backend holds, to look for plaintext
    break_: Callable[[], None]  # make the backend stop answering
    session_count: Callable[[], int]
    age: Callable[[float], None] = lambda seconds: None  # time passing inside the backend itself
    clock: FakeClock = field(default_factory=FakeClock)
    outage_options: dict[str, Any] = field(default_factory=dict)  # so the outage test fails fast
    cleanups: list[Callable[[], Any]] = field(default_factory=list)
    stores: list[SessionStore] = field(default_factory=list)

    def open(self, **overrides: Any) -> SessionStore:
        options = {"lifetime": 60.0, "idle_timeout": 60.0, "secretbox": SecretBox(SECRET), "touch_interval": 0.0,
                   "clock": self.clock}
        store = self.opener(**(options | overrides))
        self.stores.append(store)
        return store

    def advance(self, seconds: float) -> None:
        """Let `seconds` pass for every store of this backend and for the backend's own expiry."""
        self.clock.now += seconds
        self.age(seconds)


def _sqlite_backend(tmp_path: Path) -> Backend:
    path = tmp_path / "sessions.db"
    saboteur: list[sqlite3.Connection] = []

    def dump() -> bytes:
        return b"".join(p.read_bytes() for p in sorted(tmp_path.glob("sessions.db*")))

    def hold_write_lock() -> None:  # another process keeping the lock beyond busy_timeout
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        saboteur.append(conn)

    def release() -> None:
        for conn in saboteur:
            conn.close()

    def session_count() -> int:
        with contextlib.closing(sqlite3.connect(path)) as conn:
            return conn.execute("SELECT count(*) FROM sessions").fetchone()[0]

    backend = Backend(
        "sqlite",
        # The production busy timeout (5 s): with a dozen contending writers on a loaded machine
        # a short one makes SQLite give up; only the outage test shortens it.
        lambda **options: open_store("sqlite:///sessions.db", base_dir=tmp_path, **options),
        dump,
        hold_write_lock,
        session_count,
        outage_options={"busy_timeout": 0.2},
    )
    backend.cleanups.append(release)
    return backend


def _redis_backend(url: str, stop: Callable[[], None]) -> Backend:
    def dump() -> bytes:
        client = redis.Redis.from_url(url)
        try:
            parts = []
            for key in client.scan_iter():
                parts.append(key)
                if client.type(key) == b"hash":
                    parts.extend(item for pair in client.hgetall(key).items() for item in pair)
                else:
                    parts.append(client.get(key) or b"")
            return b"\n".join(parts)
        finally:
            client.close()

    def session_count() -> int:
        client = redis.Redis.from_url(url)
        try:
            return len(list(client.scan_iter("mcpgw:session:*")))
        finally:
            client.close()

    def age(seconds: float) -> None:  # Redis expires keys by its own clock: shorten every TTL instead
        client = redis.Redis.from_url(url)
        try:
            for key in client.scan_iter():
                left = client.pttl(key)
                if left > 0:
                    client.pexpire(key, left - int(seconds * 1000)) if left > seconds * 1000 else client.delete(key)
        finally:
            client.close()

    return Backend("redis", lambda **options: open_store(url, base_dir=Path("."), **options), dump, stop,
                   session_count, age)


@pytest.fixture(params=["sqlite", "redis"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path):
    with contextlib.ExitStack() as stack:
        if request.param == "sqlite":
            chosen = _sqlite_backend(tmp_path)
        else:
            server = stack.enter_context(RedisServer(tmp_path / "redis"))
            chosen = _redis_backend(server.url, server.stop)
        try:
            yield chosen
        finally:
            for cleanup in chosen.cleanups:
                cleanup()
            for store in chosen.stores:
                await store.close()


async def new_session(store: SessionStore, **fields: Any):
    values = {"subject": "sub-1", "username": "ada", "provider": "local", "groups": ("mcp-user",)} | fields
    return await store.create(**values)


# -- creating and reading ---------------------------------------------------------------------


async def test_create_then_get_returns_the_session(backend: Backend):
    store, other = backend.open(), backend.open()
    token, created = await new_session(
        store, email="ada@example.com", groups=("mcp-user", "mcp-server-time"), scopes=("mcp:registry:read",),
        refresh_token="refresh-1",
    )

    found = await other.get(token)

    assert found is not None
    assert (found.id, found.subject, found.username, found.email, found.provider) == (
        created.id, "sub-1", "ada", "ada@example.com", "local")
    assert found.groups == ("mcp-user", "mcp-server-time")
    assert found.scopes == ("mcp:registry:read",)
    assert found.refresh_token == "refresh-1"
    assert found.kind == "browser" and found.client_id is None and found.resources == ()
    assert found.created_at == pytest.approx(created.created_at)
    assert found.expires_at == pytest.approx(created.created_at + 60.0)
    assert await other.get_by_id(created.id) == found


async def test_tokens_carry_256_bits_and_differ(backend: Backend):
    store = backend.open()
    tokens = [(await new_session(store))[0] for _ in range(20)]

    assert len(set(tokens)) == 20
    for token in tokens:
        assert len(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))) >= 32


async def test_access_tokens_keep_client_audience_and_own_lifetime(backend: Backend):
    store = backend.open()
    token, created = await new_session(
        store, provider="oauth-client", kind="access", client_id="client-9",
        resources=("http://gw/api/streamable/time",), lifetime=30,
    )

    found = await store.get(token)
    assert found is not None
    assert (found.kind, found.client_id, found.resources) == ("access", "client-9", ("http://gw/api/streamable/time",))
    assert created.expires_at - created.created_at == pytest.approx(30)
    backend.advance(29)
    assert await store.get(token) is not None
    backend.advance(2)
    assert await store.get(token) is None


async def test_a_single_string_is_not_taken_for_a_list_of_groups(backend: Backend):
    store = backend.open()
    with pytest.raises(TypeError):
        await new_session(store, groups="mcp-admin")
    _, session = await new_session(store)
    with pytest.raises(TypeError):
        await store.update(session.id, scopes="mcp:registry:admin")


# -- nothing usable at rest -------------------------------------------------------------------


async def test_backend_holds_no_token_and_no_plaintext_refresh_token(backend: Backend):
    store = backend.open()
    token, session = await new_session(store, refresh_token="idp-refresh-token-PLAINTEXT-4711")
    await store.update(session.id, refresh_token="idp-refresh-token-ROTATED-4712")

    stored = backend.dump()

    assert session.id.encode() in stored and b"ada" in stored  # the dump does see the record
    assert token.encode() not in stored
    assert b"PLAINTEXT-4711" not in stored and b"ROTATED-4712" not in stored
    assert (await store.get(token)).refresh_token == "idp-refresh-token-ROTATED-4712"


async def test_refresh_token_does_not_open_with_another_key(backend: Backend):
    token, _ = await new_session(backend.open(), refresh_token="idp-refresh")

    assert await backend.open(secretbox=SecretBox("another SECRET_KEY")).get(token) is None  # fails closed
    assert (await backend.open().get(token)).refresh_token == "idp-refresh"


async def test_without_secretbox_refresh_tokens_are_not_kept(backend: Backend):
    store = backend.open(secretbox=None)
    token, created = await new_session(store, refresh_token="idp-refresh-NOT-KEPT")

    assert created.refresh_token is None
    assert (await store.get(token)).refresh_token is None
    assert b"NOT-KEPT" not in backend.dump()


async def test_keys_of_single_use_values_are_not_stored_in_plaintext(backend: Backend):
    store = backend.open()
    await store.put_once("authorization-code-SECRET-123", "grant", 10)
    await store.bind("mcp-session-SECRET-456", "owner", 10)

    stored = backend.dump()

    assert b"grant" in stored
    assert b"SECRET-123" not in stored and b"SECRET-456" not in stored


# -- expiry -----------------------------------------------------------------------------------


async def test_absolute_lifetime_ends_a_session_in_use(backend: Backend):
    store = backend.open(lifetime=400, idle_timeout=60)
    token, _ = await new_session(store)

    for _ in range(7):  # 399 s in all, never idle
        assert await store.get(token) is not None
        backend.advance(57)
    assert await store.get(token) is not None
    backend.advance(1)

    assert await store.get(token) is None


async def test_idle_sessions_end_and_use_keeps_them_alive(backend: Backend):
    store = backend.open(lifetime=600, idle_timeout=40)
    token, session = await new_session(store)

    for _ in range(3):  # 75 s in all, longer than the idle timeout, but never idle that long
        backend.advance(25)
        assert await store.get(token) is not None
    backend.advance(40.5)

    assert await store.get(token) is None
    assert await backend.open(idle_timeout=60).get_by_id(session.id) is None  # deleted, not only hidden


async def test_last_seen_is_written_at_most_once_per_touch_interval(backend: Backend):
    lazy, eager, observer = backend.open(touch_interval=60), backend.open(touch_interval=0), backend.open()
    token, created = await new_session(lazy)
    backend.advance(5)

    assert (await lazy.get(token)).last_seen_at == created.last_seen_at
    assert (await observer.get_by_id(created.id)).last_seen_at == created.last_seen_at

    touched = await eager.get(token)
    assert touched.last_seen_at > created.last_seen_at
    assert (await observer.get_by_id(created.id)).last_seen_at == pytest.approx(touched.last_seen_at)


# -- revocation and updates -------------------------------------------------------------------


async def test_delete_is_seen_at_once_by_another_instance(backend: Backend):
    login_app, proxy = backend.open(), backend.open()
    token, _ = await new_session(login_app)
    other_token, other = await new_session(login_app)
    assert await proxy.get(token) is not None

    await login_app.delete(token)
    await login_app.delete_by_id(other.id)

    assert await proxy.get(token) is None
    assert await proxy.get(other_token) is None


async def test_update_is_seen_by_every_instance(backend: Backend):
    login_app, proxy = backend.open(), backend.open()
    token, session = await new_session(login_app, refresh_token="rt-1")

    await login_app.update(session.id, groups=("mcp-admin",), scopes=("mcp:server:time:execute",),
                           refresh_token="rt-2", groups_refreshed_at=session.created_at + 100)

    found = await proxy.get(token)
    assert found.groups == ("mcp-admin",)
    assert found.scopes == ("mcp:server:time:execute",)
    assert found.refresh_token == "rt-2"
    assert found.groups_refreshed_at == pytest.approx(session.created_at + 100)

    await login_app.update(session.id, groups=())  # refresh token unchanged unless given
    assert (await proxy.get(token)).refresh_token == "rt-2"
    await login_app.update(session.id, refresh_token=None)
    assert (await proxy.get(token)).refresh_token is None
    assert (await proxy.get(token)).groups == ()


async def test_update_does_not_bring_back_a_deleted_session(backend: Backend):
    store = backend.open()
    token, session = await new_session(store)
    await store.delete(token)

    await store.update(session.id, groups=("mcp-admin",), refresh_token="rt")
    await store.update("not a session id", groups=("mcp-admin",))

    assert await store.get_by_id(session.id) is None
    assert backend.session_count() == 0


GARBAGE_TOKENS = [
    "", " ", "a", "x" * 100_000, "é" * 43, "\x00" * 43, "\ud800" * 43, "../../../etc/passwd",
    "' OR '1'='1' --", "%s%s%s%s%s%s%s%s%s%s%s%s%s%s%s%s", "*", "mcpgw:session:*", "\r\nSET x y\r\n" * 4,
    None, b"bytes-are-not-tokens-0123456789", 12345, ["list"],
]


@pytest.mark.parametrize("garbage", GARBAGE_TOKENS, ids=range(len(GARBAGE_TOKENS)))
async def test_garbage_tokens_find_nothing_and_never_raise(backend: Backend, garbage: Any):
    store = backend.open()
    token, session = await new_session(store)

    assert await store.get(garbage) is None
    assert await store.get_by_id(garbage) is None
    await store.delete(garbage)
    await store.delete_by_id(garbage)
    await store.update(garbage, groups=("mcp-admin",))

    assert (await store.get(token)).id == session.id


async def test_near_miss_tokens_find_nothing(backend: Backend):
    store = backend.open()
    token, session = await new_session(store)

    for near in (token[:-1], token + "A", token.upper(), "Bearer " + token, session.id):
        assert await store.get(near) is None
    assert await store.get(token) is not None


# -- MCP session binding ----------------------------------------------------------------------


async def test_first_owner_of_an_mcp_session_wins(backend: Backend):
    proxy_a, proxy_b = backend.open(), backend.open()

    assert await proxy_a.bind("sse-session-1", "alice", 10) == "alice"
    assert await proxy_b.bind("sse-session-1", "mallory", 10) == "alice"
    assert await proxy_b.bind("sse-session-1", "alice", 10) == "alice"
    assert await proxy_a.bind("sse-session-2", "mallory", 10) == "mallory"

    await proxy_a.unbind("sse-session-1")
    assert await proxy_b.bind("sse-session-1", "bob", 10) == "bob"


async def test_binding_expires_unless_its_owner_renews_it(backend: Backend):
    store = backend.open()
    await store.bind("lapsing", "alice", 20)
    await store.bind("renewed", "alice", 30)
    backend.advance(20)
    assert await store.bind("renewed", "alice", 30) == "alice"
    backend.advance(20)  # past the first ttl, within the renewed one

    assert await store.bind("lapsing", "bob", 10) == "bob"
    assert await store.bind("renewed", "bob", 10) == "alice"


async def test_concurrent_binds_agree_on_one_owner(backend: Backend):
    stores = [backend.open(), backend.open()]
    owners = [f"owner-{i}" for i in range(12)]

    results = await asyncio.gather(*(stores[i % 2].bind("contested", owner, 10) for i, owner in enumerate(owners)))

    assert len(set(results)) == 1 and results[0] in owners


# -- login throttling -------------------------------------------------------------------------


async def test_hits_count_across_instances_within_a_window(backend: Backend):
    stores = [backend.open(), backend.open()]

    assert await stores[0].hits("login:ada") == 0
    counts = [await stores[i % 2].hit("login:ada", 40) for i in range(4)]
    assert counts == [1, 2, 3, 4]
    assert await stores[1].hits("login:ada") == 4, "reading the count must not count an event"
    assert await stores[0].hits("login:ada") == 4
    assert await stores[0].hit("login:bob", 40) == 1

    backend.advance(50)
    assert await stores[0].hits("login:ada") == 0
    assert await stores[1].hit("login:ada", 40) == 1

    await stores[0].reset_hits("login:ada")
    assert await stores[1].hit("login:ada", 40) == 1


async def test_concurrent_hits_are_all_counted(backend: Backend):
    stores = [backend.open(), backend.open()]

    counts = await asyncio.gather(*(stores[i % 2].hit("login:eve", 10) for i in range(20)))

    assert sorted(counts) == list(range(1, 21))


async def test_concurrent_attempts_are_admitted_up_to_each_limit(backend: Backend):
    stores = [backend.open(), backend.open()]
    limits = {"login-fail:user:ada": 5, "login-fail:addr:10.0.0.1": 20}

    admitted = await asyncio.gather(*(stores[i % 2].admit(limits, 60) for i in range(40)))

    assert admitted.count(True) == 5, "check and count must be one step: no more than the limit gets through"
    assert await stores[0].hits("login-fail:user:ada") == 5
    assert await stores[1].hits("login-fail:addr:10.0.0.1") == 5, "a refused attempt counts nothing"


async def test_the_address_limit_holds_across_usernames(backend: Backend):
    stores = [backend.open(), backend.open()]

    admitted = await asyncio.gather(*(
        stores[i % 2].admit({f"login-fail:user:u{i}": 5, "login-fail:addr:10.0.0.2": 20}, 60) for i in range(40)))

    assert admitted.count(True) == 20
    assert await stores[0].hits("login-fail:addr:10.0.0.2") == 20


async def test_released_attempts_and_the_window_free_the_limit(backend: Backend):
    store = backend.open()
    limits = {"user": 2}
    assert [await store.admit(limits, 60) for _ in range(3)] == [True, True, False]

    await store.release("user")
    assert await store.admit(limits, 60) is True and await store.admit(limits, 60) is False
    await store.release("never-counted")
    assert await store.hits("never-counted") == 0, "releasing never goes below zero"

    backend.advance(61)
    assert await store.admit(limits, 60) is True
    assert await store.hits("user") == 1, "a new window starts from one"


# -- single-use values ------------------------------------------------------------------------


async def test_put_once_value_can_be_taken_once(backend: Backend):
    login_a, login_b = backend.open(), backend.open()
    await login_a.put_once("code-1", '{"client_id": "c"}', 10)

    assert await login_b.take_once("code-1") == '{"client_id": "c"}'
    assert await login_a.take_once("code-1") is None
    assert await login_a.take_once("never-put") is None

    await login_a.put_once("state-1", "first", 10)
    await login_a.put_once("state-1", "second", 10)
    assert await login_b.take_once("state-1") == "second"


async def test_single_use_values_expire(backend: Backend):
    store = backend.open()
    await store.put_once("code-2", "value", 20)
    backend.advance(19)
    assert await store.get_value("code-2") == "value"
    backend.advance(1.5)

    assert await store.take_once("code-2") is None


async def test_concurrent_take_once_has_exactly_one_winner(backend: Backend):
    stores = [backend.open(), backend.open()]
    for round_ in range(3):
        await stores[0].put_once(f"code-{round_}", "grant", 10)

        taken = await asyncio.gather(*(stores[i % 2].take_once(f"code-{round_}") for i in range(16)))

        assert taken.count("grant") == 1 and taken.count(None) == 15


async def test_put_values_are_read_many_times_by_every_instance_until_they_expire(backend: Backend):
    writer, reader = backend.open(), backend.open()
    await writer.put("oauth-client:c1", '{"client_name": "a"}', 30)

    assert await reader.get_value("oauth-client:c1") == '{"client_name": "a"}'
    assert await reader.get_value("oauth-client:c1") == '{"client_name": "a"}'
    assert await reader.get_value("never-put") is None
    await writer.put("oauth-client:c1", "replaced", 30)
    assert await reader.get_value("oauth-client:c1") == "replaced"
    backend.advance(40)
    assert await reader.get_value("oauth-client:c1") is None


async def test_take_once_removes_a_put_value(backend: Backend):
    store = backend.open()
    await store.put("family-1", "alive", 10)

    assert await store.take_once("family-1") == "alive"
    assert await store.get_value("family-1") is None


async def test_replace_value_only_replaces_what_is_still_there(backend: Backend):
    """Per-user upstream tokens refreshed while a disconnect takes them (mcp_gateway/upstream_tokens.py)."""
    first, second = backend.open(), backend.open()
    await first.put("vault-1", "old", 10)
    assert await second.replace_value("vault-1", "old", "fresh", 30) is True
    assert await first.get_value("vault-1") == "fresh"
    assert await first.replace_value("vault-1", "old", "stale", 30) is False  # changed meanwhile
    assert await second.get_value("vault-1") == "fresh"
    assert await second.take_once("vault-1") == "fresh"
    assert await first.replace_value("vault-1", "fresh", "revived", 30) is False  # taken meanwhile
    assert await second.get_value("vault-1") is None
    await first.put("vault-2", "short", 5)
    backend.advance(6)
    assert await first.replace_value("vault-2", "short", "revived", 30) is False  # expired
    assert await second.get_value("vault-2") is None


async def test_odd_keys_work_for_bind_hits_and_once(backend: Backend):
    store = backend.open()
    for key in ("é" * 1000, "\ud800", "", "k" * 100_000, "mcpgw:*"):
        assert await store.bind(key, "alice", 10) == "alice"
        assert await store.hit(key, 10) == 1
        await store.put_once(key, "v", 10)
        assert await store.get_value(key) == "v"
        assert await store.take_once(key) == "v"


async def test_ttls_must_be_positive(backend: Backend):
    store = backend.open()
    for call in (lambda: store.bind("k", "o", 0), lambda: store.hit("k", -1), lambda: store.put_once("k", "v", 0),
                 lambda: store.put("k", "v", -1)):
        with pytest.raises(ValueError):
            await call()


# -- failing closed ---------------------------------------------------------------------------


async def test_backend_that_stops_answering_raises_store_unavailable(backend: Backend):
    store = backend.open(**backend.outage_options)
    token, session = await new_session(store)

    backend.break_()

    operations = {
        "create": lambda: new_session(store),
        "get": lambda: store.get(token),
        "update": lambda: store.update(session.id, groups=()),
        "delete": lambda: store.delete(token),
        "bind": lambda: store.bind("k", "o", 10),
        "hit": lambda: store.hit("k", 10),
        "put_once": lambda: store.put_once("k", "v", 10),
        "take_once": lambda: store.take_once("k"),
    }
    for name, operation in operations.items():
        with pytest.raises(StoreUnavailable):
            await operation()
            pytest.fail(f"{name} did not raise StoreUnavailable")


# -- Redis specifics --------------------------------------------------------------------------


async def test_redis_keys_are_prefixed_and_all_expire(tmp_path: Path):
    with RedisServer(tmp_path / "redis") as server:
        store = open_store(server.url, base_dir=tmp_path, lifetime=3600, idle_timeout=600, secretbox=None)
        try:
            await new_session(store)
            await store.bind("b", "o", 30)
            await store.hit("h", 30)
            await store.put_once("o", "v", 30)
            client = redis.Redis.from_url(server.url)
            keys = list(client.scan_iter())
            ttls = {key: client.pttl(key) for key in keys}
            client.close()
        finally:
            await store.close()

    assert len(keys) == 4
    assert all(key.startswith(b"mcpgw:") for key in keys)
    assert all(0 < ttl <= 600_000 for ttl in ttls.values()), ttls


async def test_redis_reads_and_ping_fail_when_the_server_is_gone(tmp_path: Path):
    with RedisServer(tmp_path / "redis") as server:
        store = open_store(server.url, base_dir=tmp_path, lifetime=60, idle_timeout=60, secretbox=None)
        try:
            await store.ping()
            _, session = await new_session(store)
            server.stop()
            with pytest.raises(StoreUnavailable):
                await store.ping()
            with pytest.raises(StoreUnavailable):
                await store.get_by_id(session.id)
        finally:
            await store.close()


# -- SQLite specifics -------------------------------------------------------------------------


async def test_sqlite_corrupt_file_is_unavailable(tmp_path: Path):
    (tmp_path / "sessions.db").write_bytes(os.urandom(8192))
    store = open_store("sqlite:///sessions.db", base_dir=tmp_path, lifetime=60, idle_timeout=60, secretbox=None)
    try:
        with pytest.raises(StoreUnavailable):
            await store.ping()
        with pytest.raises(StoreUnavailable):
            await new_session(store)
    finally:
        await store.close()


async def test_sqlite_path_that_cannot_be_created_is_unavailable(tmp_path: Path):
    (tmp_path / "not-a-folder").write_text("a file")
    store = open_store("sqlite:///not-a-folder/sessions.db", base_dir=tmp_path, lifetime=60, idle_timeout=60,
                       secretbox=None)
    try:
        with pytest.raises(StoreUnavailable):
            await store.get("x" * 43)
    finally:
        await store.close()


async def test_sqlite_closed_store_is_unavailable(tmp_path: Path):
    store = open_store("sqlite:///sessions.db", base_dir=tmp_path, lifetime=60, idle_timeout=60, secretbox=None)
    await store.ping()
    await store.close()

    with pytest.raises(StoreUnavailable):
        await store.ping()


async def test_sqlite_purges_ended_rows_and_keeps_the_file_private(tmp_path: Path):
    clock = FakeClock()
    store = open_store("sqlite:///state/sessions.db", base_dir=tmp_path, lifetime=10, idle_timeout=60,
                       secretbox=None, purge_interval=0, clock=clock)
    try:
        for _ in range(5):
            await new_session(store)
        await store.hit("h", 10)
        await store.put_once("o", "v", 10)
        clock.now += 11
        await new_session(store)
    finally:
        await store.close()

    path = tmp_path / "state" / "sessions.db"
    with contextlib.closing(sqlite3.connect(path)) as conn:
        counts = [conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] for table in ("sessions", "hits", "once")]
        journal_mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
    assert counts == [1, 0, 0]
    assert journal_mode == "wal"
    assert path.stat().st_mode & 0o077 == 0


async def _in_processes(workers: int, timeout: float, job: Callable[[int, Any, Any], tuple]) -> list[Any]:
    """Run `job(worker, barrier, results)` -> (target, args) in `workers` spawned processes; one report each."""
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(workers), context.Queue()
    processes = [context.Process(target=target, args=args)
                 for target, args in (job(w, barrier, results) for w in range(workers))]
    for process in processes:
        process.start()
    try:
        deadline = time.monotonic() + timeout
        return [await asyncio.to_thread(results.get, True, max(1.0, deadline - time.monotonic()))
                for _ in range(workers)]
    finally:
        for process in processes:
            process.join(10)
            if process.is_alive():
                process.kill()
                process.join(5)


async def test_sqlite_a_store_opened_while_another_process_writes_can_read(tmp_path: Path):
    first = open_store("sqlite:///sessions.db", base_dir=tmp_path, lifetime=60, idle_timeout=60, secretbox=None)
    token, _ = await new_session(first)
    await first.close()
    writer = sqlite3.connect(tmp_path / "sessions.db", isolation_level=None)
    writer.execute("BEGIN EXCLUSIVE")  # in WAL mode readers go on
    later = open_store("sqlite:///sessions.db", base_dir=tmp_path, lifetime=60, idle_timeout=60, secretbox=None,
                       busy_timeout=0.2, touch_interval=60)
    try:
        assert (await later.get(token)) is not None, "setting up an existing file must not need the write lock"
    finally:
        writer.execute("ROLLBACK")
        writer.close()
        await later.close()


def _hammer(path: str, worker: int, workers: int, rounds: int, barrier: Any, results: Any) -> None:
    """One OS process using the store at the same time as others (run with multiprocessing spawn)."""

    async def work() -> dict[str, Any]:
        store = open_store(f"sqlite:///{path}", base_dir=Path("/"), lifetime=60, idle_timeout=60,
                           secretbox=SecretBox(SECRET), touch_interval=0)
        tokens, owners = [], {}
        try:
            for i in range(rounds):
                await store.put_once(f"w{worker}-code-{i}", "grant", 30)
            for i in range(rounds):
                token, session = await new_session(store, subject=f"w{worker}-{i}", refresh_token=f"rt-{i}")
                assert (await store.get(token)).refresh_token == f"rt-{i}"
                await store.update(session.id, groups=(f"g{i}",))
                tokens.append(token)
                owners[i] = await store.bind(f"mcp-session-{i}", f"worker-{worker}", 30)
            barrier.wait(30)  # then every process goes for the same keys at once
            codes = [f"w{w}-code-{i}" for i in range(rounds) for w in range(workers)]
            taken = await asyncio.gather(*(store.take_once(code) for code in codes))
            await asyncio.gather(*(store.hit("shared-counter", 60) for _ in range(rounds)))
        finally:
            await store.close()
        won = [code for code, value in zip(codes, taken, strict=True) if value is not None]
        return {"worker": worker, "tokens": tokens, "won": won, "owners": owners}

    try:
        results.put(asyncio.run(work()))
    except BaseException as exc:  # reported to the parent, which fails the test with it
        results.put({"worker": worker, "error": repr(exc)})


async def test_sqlite_several_processes_share_one_file(tmp_path: Path):
    workers, rounds = 3, 25
    path = tmp_path / "shared" / "sessions.db"  # not created yet: the processes race to create it
    reports = await _in_processes(workers, 40, lambda w, barrier, results: (
        _hammer, (str(path), w, workers, rounds, barrier, results)))

    assert [r.get("error") for r in reports] == [None] * workers, reports
    won = [code for report in reports for code in report["won"]]
    assert sorted(won) == sorted(f"w{w}-code-{i}" for w in range(workers) for i in range(rounds))  # each once
    for i in range(rounds):
        assert len({report["owners"][i] for report in reports}) == 1

    store = open_store(f"sqlite:///{path}", base_dir=tmp_path, lifetime=60, idle_timeout=60,
                       secretbox=SecretBox(SECRET))
    try:
        sessions = [await store.get(token) for report in reports for token in report["tokens"]]
        assert all(s is not None and s.groups == (f"g{s.subject.split('-')[1]}",) for s in sessions)
        assert len(sessions) == workers * rounds
        assert await store.hit("shared-counter", 60) == workers * rounds + 1
    finally:
        await store.close()


def _open_fresh_files(root: str, worker: int, rounds: int, barrier: Any, results: Any) -> None:
    """One OS process opening, in each round, a fresh database file at the same moment as the others."""

    async def first_use(path: Path) -> None:
        # Two store objects and several threads each: the first open races within the process too.
        stores = [open_store(f"sqlite:///{path}", base_dir=Path("/"), lifetime=60, idle_timeout=60, secretbox=None)
                  for _ in range(2)]
        try:
            await asyncio.gather(*(store.ping() for store in stores for _ in range(3)),
                                 *(new_session(store, subject=f"w{worker}") for store in stores))
        finally:
            for store in stores:
                await store.close()

    failures = []
    for round_ in range(rounds):
        barrier.wait(60)
        try:
            asyncio.run(first_use(Path(root) / f"round-{round_}" / "sessions.db"))
        except BaseException as exc:  # reported to the parent, which fails the test with it
            failures.append(f"round {round_}: {exc!r}")
    results.put({"worker": worker, "failures": failures})


async def test_sqlite_first_open_of_a_fresh_file_by_many_processes_at_once(tmp_path: Path):
    workers, rounds = 6, 20
    reports = await _in_processes(workers, 50, lambda w, barrier, results: (
        _open_fresh_files, (str(tmp_path), w, rounds, barrier, results)))

    assert [failure for report in reports for failure in report["failures"]] == []
    for round_ in range(rounds):
        with contextlib.closing(sqlite3.connect(tmp_path / f"round-{round_}" / "sessions.db")) as conn:
            assert conn.execute("SELECT count(*) FROM sessions").fetchone()[0] == workers * 2
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


# -- opening a store from its URL -------------------------------------------------------------


async def test_open_store_resolves_sqlite_paths_and_redis_urls(tmp_path: Path):
    options = {"lifetime": 60, "idle_timeout": 60, "secretbox": None}
    relative = open_store("sqlite:///var/sessions.db", base_dir=tmp_path, **options)
    absolute = open_store(f"sqlite:///{tmp_path}/abs.db", base_dir=Path("/elsewhere"), **options)
    remote = open_store("redis://127.0.0.1:1/0", base_dir=tmp_path, **options)
    try:
        assert isinstance(relative, SqliteSessionStore) and relative.path == tmp_path / "var" / "sessions.db"
        assert isinstance(absolute, SqliteSessionStore) and absolute.path == tmp_path / "abs.db"
        assert isinstance(remote, RedisSessionStore)
    finally:
        for store in (relative, absolute, remote):
            await store.close()


@pytest.mark.parametrize("url", [
    "", "sessions.db", "sqlite://", "sqlite:///", "sqlite://host/sessions.db", "sqlite:///:memory:",
    "sqlite:///folder/", "postgres://db/sessions", "memcached://127.0.0.1", "file:///tmp/x.db",
])
def test_open_store_refuses_what_it_cannot_open(url: str, tmp_path: Path):
    with pytest.raises(ValueError, match="session store"):
        open_store(url, base_dir=tmp_path, lifetime=60, idle_timeout=60, secretbox=None)


def test_session_repr_hides_the_refresh_token():
    from mcp_gateway.sessions import Session

    now = time.time()
    session = Session(id="ab" * 32, subject="s", username="u", email=None, provider="local", groups=(), scopes=(),
                      created_at=now, expires_at=now + 1, last_seen_at=now, groups_refreshed_at=now,
                      refresh_token="very-secret-refresh")

    assert "very-secret-refresh" not in repr(session)
