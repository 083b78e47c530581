"""MCP session hijack: a session id presented by another identity is refused on every method —
including every other spelling of the same id that the upstream would read as that session
(the Python SDK parses it with UUID(hex=...) and takes the last of repeated parameters)."""

from __future__ import annotations

import json
import threading
import time
import uuid

import httpx
import pytest

from mcp_gateway.routing import RouteError
from mcp_gateway.upstream import session_id_from_query
from tests.security.hostile import assert_json_refusal, cookie, request, session_cookie, sse_stream

pytestmark = pytest.mark.timeout(60)

INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
ACCEPT = {"accept": "application/json, text/event-stream"}


def spellings(session_id: str) -> dict[str, str]:
    """Queries naming `session_id` in ways the upstream reads as that same session."""
    as_uuid = uuid.UUID(hex=session_id)
    return {
        "exact": f"session_id={session_id}",
        "upper-case": f"session_id={session_id.upper()}",
        "dashed": f"session_id={as_uuid}",
        "braces": f"session_id=%7B{session_id}%7D",
        "urn": f"session_id=urn:uuid:{as_uuid}",
        "own-first-victim-last": f"session_id={uuid.uuid4().hex}&session_id={session_id}",
        "victim-twice": f"session_id={session_id}&session_id={session_id}",
        "encoded-name": f"session%5Fid={session_id}",
        "encoded-value": f"session_id=%{ord(session_id[0]):02x}{session_id[1:]}",
        "plus-padded": f"session_id=+{session_id}",
        "indexed": f"session_id[]={session_id}",
        "typescript-name": f"sessionId={session_id}",
    }


SPELLINGS = list(spellings(uuid.uuid4().hex))


def post_spelled(gw, endpoint: str, spelling: str, token: str) -> httpx.Response:
    """POST to the session `endpoint` names, with its session id spelled another way."""
    path, _, query = endpoint.partition("?")
    return httpx.post(f"{gw.url}{path}?{spellings(query.split('=', 1)[1])[spelling]}", json=INIT,
                      headers=cookie(token), timeout=10)


@pytest.mark.parametrize("spelling", SPELLINGS)
def test_another_identity_cannot_post_into_an_sse_session_under_any_spelling(auth_gateway, signed_in, spelling):
    with sse_stream(auth_gateway, signed_in["admin"]) as endpoint:
        hijack = post_spelled(auth_gateway, endpoint, spelling, signed_in["dana"])
        assert hijack.status_code in (400, 403), f"{spelling}: {hijack.status_code} {hijack.text[:200]}"
        assert hijack.headers["content-type"] == "application/json"
        own = httpx.post(f"{auth_gateway.url}{endpoint}", json=INIT, headers=cookie(signed_in["admin"]), timeout=10)
        assert own.status_code == 202, "the owner lost the session"


@pytest.mark.parametrize("spelling", ["upper-case", "dashed"])
def test_the_owner_may_use_any_spelling_of_the_same_session(auth_gateway, signed_in, spelling):
    with sse_stream(auth_gateway, signed_in["admin"]) as endpoint:
        own = post_spelled(auth_gateway, endpoint, spelling, signed_in["admin"])
        assert own.status_code == 202, own.text


def test_an_sse_stream_cannot_be_reopened_with_another_identitys_session_id(auth_gateway, signed_in):
    with sse_stream(auth_gateway, signed_in["admin"]) as endpoint:
        query = endpoint.partition("?")[2]
        stolen = httpx.get(f"{auth_gateway.sse_url('currenttime')}?{query}", headers=cookie(signed_in["dana"]),
                           timeout=10)
        assert stolen.status_code == 403


def test_an_unauthenticated_post_into_an_sse_session_is_refused(auth_gateway, signed_in):
    with sse_stream(auth_gateway, signed_in["admin"]) as endpoint:
        assert httpx.post(f"{auth_gateway.url}{endpoint}", json=INIT, timeout=10).status_code == 401


def test_a_refused_hijack_never_reaches_the_victims_stream(auth_gateway, signed_in):
    """Nothing the hijacker sent shows up on the owner's stream."""
    events: list[str] = []
    with httpx.Client(timeout=10) as http:
        with http.stream("GET", auth_gateway.sse_url("currenttime"), headers=cookie(signed_in["admin"])) as stream:
            lines = stream.iter_lines()
            endpoint = next(line[5:].strip() for line in lines if line.startswith("data:"))
            time.sleep(0.3)

            def read() -> None:
                try:
                    for line in lines:
                        if line.startswith("data:"):
                            events.append(line)
                except httpx.HTTPError:
                    pass  # the stream is closed when the test ends

            reader = threading.Thread(target=read, daemon=True)
            reader.start()
            path, _, query = endpoint.partition("?")
            victim = query.split("=", 1)[1]
            for query in spellings(victim).values():
                marker = {"jsonrpc": "2.0", "id": "hijacked", "method": "ping"}
                httpx.post(f"{auth_gateway.url}{path}?{query}", json=marker, headers=cookie(signed_in["dana"]),
                           timeout=10)
            own = http.post(f"{auth_gateway.url}{endpoint}", json={"jsonrpc": "2.0", "id": "own", "method": "ping"},
                            headers=cookie(signed_in["admin"]))
            assert own.status_code == 202
            deadline = time.monotonic() + 5
            while not any('"own"' in event for event in events) and time.monotonic() < deadline:
                time.sleep(0.05)
    assert any('"own"' in event for event in events), events
    assert not any("hijacked" in event for event in events), events


def _streamable_session(gw, token: str) -> str:
    response = httpx.post(gw.streamable_url("currenttime"), json=INIT, headers={**cookie(token), **ACCEPT}, timeout=10)
    assert response.status_code == 200, response.text
    return response.headers["mcp-session-id"]


@pytest.mark.parametrize("value", ["{sid}", " {sid} ", "\t{sid}", "{sid}\t", "{upper}"],
                         ids=["exact", "spaces", "leading-tab", "trailing-tab", "upper-case"])
@pytest.mark.parametrize("method", ["POST", "GET", "DELETE"])
def test_another_identity_cannot_use_a_streamable_session_under_any_spelling(auth_gateway, signed_in, value, method):
    session_id = _streamable_session(auth_gateway, signed_in["admin"])
    header = value.format(sid=session_id, upper=session_id.upper())
    answer = request(auth_gateway.port, method, "/api/streamable/currenttime", [
        session_cookie(signed_in["dana"]), ("Accept", "application/json, text/event-stream"),
        ("Content-Type", "application/json"), ("Mcp-Protocol-Version", "2025-06-18"), ("Mcp-Session-Id", header)],
        json.dumps({"jsonrpc": "2.0", "id": 2, "method": "ping"}).encode() if method == "POST" else b"")
    # refused by the gateway, or (another session id altogether) unknown to the upstream
    assert answer.status in (403, 404), answer.head
    assert b'"result"' not in answer.body


def test_two_streamable_session_ids_are_refused(auth_gateway, signed_in):
    session_id = _streamable_session(auth_gateway, signed_in["dana"])
    answer = request(auth_gateway.port, "POST", "/api/streamable/currenttime", [
        session_cookie(signed_in["dana"]), ("Accept", "application/json, text/event-stream"),
        ("Content-Type", "application/json"), ("Mcp-Session-Id", session_id), ("Mcp-Session-Id", session_id)],
        json.dumps({"jsonrpc": "2.0", "id": 2, "method": "ping"}).encode())
    assert_json_refusal(answer, 400)


SID = "0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize("query,canonical", [
    (f"session_id={SID}", SID),
    (f"session_id={SID.upper()}", SID),
    (f"session_id={uuid.UUID(hex=SID)}", SID),
    (f"x=1&session_id={SID}&y=2", SID),
    (f"sessionId={SID}", SID),
    ("sessionId=3f1c-not-a-uuid", "3f1c-not-a-uuid"),
    ("x=1", None),
    ("", None),
])
def test_session_ids_are_read_in_one_canonical_form(query, canonical):
    assert session_id_from_query(query) == canonical


@pytest.mark.parametrize("query", [
    f"session_id={SID}&session_id={SID}", f"session_id=a&sessionId={SID}", f"session%5Fid={SID}",
    f"session_id[]={SID}", f"session_id[0]={SID}", f"sessionId[x]={SID}",
    f"session_id=%7B{SID}%7D", f"session_id=urn:uuid:{SID}", f"session_id=%30{SID[1:]}", f"session_id=+{SID}",
    "session_id=", "session_id=" + "a" * 129, "session_id=a/../b", "session_id=a%00",
])
def test_session_ids_two_readers_could_read_differently_are_refused(query):
    with pytest.raises(RouteError) as refused:
        session_id_from_query(query)
    assert refused.value.status == 400
