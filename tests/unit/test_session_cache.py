"""The proxy's session cache, on both backends: a read answered from memory, and every change
made by another instance (a login app, another worker) seen within one second — at once on
SQLite, within the change channel's proven freshness on Redis."""

import asyncio
import time
from typing import Any

import pytest

from mcp_gateway.sessions import StoreUnavailable
from mcp_gateway.sessions.cache import FRESH_FOR, CachedSessionStore
from tests.unit.test_session_store import Backend, backend, new_session  # noqa: F401 (fixture)

pytestmark = pytest.mark.timeout(60)

LAG = 1.0  # the contract (issue 15): a change on one instance holds on every other within a second


def cached(backend: Backend, **options: Any) -> tuple[CachedSessionStore, list[str]]:
    """A proxy's cached store on `backend`, and the list of session ids it read from the backend."""
    inner = backend.open(touch_interval=30.0, **options)
    reads: list[str] = []
    load = inner._load

    async def counting_load(session_id: str):
        reads.append(session_id)
        return await load(session_id)

    inner._load = counting_load  # type: ignore[method-assign]
    return CachedSessionStore(inner), reads


async def answered_from_memory(store: CachedSessionStore, reads: list[str], token: str) -> bool:
    """True once a get of `token` is answered without reading the backend (Redis: once subscribed)."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        before = len(reads)
        assert await store.get(token) is not None
        if len(reads) == before:
            return True
        await asyncio.sleep(0.05)
    return False


async def seen_within(seconds: float, check) -> float:
    """The seconds it took until `await check()` was true; fails beyond `seconds`."""
    started = time.monotonic()
    while not await check():
        assert time.monotonic() - started < seconds, f"not seen within {seconds} s"
        await asyncio.sleep(0.01)
    return time.monotonic() - started


async def test_repeated_reads_are_answered_from_memory(backend: Backend):
    proxy, reads = cached(backend)
    token, session = await new_session(backend.open())
    assert await answered_from_memory(proxy, reads, token)
    assert (await proxy.get(token)) == session


@pytest.mark.parametrize("change", ["delete", "delete_by_id", "groups"])
async def test_a_change_by_another_instance_is_seen_within_a_second(backend: Backend, change: str):
    login_app = backend.open()
    proxy, reads = cached(backend)
    token, session = await new_session(login_app)
    assert await answered_from_memory(proxy, reads, token)

    if change == "delete":
        await login_app.delete(token)
    elif change == "delete_by_id":
        await login_app.delete_by_id(session.id)
    else:
        await login_app.update(session.id, groups=["other"])

    async def changed() -> bool:
        now = await proxy.get(token)
        return now is None if change.startswith("delete") else now is not None and now.groups == ("other",)

    if backend.name == "sqlite":
        assert await changed()  # at once: data_version is read before every answer from memory
    await seen_within(LAG, changed)


async def test_a_change_made_through_the_cache_itself_holds_at_once(backend: Backend):
    proxy, reads = cached(backend)
    token, session = await new_session(proxy)
    assert await answered_from_memory(proxy, reads, token)
    await proxy.update(session.id, scopes=["extra"])
    assert (await proxy.get(token)).scopes == ("extra",)
    await proxy.delete(token)
    assert await proxy.get(token) is None


async def test_expiry_idleness_and_touches_are_not_skipped(backend: Backend):
    proxy, reads = cached(backend, idle_timeout=100.0)
    token, session = await new_session(proxy, lifetime=50.0)
    assert await answered_from_memory(proxy, reads, token)

    backend.advance(31)  # a touch is due: the store is asked, and writes last_seen_at
    before = len(reads)
    touched = await proxy.get(token)
    assert len(reads) == before + 1 and touched.last_seen_at == backend.clock.now

    backend.advance(20)  # past the absolute lifetime, though in memory
    assert await proxy.get(token) is None


async def test_unknown_tokens_are_never_cached(backend: Backend):
    proxy, reads = cached(backend)
    for _ in range(3):
        assert await proxy.get("A" * 43) is None
    assert len(reads) == 3


async def test_a_backend_that_stops_answering_is_not_papered_over(backend: Backend):
    proxy, reads = cached(backend, **backend.outage_options)
    token, _ = await new_session(proxy)
    assert await answered_from_memory(proxy, reads, token)
    backend.break_()
    if backend.name == "sqlite":
        return  # a held write lock does not stop WAL readers: the session is still readable
    await asyncio.sleep(FRESH_FOR + 0.2)  # no pong since: the cache may not answer
    with pytest.raises(StoreUnavailable):
        await proxy.get(token)



@pytest.mark.parametrize("backend", ["redis"], indirect=True)
async def test_what_redis_lost_while_the_channel_reconnected_is_not_served(backend: Backend):
    """redis-py reconnects a dropped subscription by itself; what was published (or wiped, as by
    a restart without persistence) meanwhile must not survive in the cache."""
    proxy, reads = cached(backend)
    token, _ = await new_session(proxy)
    assert await answered_from_memory(proxy, reads, token)
    raw = proxy.inner._redis
    await raw.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
    await raw.flushall()  # the sessions are gone, and no message said so
    await seen_within(LAG, lambda: _is_none(proxy.get(token)))


async def _is_none(pending) -> bool:
    return await pending is None
