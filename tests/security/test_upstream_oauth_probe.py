"""Per-user upstream OAuth probed from outside: the service's authorization server answering
hostile token responses, and disconnects racing a refresh that is in flight.

Real gateway and login app, the recording upstream behind server `svc`. The service's
authorization server is a small scripted HTTP server (tests/support/http_server.py): a
hostile authorization server is what is under test, and its answers are the test's
variables (the well-behaved one, panva's oidc-provider, is in tests/e2e/test_upstream_oauth.py).
"""

from __future__ import annotations

import json
import time
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.support.http_server import QuietHandler, serving
from tests.support.login import cookie_header, login_local
from tests.support.mcp_clients import ACCEPT
from tests.support.waiting import wait_until

pytestmark = pytest.mark.timeout(90)

USERS = {"ann": "ann-password-for-probe", "ben": "ben-password-for-probe"}
ADMIN_PASSWORD = "admin-password-for-probe"
CALL = {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "whoami", "arguments": {}}}
GOOD = {"access_token": "good-access-token", "token_type": "Bearer", "expires_in": 3600,
        "refresh_token": "good-refresh-token"}


@dataclass
class AuthServer:
    """The service's token endpoint: answers `planned` in order, then GOOD; a refresh waits for `release`."""
    port: int = 0
    planned: list[tuple[int, bytes]] = field(default_factory=list)
    grants: list[str] = field(default_factory=list)
    hold_refresh: bool = False
    release: threading.Event = field(default_factory=threading.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def plan(self, *answers: dict | bytes, status: int = 200) -> None:
        self.planned = [(status, a if isinstance(a, bytes) else json.dumps(a).encode()) for a in answers]


@pytest.fixture(scope="module")
def auth_server() -> Iterator[AuthServer]:
    server = AuthServer()

    class Handler(QuietHandler):
        def do_POST(self) -> None:
            form = parse_qs(self.rfile.read(int(self.headers.get("content-length") or 0)).decode())
            grant = form.get("grant_type", [""])[0]
            server.grants.append(grant)
            if grant == "refresh_token" and server.hold_refresh:
                server.release.wait(30)
            status, body = server.planned.pop(0) if server.planned else (200, json.dumps(GOOD).encode())
            self.send(status, body, {"content-type": "application/json", "cache-control": "no-store"})

    with serving(Handler) as port:
        server.port = port
        yield server


@pytest.fixture(scope="module")
def gw(tmp_path_factory, recorder, auth_server):
    from tests.e2e.conftest import wait_for_login_app
    from tests.support.accounts import account_hash
    from tests.support.gateway import run_gateway, server_entry
    servers = [server_entry("svc", recorder.url, upstream_oauth={
        "client_id": "gw-svc", "authorize_url": f"{auth_server.url}/authorize", "token_url": f"{auth_server.url}/token"})]
    accounts = [{"username": u, "password_hash": account_hash(p), "groups": ["mcp-server-svc"]} for u, p in USERS.items()]
    with run_gateway(tmp_path_factory.mktemp("gw-upstream-probe"), servers,
                     auth={"enabled": True, "provider_type": "local", "local": {"accounts": accounts}},
                     env={"ADMIN_USER": "admin", "ADMIN_PASSWORD": ADMIN_PASSWORD}) as gateway:
        wait_for_login_app(gateway)
        yield gateway


@pytest.fixture(scope="module")
def sessions(gw) -> dict[str, str]:
    return {user: login_local(gw.url, user, password) for user, password in {**USERS, "admin": ADMIN_PASSWORD}.items()}


def connect(gw, token: str) -> httpx.Response:
    """The browser's side of connecting `svc`: start at the connect page, come back with a code."""
    started = httpx.post(f"{gw.url}/oauth/upstream/svc/connect", data={"next": "/oauth/connections"},
                         headers={**cookie_header(token), "origin": gw.url}, timeout=15)
    assert started.status_code == 302, started.text[:300]
    state = parse_qs(urlsplit(started.headers["location"]).query)["state"][0]
    return httpx.get(f"{gw.url}/oauth/upstream/svc/callback", params={"state": state, "code": "a-code"},
                     headers=cookie_header(token), timeout=15)


def connection(gw, token: str, query: str = "") -> dict:
    listed = httpx.get(f"{gw.url}/api/connections{query}", headers=cookie_header(token), timeout=15)
    assert listed.status_code == 200, listed.text[:300]
    return next(c for c in listed.json()["connections"] if c["server"] == "svc")


def disconnect(gw, token: str) -> None:
    httpx.delete(f"{gw.url}/api/connections/svc", headers=cookie_header(token), timeout=15)


def call(gw, token: str) -> httpx.Response:
    return httpx.post(gw.streamable_url("svc"), json=CALL, headers={**cookie_header(token), **ACCEPT}, timeout=30)


HOSTILE_TOKEN_ANSWERS = {
    # What reaches the upstream's Authorization header must be one plain token (RFC 6749 A.12, RFC 6750 §2.1).
    "empty-access-token": {**GOOD, "access_token": ""},
    "blank-access-token": {**GOOD, "access_token": "   "},
    "numeric-access-token": {**GOOD, "access_token": 12345},
    "object-access-token": {**GOOD, "access_token": {"a": "b"}},
    "list-access-token": {**GOOD, "access_token": ["a", "b"]},
    "null-access-token": {**GOOD, "access_token": None},
    "crlf-access-token": {**GOOD, "access_token": "tok\r\nX-Injected: 1"},
    "nul-access-token": {**GOOD, "access_token": "tok\x00en"},
    "non-ascii-access-token": {**GOOD, "access_token": "tök€n"},
    "line-separator-access-token": {**GOOD, "access_token": "tok\u2028en"},
    "nel-access-token": {**GOOD, "access_token": "tok\x85en"},
    "space-in-access-token": {**GOOD, "access_token": "tok Bearer other"},
    "huge-access-token": {**GOOD, "access_token": "a" * 200_000},
    "crlf-refresh-token": {**GOOD, "refresh_token": "ref\r\nX-Injected: 1"},
    "object-refresh-token": {**GOOD, "refresh_token": {"a": "b"}},
    "non-ascii-refresh-token": {**GOOD, "refresh_token": "réfresh"},
    # A token of another type is not a bearer token (RFC 6749 §7.1: a client must not use a type it does not know).
    "token-type-mac": {**GOOD, "token_type": "mac"},
    "token-type-dpop": {**GOOD, "token_type": "DPoP"},
    "token-type-number": {**GOOD, "token_type": 1},
    # expires_in: a positive number of seconds.
    "expires-in-nan": b'{"access_token": "tok-nan", "token_type": "Bearer", "expires_in": NaN}',
    "expires-in-infinity": b'{"access_token": "tok-inf", "token_type": "Bearer", "expires_in": Infinity}',
    "expires-in-minus-infinity": b'{"access_token": "tok-minf", "token_type": "Bearer", "expires_in": -Infinity}',
    "expires-in-overflow": b'{"access_token": "tok-big", "token_type": "Bearer", "expires_in": 1e400}',
    "expires-in-negative": {**GOOD, "expires_in": -60},
    "expires-in-zero": {**GOOD, "expires_in": 0},
    "expires-in-bool": {**GOOD, "expires_in": True},
    "expires-in-words": {**GOOD, "expires_in": "soon"},
    "expires-in-object": {**GOOD, "expires_in": {"s": 1}},
    # Not a token answer at all.
    "not-json": b"<html>sign in</html>",
    "json-array": b"[]",
    "json-string": b'"token"',
    "no-access-token": {"token_type": "Bearer"},
    "huge-body": b'{"access_token": "tok", "token_type": "Bearer", "padding": "' + b"x" * 3_000_000 + b'"}',
}


@pytest.mark.parametrize("case", list(HOSTILE_TOKEN_ANSWERS))
def test_a_hostile_token_answer_is_refused_and_nothing_is_stored(gw, sessions, auth_server, recorder, case):
    token = sessions["ann"]
    disconnect(gw, token)
    auth_server.plan(HOSTILE_TOKEN_ANSWERS[case])
    answer = connect(gw, token)
    assert answer.status_code == 502, (case, answer.status_code, answer.text[:300])
    assert "Traceback" not in answer.text
    assert not connection(gw, token)["connected"]
    # The admin's view of the same user is a clean answer too.
    assert not connection(gw, sessions["admin"], "?user=local:ann")["connected"]
    before = len(recorder.requests)
    refused = call(gw, token)
    assert refused.status_code == 200 and refused.json()["error"]["code"] == -32042, refused.text[:300]
    assert len(recorder.requests) == before


ACCEPTED_TOKEN_ANSWERS = {  # lenient where real authorization servers differ, and still sound
    "token-type-lowercase": ({**GOOD, "token_type": "bearer"}, True),
    "no-token-type": ({k: v for k, v in GOOD.items() if k != "token_type"}, True),
    "expires-in-digits-string": ({**GOOD, "expires_in": "3600"}, True),  # Azure AD v1 wrote it as a string
    "expires-in-float": ({**GOOD, "expires_in": 3599.5}, True),
    "expires-in-huge": ({**GOOD, "expires_in": 10**30}, True),
    "no-expires-in": ({k: v for k, v in GOOD.items() if k != "expires_in"}, False),
}


@pytest.mark.parametrize("case", list(ACCEPTED_TOKEN_ANSWERS))
def test_token_answers_real_servers_give_are_accepted_and_listed(gw, sessions, auth_server, recorder, case):
    body, expires = ACCEPTED_TOKEN_ANSWERS[case]
    token = sessions["ann"]
    disconnect(gw, token)
    auth_server.plan(body)
    assert connect(gw, token).status_code == 303
    listed = connection(gw, token)
    assert listed["connected"] and (listed["expires_at"] is not None) == expires, listed
    assert call(gw, token).status_code == 200
    assert recorder.requests[-1].headers["authorization"] == f"Bearer {body['access_token']}"


DISCONNECTS = {
    "api-delete": lambda gw, s: httpx.delete(f"{gw.url}/api/connections/svc", headers=cookie_header(s["ben"]),
                                             timeout=15),
    "page-button": lambda gw, s: httpx.post(f"{gw.url}/oauth/upstream/svc/disconnect",
                                            headers={**cookie_header(s["ben"]), "origin": gw.url}, timeout=15),
    "admin-revocation": lambda gw, s: httpx.delete(f"{gw.url}/api/connections/svc?user=local:ben",
                                                   headers=cookie_header(s["admin"]), timeout=15),
}


def connect_until_expired(gw, token: str, auth_server: AuthServer) -> None:
    """A fresh connection whose access token lives one second, once that second is over."""
    disconnect(gw, token)
    auth_server.plan({**GOOD, "expires_in": 1})
    assert connect(gw, token).status_code == 303
    expires_at = connection(gw, token)["expires_at"]  # whole seconds, rounded down
    wait_until(lambda: time.time() > expires_at + 1.2, timeout=10, message="the access token expires")


@pytest.mark.parametrize("how", list(DISCONNECTS))
def test_a_disconnect_during_a_refresh_in_flight_stays_disconnected(gw, sessions, auth_server, how):
    token = sessions["ben"]
    connect_until_expired(gw, token, auth_server)
    refreshes = auth_server.grants.count("refresh_token")
    auth_server.hold_refresh, auth_server.release = True, threading.Event()
    try:
        with ThreadPoolExecutor(1) as pool:
            in_flight = pool.submit(call, gw, token)
            wait_until(lambda: auth_server.grants.count("refresh_token") > refreshes, timeout=15,
                       message="the gateway's refresh reaches the authorization server")
            done = DISCONNECTS[how](gw, sessions)
            assert done.status_code in (200, 303), done.text[:300]
            auth_server.release.set()
            in_flight.result(timeout=30)
    finally:
        auth_server.hold_refresh = False
        auth_server.release.set()
    assert not connection(gw, token)["connected"], how
    assert call(gw, token).json()["error"]["code"] == -32042


REFUSED_REFRESHES = [(400, "invalid_grant"), (400, "invalid_scope"), (400, "unsupported_grant_type"),
                     (400, "invalid_request"), (400, "unauthorized_client"), (401, "invalid_client")]


@pytest.mark.parametrize("status, error", REFUSED_REFRESHES)
def test_a_refresh_the_service_refuses_asks_the_user_to_connect_again(gw, sessions, auth_server, status, error):
    """Before, only invalid_grant/invalid_client/unauthorized_client removed the connection: a refresh
    refused otherwise (invalid_scope, …) was retried on every call, each answered 502, for ever."""
    token = sessions["ann"]
    connect_until_expired(gw, token, auth_server)
    auth_server.plan({"error": error, "error_description": "refused"}, status=status)

    assert call(gw, token).json()["error"]["code"] == -32042
    assert not connection(gw, token)["connected"]


def set_url(gw, sessions, url: str) -> None:
    moved = httpx.patch(f"{gw.url}/api/servers/svc", json={"url": url}, headers=cookie_header(sessions["admin"]),
                        timeout=15)
    assert moved.status_code == 200, moved.text[:300]


MOVES = {  # where a registry edit points the server, and whether that is still the service the user connected
    "another-port": (lambda rec, elsewhere: elsewhere.url, False),
    "another-host-name": (lambda rec, elsewhere: f"http://localhost:{rec.port}", False),
    "another-port-dot-path": (lambda rec, elsewhere: f"http://127.0.0.1:{elsewhere.port}/sub/..", False),
    "same-origin-another-path": (lambda rec, elsewhere: f"{rec.url}/v2", True),
}


@pytest.mark.parametrize("case", list(MOVES))
def test_a_users_token_never_follows_its_server_to_another_upstream(gw, sessions, auth_server, recorder, case):
    """A registry edit of `url` (the registry admin, or an editor within editor_upstream_hosts) must not
    turn every connected user's token for the service into a present for the new upstream."""
    from tests.support.recorder import recording_upstream
    token = sessions["ann"]

    def connected_and_used() -> bool:
        # The login app reads registry edits by polling: until it has seen the previous case's url
        # restored, it records that one for the connection, which the gateway then rightly refuses.
        disconnect(gw, token)
        auth_server.plan({**GOOD, "access_token": f"ann-token-{case}"})
        assert connect(gw, token).status_code == 303
        answer = call(gw, token)
        return answer.status_code == 200 and "error" not in answer.json()

    wait_until(connected_and_used, timeout=20, message="a connection made for the server's url")
    with recording_upstream() as elsewhere:
        where, same_service = MOVES[case][0](recorder, elsewhere), MOVES[case][1]
        set_url(gw, sessions, where)
        try:
            before = len(recorder.requests)
            answer = call(gw, token)
            seen = [r.headers.get("authorization", "") for r in [*elsewhere.requests, *recorder.requests[before:]]]
        finally:
            set_url(gw, sessions, recorder.url)
    if same_service:
        assert seen == [f"Bearer ann-token-{case}"], seen
    else:
        assert all(f"ann-token-{case}" not in value for value in seen), seen
        assert answer.json()["error"]["code"] == -32042, answer.text[:300]
    # Back on the service it was connected to, the connection works again.
    assert call(gw, token).status_code == 200
    assert recorder.requests[-1].headers["authorization"] == f"Bearer ann-token-{case}"
