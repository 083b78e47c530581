"""Per-user upstream connections attacked: `/api/connections?user=` spelled every way that could
reach another person's connections without the registry admin, the connect, callback and
disconnect routes with hostile server names and states, and cross-site posts. Real gateway,
real login app (the shared local-accounts gateway of this folder)."""

from __future__ import annotations

import httpx
import pytest

from tests.security.hostile import assert_json_refusal, request, session_cookie

pytestmark = pytest.mark.timeout(60)

OTHERS_WITHOUT_ADMIN = [  # query → what bob (no registry admin) may get
    ("user=local:admin", 403), ("user=local%3Aadmin", 403), ("%75ser=local:admin", (400, 403)),
    ("User=local:admin", 400), ("USER=local:admin", 400), ("user[]=local:admin", 400),
    ("user=local:admin&user=local:bob", 400), ("user=local:bob&user=local:admin", 400),
    ("user=local:admin&x=1", 400), ("user=", 400), ("user=local:admin%00", 400), ("user=local:admin%0d%0aX:y", 400),
    ("user=" + "a" * 600, 400), ("user=local:admin;user=local:bob", 403), ("user=%2A", 403), ("user=local:*", 403),
]


@pytest.mark.parametrize("query, status", OTHERS_WITHOUT_ADMIN, ids=[q[:40] for q, _ in OTHERS_WITHOUT_ADMIN])
@pytest.mark.parametrize("method, path", [("GET", "/api/connections"), ("DELETE", "/api/connections/recorder")])
def test_another_users_connections_need_the_registry_admin_however_spelled(auth_gateway, signed_in, query, status,
                                                                         method, path):
    answer = request(auth_gateway.port, method, f"{path}?{query}", [session_cookie(signed_in["bob"])])
    allowed = status if isinstance(status, tuple) else (status,)
    if method == "DELETE" and 403 in allowed:
        allowed = (*allowed, 404)  # the server has no per-user tokens: nothing to disconnect either way
    assert answer.status in allowed, answer.head
    assert_json_refusal(answer, answer.status)
    assert b"local:admin" not in answer.body or answer.status != 200


def test_the_registry_admin_reads_another_users_connections_by_the_value_shown(auth_gateway, signed_in):
    mine = httpx.get(f"{auth_gateway.url}/api/connections", timeout=10,
                     headers={"cookie": session_cookie(signed_in["bob"])[1]}).json()
    theirs = httpx.get(f"{auth_gateway.url}/api/connections", params={"user": mine["user"]}, timeout=10,
                       headers={"cookie": session_cookie(signed_in["admin"])[1]})
    assert theirs.status_code == 200 and theirs.json()["user"] == mine["user"]


@pytest.mark.parametrize("headers", [[], [("Origin", "https://evil.example")], [("Origin", "null")]])
def test_connections_without_a_session_or_cross_site_are_refused(auth_gateway, signed_in, headers):
    with_cookie = headers and [session_cookie(signed_in["admin"]), *headers]
    answer = request(auth_gateway.port, "DELETE", "/api/connections/recorder", with_cookie or [])
    assert_json_refusal(answer, 403 if headers else 401)


HOSTILE_SERVERS = ["RECORDER", "nosuch", "a" * 65, "recorder%2e", "%2e%2e", "recorder%00", "r%C3%A9corder",
                   "mcp:registry:admin"]


@pytest.mark.parametrize("server", HOSTILE_SERVERS)
@pytest.mark.parametrize("method, tail, form", [
    ("GET", "connect", None), ("POST", "connect", {"next": "https://evil.example/"}),
    ("GET", "callback?state=" + "s" * 40 + "&code=c", None), ("POST", "disconnect", {}),
])
def test_connect_routes_with_hostile_server_names_redirect_nowhere_and_never_fail(auth_gateway, signed_in, server,
                                                                                  method, tail, form):
    answer = httpx.request(method, f"{auth_gateway.url}/oauth/upstream/{server}/{tail}", data=form, timeout=10,
                           headers={"cookie": session_cookie(signed_in["admin"])[1], "origin": auth_gateway.url},
                           follow_redirects=False)
    assert answer.status_code in (303, 400, 404), (answer.status_code, answer.text[:200])
    if answer.status_code == 303:  # disconnect of nothing: back to the connections page, on this origin
        assert answer.headers["location"] == "/oauth/connections"
    assert "evil.example" not in answer.headers.get("location", "")
    assert "Traceback" not in answer.text


@pytest.mark.parametrize("state", ["", "x", "s" * 300, "%00" * 20, "*" * 40, "upstream-connect:" + "a" * 40,
                                   "../" * 10 + "a" * 20])
def test_the_callback_refuses_hostile_states(auth_gateway, signed_in, state):
    answer = httpx.get(f"{auth_gateway.url}/oauth/upstream/recorder/callback", params={"state": state, "code": "c"},
                       headers={"cookie": session_cookie(signed_in["admin"])[1]}, timeout=10, follow_redirects=False)
    assert answer.status_code == 400 and "location" not in answer.headers


@pytest.fixture(scope="module")
def oauth_gateway(tmp_path_factory, recorder):
    """One server with per-user upstream tokens (static endpoints: nothing is contacted here)."""
    from tests.e2e.conftest import ADMIN_PASSWORD, local_accounts, wait_for_login_app
    from tests.support.gateway import run_gateway, server_entry
    servers = [server_entry("svc", recorder.url, upstream_oauth={
                   "client_id": "gw-svc", "authorize_url": "http://127.0.0.1:9/authorize",
                   "token_url": "http://127.0.0.1:9/token"}),
               server_entry("plain", recorder.url)]
    with run_gateway(tmp_path_factory.mktemp("gw-conn"), servers,
                     auth={"enabled": True, "provider_type": "local", "local": local_accounts()},
                     env={"ADMIN_USER": "admin", "ADMIN_PASSWORD": ADMIN_PASSWORD}) as gw:
        wait_for_login_app(gw)
        yield gw


def test_disconnecting_tells_nothing_about_servers_one_may_not_use(oauth_gateway):
    """dana may use neither svc nor plain: a disconnect of svc (which has per-user tokens), of
    plain (which has none) and of an unknown name must look the same."""
    from tests.e2e.conftest import ACCOUNTS
    from tests.support.login import cookie_header, login_local
    dana = cookie_header(login_local(oauth_gateway.url, "dana", ACCOUNTS["dana"][0]))
    answers = {name: httpx.delete(f"{oauth_gateway.url}/api/connections/{name}", headers=dana, timeout=10)
               for name in ("svc", "plain", "nosuch")}
    statuses = {name: answer.status_code for name, answer in answers.items()}
    assert len(set(statuses.values())) == 1 and statuses["svc"] in (403, 404), statuses
    bodies = {answer.text.replace(name, "NAME") for name, answer in answers.items()}
    assert len(bodies) == 1, bodies
    listed = httpx.get(f"{oauth_gateway.url}/api/connections", headers=dana, timeout=10).json()["connections"]
    assert listed == []
