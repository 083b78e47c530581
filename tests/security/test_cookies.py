"""The session cookie under attack: tampered, expired, idle, used after logout (on every MCP
method and transport), fixed before login, or taken from another kind of session."""

from __future__ import annotations

import asyncio
import sqlite3
import time

import httpx
import pytest

from mcp_gateway.identity import SESSION_COOKIE
from mcp_gateway.sessions import session_id_for
from tests.security.conftest import ACCOUNTS
from tests.security.hostile import cookie, gateway_store, sse_stream
from tests.support.login import login_local

pytestmark = pytest.mark.timeout(60)

INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
ACCEPT = {"accept": "application/json, text/event-stream"}
DANA_PASSWORD = ACCOUNTS["dana"][0]


def _status(gw, token: str) -> int:
    return httpx.post(gw.streamable_url("currenttime"), json=INIT, headers={**cookie(token), **ACCEPT},
                      timeout=10).status_code


TAMPERINGS = {
    "first char": lambda t: ("B" if t[0] != "B" else "C") + t[1:],
    "middle char": lambda t: t[:20] + ("x" if t[20] != "x" else "y") + t[21:],
    "truncated": lambda t: t[:-1],
    "extended": lambda t: t + "A",
    "upper-cased": lambda t: t.upper(),
    "standard base64": lambda t: t.replace("-", "+").replace("_", "/") if ("-" in t or "_" in t) else t[::-1],
    "padded": lambda t: t + "=",
    "percent-encoded": lambda t: "".join(f"%{ord(c):02X}" for c in t),
    "session id instead of token": lambda t: session_id_for(t),
    "whitespace inside": lambda t: t[:10] + " " + t[10:],
}


@pytest.mark.parametrize("name", list(TAMPERINGS))
def test_a_tampered_cookie_is_refused(auth_gateway, signed_in, name):
    token = signed_in["dana"]
    assert _status(auth_gateway, token) == 200
    assert _status(auth_gateway, TAMPERINGS[name](token)) == 401


async def _planted_session(gw, **create) -> str:
    store = gateway_store(gw)
    try:
        token, _ = await store.create(subject="eve", username="eve", provider="local", groups=["mcp-admin"], **create)
        return token
    finally:
        await store.close()


async def test_an_expired_cookie_is_refused(auth_gateway):
    token = await _planted_session(auth_gateway, lifetime=1.5)
    assert _status(auth_gateway, token) == 200
    await asyncio.sleep(2)
    assert _status(auth_gateway, token) == 401


async def test_an_idle_cookie_is_refused(auth_gateway):
    token = await _planted_session(auth_gateway)
    assert _status(auth_gateway, token) == 200
    with sqlite3.connect(auth_gateway.state_dir / "sessions.db") as db:  # two hours without activity
        db.execute("UPDATE sessions SET last_seen_at = ? WHERE id = ?", (time.time() - 7200, session_id_for(token)))
    assert _status(auth_gateway, token) == 401


async def test_an_access_token_is_not_a_cookie(auth_gateway):
    """A facade-issued access token (kind "access") presented as the browser cookie is refused."""
    token = await _planted_session(auth_gateway, kind="access", client_id="c1",
                                   resources=[auth_gateway.streamable_url("currenttime")])
    assert _status(auth_gateway, token) == 401


def test_after_logout_the_cookie_opens_nothing_on_any_method(auth_gateway):
    token = login_local(auth_gateway.url, "dana", DANA_PASSWORD)
    session_id = httpx.post(auth_gateway.streamable_url("currenttime"), json=INIT,
                            headers={**cookie(token), **ACCEPT}, timeout=10).headers["mcp-session-id"]
    with sse_stream(auth_gateway, token) as endpoint:
        out = httpx.post(f"{auth_gateway.url}/oauth/logout", headers={**cookie(token), "origin": auth_gateway.url},
                         timeout=10)
        assert out.status_code == 200
        stream_session = {**cookie(token), **ACCEPT, "mcp-session-id": session_id}
        url = auth_gateway.streamable_url("currenttime")
        refused = [
            httpx.post(f"{auth_gateway.url}{endpoint}", json=INIT, headers=cookie(token), timeout=10),
            httpx.get(auth_gateway.sse_url("currenttime"), headers=cookie(token), timeout=10),
            httpx.post(url, json={"jsonrpc": "2.0", "id": 2, "method": "ping"}, headers=stream_session, timeout=10),
            httpx.get(url, headers={**stream_session, "accept": "text/event-stream"}, timeout=10),
            httpx.delete(url, headers=stream_session, timeout=10),
            httpx.get(f"{auth_gateway.url}/api/servers", headers=cookie(token), timeout=10),
            httpx.get(f"{auth_gateway.url}/oauth/me", headers=cookie(token), timeout=10),
        ]
    assert [r.status_code for r in refused] == [401] * len(refused)


def _login(gw, username: str, password: str, planted: str) -> httpx.Response:
    return httpx.post(f"{gw.url}/oauth/login/local", data={"username": username, "password": password, "next": "/"},
                      headers={"origin": gw.url, "cookie": f"{SESSION_COOKIE}={planted}"}, timeout=15)


def test_a_cookie_planted_before_login_is_never_promoted(auth_gateway, signed_in):
    """Session fixation: whatever token the browser carried before logging in, logging in issues
    a fresh one, and the planted token keeps (or gets) no part of the new identity."""
    chosen = "A" * 43
    response = _login(auth_gateway, "dana", DANA_PASSWORD, chosen)
    assert response.status_code == 303
    fresh = response.cookies.get(SESSION_COOKIE)
    assert fresh and fresh != chosen
    assert _status(auth_gateway, chosen) == 401 and _status(auth_gateway, fresh) == 200

    attackers = login_local(auth_gateway.url, "bob", ACCOUNTS["bob"][0])  # a real session of the attacker
    response = _login(auth_gateway, "dana", DANA_PASSWORD, attackers)
    victims = response.cookies.get(SESSION_COOKIE)
    assert victims and victims != attackers
    me = httpx.get(f"{auth_gateway.url}/oauth/me", headers=cookie(attackers), timeout=10).json()
    assert me["user"] == "bob" and "mcp-server-currenttime" not in me["groups"]
