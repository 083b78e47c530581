"""What a black-box acceptance run of the login app and the authorization-server facade found
beyond tests/security/test_facade_attacks.py: an access token the facade issued for one MCP
server, sent as the session cookie, was a browser session at the login app (identity, consent
page, upstream account linking: outside the resource it was issued for); and a public URL
written `HTTPS://…` gave session cookies without `Secure` and an origin no browser sends."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import httpx
import pytest

from mcp_gateway.config import load_config
from mcp_gateway.identity import SESSION_COOKIE
# The real gateway of the end-to-end tests (local accounts), and the upstreams behind it.
from tests.e2e.conftest import (  # noqa: F401
    ADMIN_PASSWORD,
    auth_gateway,
    local_accounts,
    recorder,
    upstream_json_answers,
    upstream_sse_answers,
)
from tests.security.test_facade_attacks import tokens_for
from tests.support.facade import Facade
from tests.support.gateway import TEST_SECRET_KEY, run_gateway
from tests.support.login import wait_for_login_app
from tests.support.processes import free_port

pytestmark = pytest.mark.timeout(90)

# Login-app routes that act for the person of a browser session, and how they answer a caller without one.
BROWSER_ONLY = [
    ("GET", "/oauth/me", 401),
    ("GET", "/oauth/session", 302),
    ("GET", "/oauth/connections", 302),
    ("GET", "/oauth/upstream/currenttime/connect", 302),
    ("GET", "/", 302),
]


async def _issued_access_token(gw) -> str:
    async with httpx.AsyncClient(base_url=gw.url, timeout=15) as browser:
        _, issued = await tokens_for(Facade(browser), gw.streamable_url("currenttime"))
    return issued["access_token"]


@pytest.fixture(scope="module")
def access_token(auth_gateway) -> str:
    """Admin's token for the currenttime server only."""
    return asyncio.run(_issued_access_token(auth_gateway))


@pytest.mark.parametrize("method,path,status", BROWSER_ONLY, ids=[path for _, path, _ in BROWSER_ONLY])
async def test_an_access_token_sent_as_the_session_cookie_is_no_browser_session(auth_gateway, access_token,
                                                                                 method, path, status):
    async with httpx.AsyncClient(base_url=auth_gateway.url, timeout=15) as http:
        answer = await http.request(method, path, headers={"cookie": f"{SESSION_COOKIE}={access_token}",
                                                           "accept": "application/json"})

    assert answer.status_code == status, answer.text[:300]
    assert "admin" not in answer.text and "mcp-admin" not in answer.text
    if status == 302:
        assert answer.headers["location"].startswith("/oauth/login")
    else:
        assert answer.json()["error"] == "unauthenticated"


async def test_an_access_token_sent_as_the_session_cookie_gets_no_consent_page(auth_gateway, access_token):
    async with httpx.AsyncClient(base_url=auth_gateway.url, timeout=15) as http:
        client = await Facade(http).register()
        url = Facade(http).authorize_url(client, auth_gateway.streamable_url("currenttime-json"), "x" * 43)
        answer = await http.get(url, headers={"cookie": f"{SESSION_COOKIE}={access_token}"})

    assert answer.status_code == 302 and answer.headers["location"].startswith("/oauth/login")


# -- a public URL in capitals ------------------------------------------------------------------


@pytest.fixture(scope="module")
def https_gateway(tmp_path_factory):
    """Served over plain HTTP here, but its public URL (as an operator may write it) is https."""
    port = free_port()
    tmp = tmp_path_factory.mktemp("gw-https")
    with run_gateway(tmp, [], port=port, gateway={"public_url": f"HTTPS://127.0.0.1:{port}"},
                     auth={"enabled": True, "provider_type": "local", "local": local_accounts()},
                     env={"ADMIN_USER": "admin", "ADMIN_PASSWORD": ADMIN_PASSWORD}) as gw:
        wait_for_login_app(gw)
        yield gw


def test_every_cookie_the_login_app_writes_is_secure_when_the_public_url_is_https(https_gateway):
    browser_origin = f"https://127.0.0.1:{https_gateway.port}"
    with httpx.Client(base_url=https_gateway.url, timeout=15) as http:
        login = http.post("/oauth/login/local", data={"username": "admin", "password": ADMIN_PASSWORD, "next": "/"},
                          headers={"origin": browser_origin})
        token = login.cookies.get(SESSION_COOKIE)
        logout = http.post("/oauth/logout", headers={"origin": browser_origin,
                                                     "cookie": f"{SESSION_COOKIE}={token}"})

    assert login.status_code == 303 and logout.status_code == 200, (login.text, logout.text)
    written = login.headers.get_list("set-cookie") + logout.headers.get_list("set-cookie")
    assert written
    for cookie in written:
        attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")[1:]}
        assert {"secure", "httponly", "samesite"} <= attributes, cookie


@pytest.mark.parametrize("public_url,origin", [
    ("HTTPS://GW.Example", "https://gw.example"),
    ("https://gw.example:443", "https://gw.example"),
    ("http://gw.example:80/", "http://gw.example"),
    ("https://gw.example:8443", "https://gw.example:8443"),
    ("http://[::1]:7860", "http://[::1]:7860"),
])
def test_the_public_origin_is_written_as_a_browser_writes_origin(https_gateway, public_url, origin):
    config = replace(load_config(https_gateway.config_path, env={"SECRET_KEY": TEST_SECRET_KEY}), public_url=public_url)

    assert config.public_origin == origin
    assert config.secure_cookies is origin.startswith("https://")
