"""The session store locked (SQLite: another process holds the write lock) or unavailable
(Redis paused, then stopped): whatever needs the store fails closed with a clear 503 — never a
401 that would log people out, never a hang — and the gateway recovers by itself when the store
is back."""

from __future__ import annotations

import concurrent.futures
import os
import signal
import sqlite3
import subprocess
import time

import httpx
import pytest

from mcp_gateway.sessions.cache import FRESH_FOR
from tests.faults.conftest import ACCEPT, ADMIN_PASSWORD, INIT, local_gateway, status_of
from tests.support.gateway import server_entry
from tests.support.login import cookie_header, login_local
from tests.support.redis_server import RedisServer
from tests.support.waiting import wait_until

pytestmark = pytest.mark.timeout(120)

SQLITE_BUSY_TIMEOUT = 5.0  # mcp_gateway.sessions.sqlite: a lock held longer is StoreUnavailable


def _login_status(gw) -> int:
    return status_of("POST", f"{gw.url}/oauth/login/local", headers={"origin": gw.url},
                     data={"username": "admin", "password": ADMIN_PASSWORD, "next": "/oauth/me"})


def _new_mcp_session_status(gw, headers) -> tuple[int, str]:
    response = httpx.post(gw.streamable_url("currenttime"), json=INIT, headers={**headers, **ACCEPT}, timeout=20)
    if response.status_code == 503:  # the refusal's own body, not the upstream's answer under its length
        assert response.json()["error"] == "unavailable", response.text[:300]
    return response.status_code, response.headers.get("content-type", "")


def test_a_locked_sqlite_store_fails_closed_and_recovers(tmp_path, upstream_sse_answers):
    with local_gateway(tmp_path, [server_entry("currenttime", upstream_sse_answers.url)]) as gw:
        headers = cookie_header(login_local(gw.url, "admin", ADMIN_PASSWORD))
        lock = sqlite3.connect(gw.state_dir / "sessions.db", isolation_level=None)
        try:
            lock.execute("BEGIN EXCLUSIVE")
            started = time.monotonic()
            with concurrent.futures.ThreadPoolExecutor(3) as pool:
                login = pool.submit(_login_status, gw)
                binding = pool.submit(_new_mcp_session_status, gw, headers)
                reading = pool.submit(status_of, "GET", f"{gw.url}/api/servers", headers=headers)
                assert reading.result() == 200, "reading a session needs no write lock"
                assert login.result() == 503, "a login that cannot be stored must say so"
                assert binding.result() == (503, "application/json"), "an MCP session that cannot be bound"
            assert time.monotonic() - started < SQLITE_BUSY_TIMEOUT + 10
        finally:
            lock.execute("ROLLBACK")
            lock.close()
        assert _new_mcp_session_status(gw, headers)[0] == 200
        assert _login_status(gw) == 303
        assert "session store unavailable" in gw.log.lower() or "sessions.db" in gw.log


def _pause(server: RedisServer) -> None:
    assert server.process is not None
    os.kill(server.process.pid, signal.SIGSTOP)


def _resume(server: RedisServer) -> None:
    assert server.process is not None
    os.kill(server.process.pid, signal.SIGCONT)


def _restart_on_same_port(server: RedisServer) -> subprocess.Popen:
    port = server.port
    server.stop()
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(server.directory)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server.process = process  # stopped by the server's own stop()
    wait_until(lambda: _pong(port), 10, "redis-server is back")
    return process


def _pong(port: int) -> bool:
    try:
        return subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True, timeout=2).stdout.strip() \
            == b"PONG"
    except (OSError, subprocess.TimeoutExpired):
        return False


def test_an_unavailable_redis_store_fails_closed_and_recovers(tmp_path, upstream_sse_answers):
    with RedisServer(tmp_path / "redis") as redis:
        with local_gateway(tmp_path, [server_entry("currenttime", upstream_sse_answers.url)],
                           session={"store": redis.url}) as gw:
            headers = cookie_header(login_local(gw.url, "admin", ADMIN_PASSWORD))
            servers = f"{gw.url}/api/servers"
            assert status_of("GET", servers, headers=headers) == 200

            _pause(redis)  # up but not answering: every store call times out
            try:
                started = time.monotonic()
                refused = httpx.get(servers, headers=headers, timeout=30)
                assert refused.status_code == 503 and refused.json()["error"] == "unavailable"
                assert time.monotonic() - started < 15
                assert _login_status(gw) == 503
            finally:
                _resume(redis)
            assert status_of("GET", servers, headers=headers) == 200, "the same session works again"

            _restart_on_same_port(redis)  # down, then back empty (no persistence)
            # The proxy's session cache may answer for FRESH_FOR after its last proof from the old
            # Redis (mcp_gateway/sessions/cache.py); a restart quicker than that is seen after it.
            wait_until(lambda: status_of("GET", servers, headers=headers) in (401, 503), FRESH_FOR + 5,
                       "the session of the emptied Redis is refused")
            assert status_of("GET", servers, headers=headers) in (401, 503)
            fresh = cookie_header(login_local(gw.url, "admin", ADMIN_PASSWORD))
            assert status_of("GET", servers, headers=fresh) == 200
