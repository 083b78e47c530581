"""Login, sessions and authenticated access through the real gateway and login app."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time

import httpx
import pytest

from mcp_gateway.identity import SESSION_COOKIE
from login_app.local_login import MAX_FAILURES_PER_ADDRESS, MAX_FAILURES_PER_USER
from tests.e2e.conftest import ADMIN_PASSWORD, BOB_PASSWORD, DANA_PASSWORD, local_accounts, wait_for_login_app
from tests.support.gateway import run_gateway, server_entry
from tests.support.login import cookie_header, login_local
from tests.support.mcp_clients import ACCEPT, INIT, sse_session, streamable_session
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.timeout(120)


async def test_admin_logs_in_and_calls_tools_on_both_transports(auth_gateway):
    headers = cookie_header(login_local(auth_gateway.url, "admin", ADMIN_PASSWORD))
    async with sse_session(auth_gateway.sse_url("currenttime"), headers) as client:
        result = await client.call_tool("current_time_by_timezone", {"timezone": "UTC"})
        assert result.content[0].text.endswith("+00:00")
    async with streamable_session(auth_gateway.streamable_url("currenttime"), headers) as client:
        result = await client.call_tool("current_time_by_timezone", {"timezone": "UTC"})
        assert result.content[0].text.endswith("+00:00")


def test_me_reports_user_groups_and_scopes(auth_gateway):
    headers = cookie_header(login_local(auth_gateway.url, "admin", ADMIN_PASSWORD))
    me = httpx.get(f"{auth_gateway.url}/oauth/me", headers=headers, timeout=10)
    assert me.status_code == 200
    body = me.json()
    assert body["user"] == "admin" and body["groups"] == ["mcp-admin"]
    assert "mcp:registry:admin" in body["scopes"]


def test_session_cookie_attributes(auth_gateway):
    response = httpx.post(f"{auth_gateway.url}/oauth/login/local",
                          data={"username": "admin", "password": ADMIN_PASSWORD, "next": "/oauth/me"},
                          headers={"origin": auth_gateway.url}, timeout=15)
    cookie = response.headers["set-cookie"]
    name, _, rest = cookie.partition("=")
    token = rest.split(";")[0]
    assert name == SESSION_COOKIE
    assert len(token) >= 43  # 32 random bytes, base64url
    attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "path", "samesite"} <= attributes
    assert "samesite=lax" in cookie.lower() and "path=/" in cookie.lower()
    assert "secure" not in attributes  # http public URL; https makes it Secure (tests/unit/test_login_cookies.py)


@pytest.mark.parametrize("password", ["wrong", "", ADMIN_PASSWORD + "x"])
def test_wrong_password_gets_no_session(auth_gateway, password):
    response = httpx.post(f"{auth_gateway.url}/oauth/login/local",
                          data={"username": "admin", "password": password, "next": "/"},
                          headers={"origin": auth_gateway.url}, timeout=15)
    assert response.status_code in (400, 401)
    assert SESSION_COOKIE not in response.headers.get("set-cookie", "")


@pytest.mark.parametrize("cookie", [
    "garbage", "", "x" * 5000, "A" * 43, "%00%01", "null", "' OR 1=1 --", "ünïcødé",
])
def test_bad_cookies_get_401_json_never_500(auth_gateway, cookie):
    response = httpx.post(auth_gateway.streamable_url("currenttime"), json=INIT,
                          headers={**ACCEPT, "cookie": f"{SESSION_COOKIE}={cookie}".encode()},
                          timeout=10)
    assert response.status_code == 401
    assert response.json()["error"] == "unauthenticated"
    assert response.headers["www-authenticate"] == (
        f'Bearer resource_metadata="{auth_gateway.url}/.well-known/oauth-protected-resource/api/streamable/currenttime"')


def test_tampered_cookie_is_refused(auth_gateway):
    token = login_local(auth_gateway.url, "admin", ADMIN_PASSWORD)
    tampered = token[:-1] + ("A" if token[-1] != "A" else "B")
    response = httpx.get(auth_gateway.sse_url("currenttime"), headers=cookie_header(tampered), timeout=10)
    assert response.status_code == 401


def test_no_credentials_api_gets_401_and_browser_gets_redirect(auth_gateway):
    api = httpx.get(auth_gateway.sse_url("currenttime"), timeout=10)
    assert api.status_code == 401 and api.json()["status"] == 401
    assert api.headers["www-authenticate"].startswith('Bearer resource_metadata="')
    assert "/.well-known/oauth-protected-resource/api/execute/currenttime" in api.headers["www-authenticate"]
    browser = httpx.get(f"{auth_gateway.url}/api/servers?x=1", headers={"accept": "text/html,*/*"}, timeout=10)
    assert browser.status_code == 302
    assert browser.headers["location"] == "/oauth/login?next=/api/servers%3Fx%3D1"


def test_credentials_in_query_string_are_refused(auth_gateway):
    token = login_local(auth_gateway.url, "admin", ADMIN_PASSWORD)
    response = httpx.get(f"{auth_gateway.sse_url('currenttime')}?access_token={token}", timeout=10)
    assert response.status_code == 401
    assert "query string" in response.json()["message"]


def test_two_session_cookies_are_refused(auth_gateway):
    token = login_local(auth_gateway.url, "admin", ADMIN_PASSWORD)
    response = httpx.post(auth_gateway.streamable_url("currenttime"), json=INIT,
                          headers={**ACCEPT, "cookie": f"{SESSION_COOKIE}={token}; {SESSION_COOKIE}=other"},
                          timeout=10)
    assert response.status_code == 401


def test_logout_ends_the_session_at_once(auth_gateway):
    token = login_local(auth_gateway.url, "dana", DANA_PASSWORD)
    headers = cookie_header(token)
    assert httpx.post(auth_gateway.streamable_url("currenttime"), json=INIT, headers={**headers, **ACCEPT},
                      timeout=10).status_code == 200
    out = httpx.post(f"{auth_gateway.url}/oauth/logout", headers={**headers, "origin": auth_gateway.url}, timeout=10)
    assert out.status_code == 200
    assert f'{SESSION_COOKIE}=""' in out.headers["set-cookie"] or "max-age=0" in out.headers["set-cookie"].lower()
    after = httpx.post(auth_gateway.streamable_url("currenttime"), json=INIT, headers={**headers, **ACCEPT},
                       timeout=10)
    assert after.status_code == 401
    assert httpx.get(f"{auth_gateway.url}/oauth/me", headers=headers, timeout=10).status_code == 401


@pytest.mark.parametrize("origin", ["https://evil.example", "null", "http://127.0.0.1:1"])
def test_cross_site_logout_is_refused(auth_gateway, origin):
    token = login_local(auth_gateway.url, "bob", BOB_PASSWORD)
    headers = cookie_header(token)
    refused = httpx.post(f"{auth_gateway.url}/oauth/logout", headers={**headers, "origin": origin}, timeout=10)
    assert refused.status_code == 403
    assert httpx.get(f"{auth_gateway.url}/oauth/me", headers=headers, timeout=10).status_code == 200


@pytest.mark.parametrize("next_value,expected", [
    ("/oauth/me", "/oauth/me"),
    ("/api/servers?x=1", "/api/servers?x=1"),
    ("//evil.example", "/"),  # the default landing: the servers page
    ("https://evil.example/", "/"),  # the default landing: the servers page
    ("/\\evil.example", "/"),  # the default landing: the servers page
    ("/%2f%2fevil.example", "/"),  # the default landing: the servers page
    ("javascript:alert(1)", "/"),  # the default landing: the servers page
    ("\t//evil.example", "/"),  # the default landing: the servers page
])
def test_login_redirects_only_to_same_origin_paths(auth_gateway, next_value, expected):
    response = httpx.post(f"{auth_gateway.url}/oauth/login/local",
                          data={"username": "bob", "password": BOB_PASSWORD, "next": next_value},
                          headers={"origin": auth_gateway.url}, timeout=15)
    assert response.status_code == 303
    assert response.headers["location"] == expected


def test_upstream_never_sees_the_session_cookie(auth_gateway, recorder):
    token = login_local(auth_gateway.url, "admin", ADMIN_PASSWORD)
    response = httpx.post(auth_gateway.streamable_url("recorder"), json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
                          headers={"cookie": f"{SESSION_COOKIE}={token}; theme=dark"},
                          timeout=10)
    assert response.status_code == 200
    seen = recorder.requests[-1]
    assert token not in json.dumps(seen.headers)
    assert seen.headers.get("cookie") == "theme=dark"


def _open_streamable_session(gw, headers) -> str:
    response = httpx.post(gw.streamable_url("currenttime"), json=INIT, headers={**headers, **ACCEPT}, timeout=10)
    assert response.status_code == 200, response.text
    return response.headers["mcp-session-id"]


def test_streamable_session_hijack_is_refused_on_post_get_and_delete(auth_gateway):
    admin = cookie_header(login_local(auth_gateway.url, "admin", ADMIN_PASSWORD))
    bob = cookie_header(login_local(auth_gateway.url, "bob", BOB_PASSWORD))
    session_id = _open_streamable_session(auth_gateway, admin)
    stolen = {"mcp-session-id": session_id, "mcp-protocol-version": "2025-06-18"}
    url = auth_gateway.streamable_url("currenttime")
    ping = {"jsonrpc": "2.0", "id": 2, "method": "ping"}
    assert httpx.post(url, json=ping, headers={**bob, **ACCEPT, **stolen}, timeout=10).status_code == 403
    assert httpx.get(url, headers={**bob, "accept": "text/event-stream", **stolen}, timeout=10).status_code == 403
    assert httpx.delete(url, headers={**bob, **stolen}, timeout=10).status_code == 403
    # the owner keeps using it, from another session of the same identity too
    admin_again = cookie_header(login_local(auth_gateway.url, "admin", ADMIN_PASSWORD))
    assert httpx.post(url, json=ping, headers={**admin_again, **ACCEPT, **stolen}, timeout=10).status_code == 200
    assert httpx.delete(url, headers={**admin, **stolen}, timeout=10).status_code in (200, 204)
    assert "MCP session hijack refused" in auth_gateway.log


def test_sse_session_hijack_is_refused(auth_gateway):
    admin = cookie_header(login_local(auth_gateway.url, "admin", ADMIN_PASSWORD))
    bob = cookie_header(login_local(auth_gateway.url, "bob", BOB_PASSWORD))
    with httpx.Client(timeout=10) as http:
        with http.stream("GET", auth_gateway.sse_url("currenttime"), headers=admin) as stream:
            assert stream.status_code == 200
            lines = stream.iter_lines()  # kept referenced: closing this generator would close the stream
            endpoint = next(line[5:].strip() for line in lines if line.startswith("data:"))
            assert endpoint.startswith("/api/execute/currenttime/messages/?session_id=")
            time.sleep(0.3)
            hijack = http.post(auth_gateway.url + endpoint, json=INIT, headers=bob)
            assert hijack.status_code == 403
            own = http.post(auth_gateway.url + endpoint, json=INIT, headers=admin)
            assert own.status_code == 202, own.text


def test_failed_logins_are_throttled(auth_gateway):
    for _ in range(5):
        response = httpx.post(f"{auth_gateway.url}/oauth/login/local",
                              data={"username": "victim", "password": "guess"},
                              headers={"origin": auth_gateway.url}, timeout=15)
        assert response.status_code == 401
    throttled = httpx.post(f"{auth_gateway.url}/oauth/login/local", data={"username": "victim", "password": "guess"},
                           headers={"origin": auth_gateway.url}, timeout=15)
    assert throttled.status_code == 429
    assert "Too many failed logins" in throttled.text


def test_session_survives_a_gateway_restart_and_expires(tmp_path, upstream_sse_answers):
    servers = [server_entry("currenttime", upstream_sse_answers.url)]
    auth = {"enabled": True, "provider_type": "local", "local": local_accounts()}
    kwargs = dict(auth=auth, session={"lifetime": "12s", "idle_timeout": "1h"}, config_dir=tmp_path / "cfg")
    with run_gateway(tmp_path, servers, **kwargs) as gw:
        wait_for_login_app(gw)
        token = login_local(gw.url, "dana", DANA_PASSWORD)
        port = gw.port
    with run_gateway(tmp_path, servers, port=port, **kwargs) as gw:
        response = httpx.post(gw.streamable_url("currenttime"), json=INIT,
                              headers={**cookie_header(token), **ACCEPT}, timeout=10)
        assert response.status_code == 200, "the session did not survive the restart"
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            expired = httpx.post(gw.streamable_url("currenttime"), json=INIT,
                                 headers={**cookie_header(token), **ACCEPT}, timeout=10)
            if expired.status_code == 401:
                break
            time.sleep(0.5)
        assert expired.status_code == 401, "the session outlived its absolute lifetime"


@pytest.fixture(params=["sqlite", "redis"])
def fresh_auth_gateway(request, tmp_path, upstream_sse_answers):
    """A gateway of its own (throttling counts must start at zero) on each session store."""
    session = None
    with contextlib.ExitStack() as stack:
        if request.param == "redis":
            session = {"store": stack.enter_context(RedisServer(tmp_path / "redis")).url}
        gw = stack.enter_context(run_gateway(
            tmp_path, [server_entry("currenttime", upstream_sse_answers.url)],
            auth={"enabled": True, "provider_type": "local", "local": local_accounts()}, session=session))
        wait_for_login_app(gw)
        yield gw


async def _guess_at_once(gw, guesses: list[tuple[str, str]]) -> list[httpx.Response]:
    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=len(guesses))) as http:
        return await asyncio.gather(*(
            http.post(f"{gw.url}/oauth/login/local", data={"username": user, "password": password},
                      headers={"origin": gw.url})
            for user, password in guesses))


def _verifications(gw, user: str | None = None) -> int:
    """Passwords the login app checked: each check ends in exactly one "failed" or "signed in" line."""
    outcomes = ("auth: local login failed for user=", "auth: local login user=")
    return sum(1 for line in gw.log.splitlines() for outcome in outcomes
               if outcome in line and (user is None or f"{outcome}{user} " in line))


async def test_concurrent_guesses_at_one_username_are_limited(fresh_auth_gateway):
    gw = fresh_auth_gateway
    guesses = [("dana", f"wrong-{i}") for i in range(40)]

    answers = await _guess_at_once(gw, guesses)

    statuses = [answer.status_code for answer in answers]
    assert set(statuses) <= {401, 429} and statuses.count(429) >= 40 - MAX_FAILURES_PER_USER, statuses
    assert _verifications(gw, "dana") <= MAX_FAILURES_PER_USER, "more passwords verified than the limit allows"
    # Sent after the guesses (sent among them, it may rightly be one of the first few admitted):
    # the right password no longer opens the account.
    right = httpx.post(f"{gw.url}/oauth/login/local", data={"username": "dana", "password": DANA_PASSWORD},
                       headers={"origin": gw.url}, timeout=15)
    assert right.status_code == 429 and SESSION_COOKIE not in right.headers.get("set-cookie", "")


async def test_concurrent_guesses_from_one_address_are_limited(fresh_auth_gateway):
    gw = fresh_auth_gateway
    guesses = [(f"nobody-{i}", "guess") for i in range(40)]  # a fresh username each: only the address limit holds

    answers = await _guess_at_once(gw, guesses)

    statuses = [answer.status_code for answer in answers]
    assert set(statuses) <= {401, 429} and statuses.count(401) <= MAX_FAILURES_PER_ADDRESS, statuses
    assert _verifications(gw) <= MAX_FAILURES_PER_ADDRESS
    assert httpx.post(f"{gw.url}/oauth/login/local", data={"username": "dana", "password": DANA_PASSWORD},
                      headers={"origin": gw.url}, timeout=15).status_code == 429, "the address was not throttled"


ROUTE_KINDS = [  # (method, path): every kind of /api route, known, unknown and disabled names alike
    ("GET", "/api/servers"), ("POST", "/api/servers"), ("GET", "/api/servers/currenttime"),
    ("PATCH", "/api/servers/currenttime"), ("DELETE", "/api/servers/currenttime"),
    ("POST", "/api/servers/currenttime/toggle"), ("GET", "/api/servers/nope"), ("GET", "/api/elsewhere"),
    ("GET", "/api/execute/currenttime/sse"), ("GET", "/api/execute/currenttime"),
    ("POST", "/api/execute/currenttime/messages/?session_id=0123"), ("GET", "/api/execute/nope/sse"),
    ("POST", "/api/streamable/currenttime"), ("GET", "/api/streamable/currenttime"),
    ("DELETE", "/api/streamable/currenttime"), ("POST", "/api/streamable/nope"),
]
METADATA = "/.well-known/oauth-protected-resource"


def _metadata_urls(answer: httpx.Response) -> list[str]:
    challenge = answer.headers.get("www-authenticate", "")
    return [part.split('"')[1] for part in challenge.split("resource_metadata=")[1:]]


def test_every_resource_metadata_url_handed_out_answers_with_its_resource(auth_gateway):
    handed_out: dict[str, str] = {}
    bob = cookie_header(login_local(auth_gateway.url, "bob", BOB_PASSWORD))  # lacks every server scope: 403s
    with httpx.Client(base_url=auth_gateway.url, timeout=10) as http:
        for method, path in ROUTE_KINDS:
            for headers in ({}, {"authorization": "Bearer not-a-token"}, bob):
                answer = http.request(method, path, headers={**ACCEPT, **headers}, json=INIT)
                if answer.status_code in (401, 403):
                    handed_out.update((url, f"{method} {path}") for url in _metadata_urls(answer))
        assert f"{auth_gateway.url}{METADATA}" in handed_out, "the registry API's 401 names the origin's metadata"
        assert f"{auth_gateway.url}{METADATA}/api/streamable/currenttime" in handed_out
        for url, source in handed_out.items():
            answer = http.get(url)
            assert answer.status_code == 200, f"{url} (from {source}) answers {answer.status_code}"
            # RFC 9728 §3.3: the resource is the URL the well-known suffix was inserted into
            assert answer.json()["resource"] == url.replace(METADATA, "", 1), source
