"""Under /api/execute/{s} only the SSE stream (GET) and the message endpoint the upstream
announced (POST, with the session id of a stream the caller owns) are routed. Every other path
and method there is refused — so an SDK server's Streamable endpoint (`/mcp`) is not reachable
around the session binding and tools/list narrowing of /api/streamable/{s} — with auth on and
with auth off."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from tests.e2e.conftest import open_gateway, upstream_foo  # noqa: F401  (fixtures)
from tests.security.hostile import assert_json_refusal, cookie, request, session_cookie, sse_stream

pytestmark = pytest.mark.timeout(90)

INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
PING = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "ping"}).encode()
ACCEPT = ("Accept", "application/json, text/event-stream")
SID = "5e551d" + "0" * 26  # no stream announced it; fixed, as test ids must match in every pytest-xdist worker

# (method, path under /api/execute/recorder, status): nothing of it reaches the upstream.
NOT_ROUTED = [
    ("POST", "/mcp", 404),
    ("POST", f"/mcp?session_id={SID}", 404),
    ("GET", "/mcp", 404),
    ("DELETE", "/mcp", 404),
    ("GET", "/messages/", 404),
    ("GET", f"/messages/?session_id={SID}", 404),
    ("DELETE", f"/messages/?session_id={SID}", 404),
    ("HEAD", "/anything", 404),
    ("OPTIONS", "/messages/", 404),
    ("PUT", "/messages/", 404),
    ("POST", "/messages/", 404),                       # no session named
    ("POST", f"/messages/?session_id={SID}", 404),     # a session no stream announced
    ("POST", f"/admin/reset?session_id={SID}", 404),
    ("POST", f"/sse/x?session_id={SID}", 404),
    ("POST", "/sse", 405),
    ("POST", "", 405),
    ("PUT", "/sse", 405),
    ("DELETE", "/sse", 405),
    ("DELETE", "", 405),
    ("HEAD", "/sse", 405),
    ("POST", "/messages/../mcp", 400),
    ("POST", "/messages/%2e%2e/mcp", 400),
    ("POST", "/messages/..%2fmcp", 400),
]
IDS = [f"{m} {p or '(root)'}" for m, p, _ in NOT_ROUTED]


def _refused_before_the_upstream(gw, recorder, headers, method, path, status) -> None:
    before = len(recorder.requests)
    answer = request(gw.port, method, f"/api/execute/recorder{path}", headers, PING if method == "POST" else b"")
    if method == "HEAD":
        assert answer.status == status, answer.head
    else:
        assert_json_refusal(answer, status)
    time.sleep(0.05)
    assert len(recorder.requests) == before, f"{method} {path} reached the upstream"


@pytest.mark.parametrize("method,path,status", NOT_ROUTED, ids=IDS)
def test_other_paths_and_methods_under_execute_are_refused_with_auth_on(auth_gateway, recorder, signed_in,
                                                                        method, path, status):
    _refused_before_the_upstream(auth_gateway, recorder, [session_cookie(signed_in["admin"])], method, path, status)


@pytest.mark.parametrize("method,path,status", NOT_ROUTED, ids=IDS)
def test_other_paths_and_methods_under_execute_are_refused_with_auth_off(open_gateway, recorder,  # noqa: F811
                                                                         method, path, status):
    _refused_before_the_upstream(open_gateway, recorder, [], method, path, status)


def _streamable_session(gw, token: str) -> str:
    response = httpx.post(gw.streamable_url("currenttime"), json=INIT,
                          headers={**cookie(token), "accept": ACCEPT[1]}, timeout=10)
    assert response.status_code == 200, response.text
    return response.headers["mcp-session-id"]


@pytest.mark.parametrize("method", ["POST", "GET", "DELETE"])
@pytest.mark.parametrize("path", ["/mcp", "/mcp/", "/messages/../mcp"])
def test_another_users_streamable_session_is_not_reachable_under_execute(auth_gateway, signed_in, method, path):
    """The issue's attack: the SDK server's /mcp under /api/execute/{s}, with the victim's Mcp-Session-Id."""
    victim = _streamable_session(auth_gateway, signed_in["admin"])
    answer = request(auth_gateway.port, method, f"/api/execute/currenttime{path}", [
        session_cookie(signed_in["dana"]), ACCEPT, ("Content-Type", "application/json"),
        ("Mcp-Protocol-Version", "2025-06-18"), ("Mcp-Session-Id", victim)], PING if method == "POST" else b"")
    assert answer.status in (400, 404), answer.head
    assert b'"result"' not in answer.body
    still = httpx.post(auth_gateway.streamable_url("currenttime"), json={"jsonrpc": "2.0", "id": 5, "method": "ping"},
                       headers={**cookie(signed_in["admin"]), "accept": ACCEPT[1], "mcp-session-id": victim,
                                "mcp-protocol-version": "2025-06-18"}, timeout=10)
    assert still.status_code == 200, "the victim's session was ended or disturbed"


@pytest.mark.parametrize("path", ["/mcp", "/messages", "/messages/x", "/sse/messages/", "/Messages/"])
def test_the_owner_of_a_stream_may_post_only_to_the_path_it_announced(auth_gateway, signed_in, path):
    with sse_stream(auth_gateway, signed_in["admin"]) as endpoint:
        announced, _, query = endpoint.partition("?")
        assert announced == "/api/execute/currenttime/messages/"
        elsewhere = httpx.post(f"{auth_gateway.url}/api/execute/currenttime{path}?{query}", json=INIT,
                               headers=cookie(signed_in["admin"]), timeout=10)
        assert elsewhere.status_code == 404, elsewhere.text
        assert elsewhere.headers["content-type"] == "application/json"
        own = httpx.post(f"{auth_gateway.url}{endpoint}", json=INIT, headers=cookie(signed_in["admin"]), timeout=10)
        assert own.status_code == 202


async def test_the_sse_transport_still_works_end_to_end_with_auth_off(open_gateway):  # noqa: F811
    from tests.support.mcp_clients import sse_session
    async with sse_session(open_gateway.sse_url("currenttime")) as client:
        tools = await client.list_tools()
        assert any(tool.name == "current_time_by_timezone" for tool in tools.tools)
