"""Logging in through the gateway's real login app, as a browser form post would."""

from __future__ import annotations

import re

import httpx

from mcp_gateway.identity import SESSION_COOKIE

from .waiting import wait_until


def login_local(base_url: str, username: str, password: str, next_path: str = "/oauth/me") -> str:
    response = httpx.post(f"{base_url}/oauth/login/local",
                          data={"username": username, "password": password, "next": next_path},
                          headers={"origin": base_url}, timeout=15)
    assert response.status_code == 303, f"login failed: {response.status_code} {response.text[:300]}"
    token = response.cookies.get(SESSION_COOKIE)
    assert token, "no session cookie set"
    return token


_kept_sessions: dict[tuple[str, str, str], str] = {}


def kept_session(base_url: str, username: str, password: str) -> str:
    """One session per gateway and user for the whole test process, for tests that only use it:
    a login is a deliberately slow scrypt check, hundreds of them a minute of the suite. A test
    that logs out, revokes or changes the person's groups logs in with `login_local` instead."""
    key = (base_url, username, password)
    if key not in _kept_sessions:
        _kept_sessions[key] = login_local(base_url, username, password)
    return _kept_sessions[key]


def wait_for_login_app(gw, timeout: float = 30) -> None:
    """Until the login app answers its health check through the gateway."""
    def healthy() -> bool:
        try:
            return httpx.get(f"{gw.url}/oauth/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_until(healthy, timeout, "the login app comes up")
    except AssertionError as e:
        raise TimeoutError(f"{e}:\n{gw.log[-3000:]}") from None


def login_app_url(gw) -> str:
    """Where the gateway's supervisor started the login app (it listens on loopback)."""
    return re.search(r"login app started \(pid \d+\) on (http://127\.0\.0\.1:\d+)", gw.log).group(1)


def cookie_header(token: str) -> dict[str, str]:
    return {"cookie": f"{SESSION_COOKIE}={token}"}
