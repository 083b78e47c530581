"""Server names cannot be told apart before sign-in: with auth on, an unauthenticated request to
/api/{execute|streamable}/{name} gets the same 401 whether `name` exists, is disabled or is
unknown. A signed-in caller with no scope at all on `name` gets the same 403 either way; callers
who may know the server (any scope on it, or a registry scope) see 404 / 503 as before."""

from __future__ import annotations

import json

import pytest

from tests.support.accounts import account_hash
from tests.e2e.conftest import ADMIN_PASSWORD, wait_for_login_app
from tests.security.hostile import RawAnswer, request, session_cookie
from tests.support.gateway import run_gateway, server_entry
from tests.support.login import login_local

pytestmark = pytest.mark.timeout(90)

NAMES = ["alive", "other", "off", "nope", "zz-never-registered"]
ACCOUNTS = {"nobody": ["no-such-group"], "alice": ["mcp-server-alive"], "bob": ["mcp-user"],
            "olga": ["mcp-server-off"]}
INIT = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}).encode()
REQUESTS = [  # (method, path template, body)
    ("GET", "/api/execute/{name}/sse", b""),
    ("GET", "/api/execute/{name}", b""),
    ("POST", "/api/streamable/{name}", INIT),
    ("GET", "/api/streamable/{name}", b""),
    ("DELETE", "/api/streamable/{name}", b""),
]
REQUEST_IDS = [f"{m} {p}" for m, p, _ in REQUESTS]


@pytest.fixture(scope="module")
def gateway(tmp_path_factory, recorder):
    accounts = [{"username": user, "password_hash": account_hash(f"{user}-password"), "groups": groups}
                for user, groups in ACCOUNTS.items()]
    servers = [server_entry("alive", recorder.url), server_entry("other", recorder.url),
               server_entry("off", recorder.url, enabled=False)]
    with run_gateway(tmp_path_factory.mktemp("gw-enum"), servers,
                     auth={"enabled": True, "provider_type": "local", "local": {"accounts": accounts}},
                     env={"ADMIN_USER": "admin", "ADMIN_PASSWORD": ADMIN_PASSWORD}) as gw:
        wait_for_login_app(gw)
        tokens = {user: login_local(gw.url, user, f"{user}-password") for user in ACCOUNTS}
        tokens["admin"] = login_local(gw.url, "admin", ADMIN_PASSWORD)
        yield gw, tokens


def _shape(answer: RawAnswer, name: str) -> tuple:
    """What a caller sees, with the server's name (it is in the resource URL) taken out."""
    headers = tuple(sorted((line.split(":", 1)[0].lower(), line.split(":", 1)[1].strip().replace(name, "{name}"))
                     for line in answer.head.split("\r\n")[1:] if line.split(":", 1)[0].lower() not in ("date", "content-length")))
    return answer.status, headers, answer.body.decode().replace(name, "{name}")


def _answers(gw, method: str, template: str, body: bytes, headers: list[tuple[str, str]]) -> dict[str, tuple]:
    return {name: _shape(request(gw.port, method, template.format(name=name),
                                 [*headers, ("Content-Type", "application/json"),
                                  ("Accept", "application/json, text/event-stream")], body), name)
            for name in NAMES}


@pytest.mark.parametrize("method,template,body", REQUESTS, ids=REQUEST_IDS)
@pytest.mark.parametrize("credentials", [[], [("Authorization", "Bearer not-a-token")],
                                         [("Cookie", "mcp_gateway_session=forged")]],
                         ids=["none", "bad-bearer", "bad-cookie"])
def test_unauthenticated_callers_get_the_same_401_for_every_name(gateway, method, template, body, credentials):
    gw, _ = gateway
    answers = _answers(gw, method, template, body, credentials)
    assert {a[0] for a in answers.values()} == {401}, answers
    assert len(set(answers.values())) == 1, answers
    challenge = dict(answers["nope"][1])["www-authenticate"]
    assert "resource_metadata=" in challenge and "/.well-known/oauth-protected-resource/api/" in challenge


def test_a_browser_is_sent_to_the_login_page_the_same_way_for_every_name(gateway):
    gw, _ = gateway
    answers = {name: _shape(request(gw.port, "GET", f"/api/execute/{name}/sse", [("Accept", "text/html")]), name)
               for name in NAMES}
    assert {a[0] for a in answers.values()} == {302}
    assert len(set(answers.values())) == 1, answers


@pytest.mark.parametrize("transport", ["execute", "streamable"])
def test_the_metadata_named_in_the_401_answers_alike_for_every_name(gateway, transport):
    gw, _ = gateway
    answers = {name: _shape(request(gw.port, "GET", f"/.well-known/oauth-protected-resource/api/{transport}/{name}"),
                            name) for name in NAMES}
    assert {a[0] for a in answers.values()} == {200}, answers
    assert len(set(answers.values())) == 1, answers


@pytest.mark.parametrize("method,template,body", REQUESTS, ids=REQUEST_IDS)
@pytest.mark.parametrize("user", ["nobody", "alice"])
def test_a_caller_without_any_scope_on_a_name_gets_the_same_403_whether_it_exists_or_not(
        gateway, user, method, template, body):
    gw, tokens = gateway
    answers = _answers(gw, method, template, body, [session_cookie(tokens[user])])
    unknown_to_them = [name for name in NAMES if not (user == "alice" and name == "alive")]
    assert {answers[name][0] for name in unknown_to_them} == {403}, answers
    assert len({answers[name] for name in unknown_to_them}) == 1, answers


@pytest.mark.parametrize("user", ["admin", "bob"])
def test_callers_who_may_know_the_servers_see_unknown_and_disabled(gateway, user):
    gw, tokens = gateway
    for name, status in [("nope", 404), ("zz-never-registered", 404), ("off", 503)]:
        answer = request(gw.port, "GET", f"/api/execute/{name}/sse", [session_cookie(tokens[user])])
        assert answer.status == status, (user, name, answer.head)
        assert json.loads(answer.body)["status"] == status


def test_a_scope_on_a_disabled_server_shows_it_disabled(gateway):
    gw, tokens = gateway
    assert request(gw.port, "GET", "/api/execute/off/sse", [session_cookie(tokens["olga"])]).status == 503
    assert request(gw.port, "GET", "/api/execute/nope/sse", [session_cookie(tokens["olga"])]).status == 403
