"""Per-user upstream tokens (docs/end-to-end-tokens.md) through real processes, on both stores.

The test OIDC provider is the authorization server of the service behind the tools; an `mcp`
SDK server that requires its bearer tokens (tests/support/bearer_upstream.py) is the upstream.
Gateway users sign in with local accounts, connect their own account at the service through
the gateway's connect page (driven headlessly over HTTP), and call the upstream's `whoami`
through the gateway with the `mcp` SDK's client: the upstream sees each user's own subject.
Three servers point at that upstream: `svc` (client secret from MCP_UPSTREAM_*, issuer
discovery), `quick` (secret file in credentials_dir, explicit endpoints, 3-second access
tokens) and `dyn` (nothing configured: discovery from the upstream's 401 and dynamic registration).
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import wait_for_login_app
from tests.support.gateway import run_gateway, server_entry
from tests.support.headless import headless_authorize
from tests.support.login import cookie_header, login_local
from tests.support.mcp_clients import ACCEPT, INIT, sse_session, streamable_session
from tests.support.oidc_provider import running_oidc_provider
from tests.support.waiting import wait_until
from tests.support.processes import free_port, running, wait_for_port
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.timeout(240)

USERS = ("alice", "bob", "carol", "dave", "erin", "frank")
GROUPS = ["mcp-server-svc", "mcp-server-quick", "mcp-server-dyn", "mcp-server-plain"]
ADMIN_PASSWORD = "admin-password-for-upstream-tests"
SVC_SECRET = "svc-client-secret-0123456789"
QUICK_SECRET = "quick-client-secret-0123456789"
CALL = {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "whoami", "arguments": {}}}


def password(user: str) -> str:
    return f"{user}-password"


class World:
    def __init__(self, gateway, provider, record: Path, store: str):
        self.gw, self.provider, self.record, self.store = gateway, provider, record, store

    def login(self, user: str) -> str:
        return login_local(self.gw.url, user, password(user))

    async def connect(self, token: str, server: str, user: str) -> httpx.Response:
        """The browser side: connect page → the service's login → the gateway's callback."""
        async with httpx.AsyncClient(cookies={"mcp_gateway_session": token}, timeout=20) as browser:
            callback = await headless_authorize(browser, f"{self.gw.url}/oauth/upstream/{server}/connect",
                                                user, password(user), consent_action="connect",
                                                stop_at_prefix=f"{self.gw.url}/oauth/upstream/{server}/callback")
            return await browser.get(str(callback), follow_redirects=False)

    async def whoami(self, token: str, server: str, transport: str = "streamable") -> str:
        if transport == "sse":
            session = sse_session(self.gw.sse_url(server), cookie_header(token))
        else:
            session = streamable_session(self.gw.streamable_url(server), cookie_header(token))
        async with session as client:
            result = await client.call_tool("whoami", {})
        return result.content[0].text

    async def refusal(self, token: str, server: str, transport: str = "streamable") -> str:
        """What the SDK's client raised for a call that must fail (it wraps the JSON-RPC error)."""
        try:
            await self.whoami(token, server, transport)
        except Exception as e:  # MCPError, or an ExceptionGroup around it from the client's task group
            return "".join(traceback.format_exception(e))
        pytest.fail(f"the call to {server} succeeded")

    def connections(self, token: str, query: str = "") -> httpx.Response:
        return httpx.get(f"{self.gw.url}/api/connections{query}", headers=cookie_header(token), timeout=15)

    def seen_upstream(self) -> list[dict]:
        return [json.loads(line) for line in self.record.read_text().splitlines()] if self.record.exists() else []


@pytest.fixture(scope="module", params=["sqlite", "redis"])
def world(request, tmp_path_factory):
    with upstream_world(tmp_path_factory.mktemp(f"upstream-oauth-{request.param}"), request.param) as built:
        yield built


@contextmanager
def upstream_world(tmp: Path, store: str, **gateway_options) -> Iterator[World]:
    from tests.support.accounts import account_hash
    users = {u: {"password": password(u), "email": f"{u}@example.test", "groups": []} for u in USERS}
    with ExitStack() as stack:
        provider = stack.enter_context(running_oidc_provider(tmp / "idp", users=users, clients=[]))
        up_port, gw_port = free_port(), free_port()
        audience = f"http://127.0.0.1:{up_port}/service"
        record = tmp / "upstream-seen.jsonl"
        stack.enter_context(running(
            [sys.executable, "-m", "tests.support.bearer_upstream", "--port", str(up_port), "--issuer",
             provider.issuer, "--audience", audience, "--record", str(record)], tmp / "upstream.log", port=up_port))
        gw_url = f"http://127.0.0.1:{gw_port}"
        for client_id, secret, ttl in (("gw-svc", SVC_SECRET, None), ("gw-quick", QUICK_SECRET, 3)):
            name = client_id.removeprefix("gw-")
            provider.add_client(client_id, client_secret=secret, access_token_audience=audience, access_token_ttl=ttl,
                                redirect_uris=[f"{gw_url}/oauth/upstream/{name}/callback"])
        credentials = tmp / "credentials"
        credentials.mkdir()
        (credentials / "quick-secret").write_text(QUICK_SECRET + "\n")
        upstream_url = f"http://127.0.0.1:{up_port}"
        servers = [
            server_entry("svc", upstream_url, upstream_oauth={
                "client_id": "gw-svc", "client_secret_env": "MCP_UPSTREAM_SVC_SECRET", "issuer": provider.issuer,
                "scopes": ["openid", "offline_access"]}),
            server_entry("quick", upstream_url, upstream_oauth={
                "client_id": "gw-quick", "client_secret_file": "quick-secret", "token_header": "Authorization",
                "authorize_url": provider.authorize_url, "token_url": provider.token_url,
                "scopes": ["openid", "offline_access"]}),
            server_entry("dyn", upstream_url, upstream_oauth={"scopes": ["openid", "offline_access"]}),
            server_entry("plain", upstream_url),
        ]
        session = {}
        if store == "redis":
            redis = stack.enter_context(RedisServer(tmp / "redis"))
            session = {"store": redis.url}
        accounts = [{"username": u, "password_hash": account_hash(password(u)), "groups": GROUPS} for u in USERS]
        gateway = stack.enter_context(run_gateway(
            tmp / "gw", servers, port=gw_port, session=session,
            auth={"enabled": True, "provider_type": "local", "local": {"accounts": accounts}},
            gateway={"credentials_dir": str(credentials)},
            env={"ADMIN_USER": "admin", "ADMIN_PASSWORD": ADMIN_PASSWORD, "MCP_UPSTREAM_SVC_SECRET": SVC_SECRET},
            **gateway_options))
        wait_for_login_app(gateway)
        yield World(gateway, provider, record, store)


async def test_without_a_connection_clients_and_browsers_are_asked_to_connect(world):
    token = world.login("alice")
    # An MCP call: a JSON-RPC error -32042 (URL elicitation) with the connect URL, in a 200 answer.
    answer = httpx.post(world.gw.streamable_url("svc"), json=CALL, headers={**cookie_header(token), **ACCEPT},
                        timeout=15)
    assert answer.status_code == 200, answer.text
    error = answer.json()["error"]
    connect = f"{world.gw.url}/oauth/upstream/svc/connect"
    assert error["code"] == -32042 and connect in error["message"]
    assert error["data"]["connect_url"] == connect
    assert error["data"]["elicitations"][0]["mode"] == "url" and error["data"]["elicitations"][0]["url"] == connect
    # initialize goes upstream without a token; this upstream refuses it (401), which becomes the same error:
    # the upstream's own WWW-Authenticate never reaches the client.
    answer = httpx.post(world.gw.streamable_url("svc"), json=INIT, headers={**cookie_header(token), **ACCEPT},
                        timeout=15)
    assert answer.status_code == 200 and answer.json()["error"]["code"] == -32042, answer.text
    assert "www-authenticate" not in answer.headers
    # The SDK's client raises, naming the connect page.
    assert connect in await world.refusal(token, "svc")
    # A browser navigation goes to the connect page.
    page = httpx.get(world.gw.streamable_url("svc"), headers={**cookie_header(token), "accept": "text/html"},
                     timeout=15)
    assert page.status_code == 302 and page.headers["location"].startswith("/oauth/upstream/svc/connect?next=")
    listed = world.connections(token)
    assert listed.status_code == 200, listed.text
    listed = listed.json()
    assert listed["user"] == "local:alice"
    assert {c["server"]: c["connected"] for c in listed["connections"]} == {"svc": False, "quick": False, "dyn": False}


async def test_two_users_each_reach_the_upstream_with_their_own_token(world):
    tokens = {user: world.login(user) for user in ("alice", "bob")}
    for user, token in tokens.items():
        finished = await world.connect(token, "svc", user)
        assert finished.status_code == 303, finished.text
    assert await world.whoami(tokens["alice"], "svc") == "alice"
    assert await world.whoami(tokens["bob"], "svc") == "bob"
    bearer = {entry["authorization"] for entry in world.seen_upstream() if entry["authorization"]}
    assert len(bearer) >= 2
    # The client's own credential never went upstream.
    for entry in world.seen_upstream():
        assert "mcp_gateway_session" not in (entry["cookie"] or "")
        for token in tokens.values():
            assert token not in json.dumps(entry)


async def test_the_sse_transport_carries_the_user_token_on_the_stream_and_the_messages(world):
    token = world.login("bob")
    # Not connected: the upstream refuses the stream; the client gets a 403 naming the connect page, at once.
    stream = httpx.get(world.gw.sse_url("quick"), headers={**cookie_header(token), "accept": "text/event-stream"},
                       timeout=15)
    assert stream.status_code == 403 and stream.json()["connect_url"].endswith("/oauth/upstream/quick/connect")
    assert "www-authenticate" not in stream.headers
    assert "403" in await world.refusal(token, "quick", "sse")
    await world.connect(token, "quick", "bob")
    assert await world.whoami(token, "quick", "sse") == "bob"
    paths = {entry["path"] for entry in world.seen_upstream() if entry["authorization"]}
    assert "/sse" in paths and any(p.startswith("/messages") for p in paths)


async def test_the_user_token_is_nowhere_it_must_not_be(world):
    token = world.login("carol")
    await world.connect(token, "svc", "carol")
    answers = [world.connections(token).text,
               httpx.post(world.gw.streamable_url("svc"), json=INIT, headers={**cookie_header(token), **ACCEPT},
                          timeout=15).text,
               httpx.get(f"{world.gw.url}/oauth/connections", headers=cookie_header(token), timeout=15).text]
    assert await world.whoami(token, "svc") == "carol"
    upstream_tokens = {entry["authorization"].removeprefix("Bearer ") for entry in world.seen_upstream()
                       if entry["authorization"]}
    assert upstream_tokens
    audit = (world.gw.state_dir / "audit.jsonl").read_text()
    stored = _store_dump(world)
    for secret in upstream_tokens:
        assert secret not in world.gw.log
        assert secret not in audit
        assert all(secret not in text for text in answers)
        assert secret not in stored  # sealed with SECRET_KEY at rest
    assert "connected" in answers[2] and "Disconnect svc" in answers[2]


def _store_dump(world) -> str:
    if world.store == "sqlite":
        return "".join(p.read_bytes().decode("latin-1") for p in world.gw.state_dir.glob("sessions.db*"))
    return ""  # Redis keeps the same sealed values (the shared store code seals before either backend)


async def test_refresh_after_the_access_token_expires(world):
    token = world.login("dave")
    await world.connect(token, "quick", "dave")
    assert await world.whoami(token, "quick") == "dave"
    first = _wait_past_expiry(world, token, "quick")
    assert first["connected"] and first["refreshable"]
    before = world.provider.token_request_count
    assert await world.whoami(token, "quick") == "dave"
    assert world.provider.token_request_count > before
    second = _connection(world, token, "quick")
    assert second["expires_at"] > first["expires_at"]


def _connection(world, token: str, server: str) -> dict:
    return next(c for c in world.connections(token).json()["connections"] if c["server"] == server)


def _wait_past_expiry(world, token: str, server: str) -> dict:
    """Wait (bounded) until the stored access token has expired by its own expiry time."""
    connection = _connection(world, token, server)
    deadline = time.monotonic() + 15
    while time.time() <= connection["expires_at"] + 0.5 and time.monotonic() < deadline:
        time.sleep(0.2)
    return connection


async def test_a_refused_refresh_removes_the_connection(world):
    token = world.login("frank")
    await world.connect(token, "quick", "frank")
    assert await world.whoami(token, "quick") == "frank"
    world.provider.remove_user("frank")  # the service no longer knows the account: refresh is refused
    try:
        _wait_past_expiry(world, token, "quick")
        assert "oauth/upstream/quick/connect" in await world.refusal(token, "quick")
        assert not _connection(world, token, "quick")["connected"]
    finally:
        world.provider.add_user("frank", password("frank"))


async def test_disconnect_logout_and_admin_revocation(world):
    erin, bob = world.login("erin"), world.login("bob")
    await world.connect(erin, "svc", "erin")
    assert await world.whoami(erin, "svc") == "erin"
    # Logout does not disconnect.
    out = httpx.post(f"{world.gw.url}/oauth/logout", headers={**cookie_header(erin), "origin": world.gw.url}, timeout=15)
    assert out.status_code == 200
    erin = world.login("erin")
    assert await world.whoami(erin, "svc") == "erin"
    # The user disconnects: the next call asks to connect again.
    gone = httpx.delete(f"{world.gw.url}/api/connections/svc", headers=cookie_header(erin), timeout=15)
    assert gone.status_code == 200 and gone.json()["disconnected"] is True
    assert "oauth/upstream/svc/connect" in await world.refusal(erin, "svc")
    # Another user's connection: only an admin may revoke it.
    if not any(c["connected"] for c in world.connections(bob).json()["connections"] if c["server"] == "svc"):
        await world.connect(bob, "svc", "bob")
    refused = httpx.delete(f"{world.gw.url}/api/connections/svc?user=local:bob", headers=cookie_header(erin),
                           timeout=15)
    assert refused.status_code == 403 and refused.json()["scope"] == "mcp:registry:admin"
    assert await world.whoami(bob, "svc") == "bob"
    admin = login_local(world.gw.url, "admin", ADMIN_PASSWORD)
    listed = world.connections(admin, "?user=local:bob").json()
    assert any(c["server"] == "svc" and c["connected"] for c in listed["connections"])
    revoked = httpx.delete(f"{world.gw.url}/api/connections/svc?user=local:bob", headers=cookie_header(admin),
                           timeout=15)
    assert revoked.status_code == 200 and revoked.json()["disconnected"] is True
    assert "oauth/upstream/svc/connect" in await world.refusal(bob, "svc")


async def test_discovery_from_the_upstream_and_dynamic_registration(world):
    token = world.login("alice")
    finished = await world.connect(token, "dyn", "alice")
    assert finished.status_code == 303, finished.text
    assert await world.whoami(token, "dyn") == "alice"


@pytest.mark.parametrize("case", [
    "no-state", "unknown-state", "replayed-state", "other-session", "other-server",
])
async def test_the_callback_refuses_hostile_variants(world, case):
    token, other = world.login("carol"), world.login("carol")
    async with httpx.AsyncClient(cookies={"mcp_gateway_session": token}, timeout=20) as browser:
        callback = await headless_authorize(browser, f"{world.gw.url}/oauth/upstream/svc/connect", "carol",
                                            password("carol"), consent_action="connect",
                                            stop_at_prefix=f"{world.gw.url}/oauth/upstream/svc/callback")
        url = httpx.URL(str(callback))
        params = dict(url.params)
        if case == "no-state":
            params.pop("state")
        elif case == "unknown-state":
            params["state"] = "x" * 43
        elif case == "replayed-state":
            assert (await browser.get(str(url))).status_code == 303
        elif case == "other-session":
            browser.cookies.set("mcp_gateway_session", other)
        elif case == "other-server":
            url = url.copy_with(path="/oauth/upstream/quick/callback")
        answer = await browser.get(str(url.copy_with(params=params)), follow_redirects=False)
    assert answer.status_code == 400, (case, answer.status_code, answer.text[:300])


async def test_mitmweb_shows_the_injected_token_header_masked(tmp_path):
    web_port, web_password = free_port(), "web-password-for-upstream-tests"
    web_args = ["--set", f"web_port={web_port}", "--set", "web_host=127.0.0.1", "--set", "web_open_browser=false",
                "--set", f"web_password={web_password}"]
    with upstream_world(tmp_path, "sqlite", tool="mitmweb", extra_args=web_args) as world:
        wait_for_port(web_port)
        token = world.login("alice")
        await world.connect(token, "svc", "alice")
        assert await world.whoami(token, "svc") == "alice"
        sent = {entry["authorization"] for entry in world.seen_upstream() if entry["authorization"]}
        web = f"http://127.0.0.1:{web_port}"

        def flows() -> str:
            return httpx.get(f"{web}/flows", params={"token": web_password}, timeout=10).text

        wait_until(lambda: len(forwarded_to_svc(flows())) >= 2, message="the forwarded flows in mitmweb")
        stored = flows()
    assert sent
    for value in sent:
        assert value.removeprefix("Bearer ") not in stored
    assert all(dict(f["request"]["headers"]).get("Authorization") == "***" for f in forwarded_to_svc(stored))


def forwarded_to_svc(text: str) -> list[dict]:
    """Flows mitmweb keeps for requests forwarded to the upstream's /mcp (the stored copy is the forwarded one)."""
    return [f for f in json.loads(text) if f["request"]["path"] == "/mcp" and f.get("response")
            and f["response"]["status_code"] == 200]


@pytest.mark.parametrize("case, status", [
    ("post-without-csrf-or-origin", 403), ("post-from-another-origin", 403), ("post-with-a-wrong-csrf", 403),
    ("page-signed-out", 302), ("server-without-upstream-oauth", 404), ("unknown-server", 404),
])
def test_starting_a_connection_refuses_hostile_variants(world, case, status):
    token = world.login("carol")
    connect = f"{world.gw.url}/oauth/upstream/svc/connect"
    headers = cookie_header(token)
    if case == "post-without-csrf-or-origin":
        answer = httpx.post(connect, headers=headers, data={"next": "/"}, timeout=15)
    elif case == "post-from-another-origin":
        answer = httpx.post(connect, headers={**headers, "origin": "http://evil.example"}, data={}, timeout=15)
    elif case == "post-with-a-wrong-csrf":
        answer = httpx.post(connect, headers=headers, data={"csrf_token": "0" * 64}, timeout=15)
    elif case == "page-signed-out":
        answer = httpx.get(connect, timeout=15)
        assert answer.headers["location"].startswith("/oauth/login?next=/oauth/upstream/svc/connect")
    elif case == "server-without-upstream-oauth":
        answer = httpx.get(f"{world.gw.url}/oauth/upstream/plain/connect", headers=headers, timeout=15)
    else:
        answer = httpx.get(f"{world.gw.url}/oauth/upstream/nope/connect", headers=headers, timeout=15)
    assert answer.status_code == status, (case, answer.text[:300])
    assert "location" not in answer.headers or "127.0.0.1:" not in answer.headers["location"]  # never to the service


async def test_the_connections_page_disconnects_with_its_button(world):
    from tests.support.headless import parse_forms
    token = world.login("dave")
    await world.connect(token, "svc", "dave")
    page = httpx.get(f"{world.gw.url}/oauth/connections", headers=cookie_header(token), timeout=15)
    form = next(f for f in parse_forms(page.text) if f.action == "/oauth/upstream/svc/disconnect")
    done = httpx.post(f"{world.gw.url}{form.action}", headers=cookie_header(token), data=dict(form.fields), timeout=15)
    assert done.status_code == 303
    assert not _connection(world, token, "svc")["connected"]
    assert "oauth/upstream/svc/connect" in await world.refusal(token, "svc")
