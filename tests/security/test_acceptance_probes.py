"""What a black-box acceptance run against the real gateway found beyond the other suites:
answers to HEAD that carried a body (a kept-alive connection then reads those bytes as its next
answer), `_` spellings of headers the gateway reads or injects reaching the upstream (a WSGI
upstream reads `Mcp_Session_Id` as `Mcp-Session-Id`), and JSON-RPC ids that not every parser
reads alike."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from mcp_gateway.header_policy import normalise
from tests.e2e.conftest import ACCOUNTS, ADMIN_PASSWORD, local_accounts, test_policy_dir
from tests.security.hostile import (
    assert_json_refusal,
    exchange,
    parse_answer,
    request,
    session_cookie,
    sse_stream,
)
from tests.support.gateway import run_gateway, server_entry
from tests.support.login import login_local, wait_for_login_app
from tests.support.compressing_upstream import compressing_upstream
from tests.support.upstreams import mcp_upstream

pytestmark = pytest.mark.timeout(60)

PING = b'{"jsonrpc":"2.0","id":1,"method":"ping"}'
HEALTH_PROBE = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"

# Every family of answers the gateway writes itself, and one the login app writes.
HEAD_TARGETS = {
    "health": ("/healthz", None),
    "unknown path": ("/nothing-here", None),
    "api, signed out": ("/api/servers", None),
    "streamable 405": ("/api/streamable/currenttime", None),
    "sse stream 405": ("/api/execute/currenttime/sse", None),
    "messages 404": ("/api/execute/currenttime/messages/?session_id=0123456789abcdef0123456789abcdef", "admin"),
    "bad server name": ("/api/streamable/CurrentTime", None),
    "resource metadata": ("/.well-known/oauth-protected-resource/api/streamable/currenttime", None),
    "metadata 404": ("/.well-known/oauth-protected-resource/elsewhere", None),
    "registry list": ("/api/servers", "admin"),
    "registry entry": ("/api/servers/currenttime", "admin"),
    "registry 403": ("/api/servers/currenttime", "rita"),
    "login page": ("/oauth/login", None),
    "authorization-server metadata": ("/.well-known/oauth-authorization-server", None),
}


@pytest.mark.parametrize("name", list(HEAD_TARGETS))
def test_an_answer_to_head_carries_no_body_and_the_connection_stays_in_step(auth_gateway, signed_in, name):
    target, user = HEAD_TARGETS[name]
    cookie = f"Cookie: mcp_gateway_session={signed_in[user]}\r\n" if user else ""
    head = f"HEAD {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n{cookie}\r\n".encode()
    raw = exchange(auth_gateway.port, head + HEALTH_PROBE)
    first, _, after = raw.partition(b"\r\n\r\n")
    assert first.startswith(b"HTTP/1.1 ") and int(first.split()[1]) < 500, first
    # The next bytes on the connection are the second answer, not the first one's body.
    assert after.startswith(b"HTTP/1.1 200"), (first + b"\r\n\r\n" + after)[:600]
    second = parse_answer(after)
    assert second.json()["status"] == "ok"


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT-LIKE"])
def test_healthz_answers_get_and_head_only(auth_gateway, method):
    answer = httpx.request(method, f"{auth_gateway.url}/healthz", timeout=10)

    assert answer.status_code == 405 and answer.headers["allow"] == "GET, HEAD", answer.text
    assert answer.headers["content-type"].startswith("application/json") and answer.json()["message"]


# Headers the gateway reads, frames the request with or sets itself, in spellings a WSGI upstream
# reads as the header itself.
SHADOW_SPELLINGS = [
    ("Mcp_Session_Id", "mcp-session-id"), ("MCP_SESSION_ID", "mcp-session-id"), ("mcp_session_id", "mcp-session-id"),
    ("Mcp-Session_Id", "mcp-session-id"), ("Mcp_Protocol_Version", "mcp-protocol-version"),
    ("Last_Event_ID", "last-event-id"), ("Content_Type", "content-type"), ("Content_Length", "content-length"),
    ("Transfer_Encoding", "transfer-encoding"), ("Proxy_Connection", "proxy-connection"), ("Keep_Alive", "keep-alive"),
]


@pytest.mark.parametrize("spelling,header", SHADOW_SPELLINGS)
def test_underscore_spellings_of_headers_the_gateway_reads_never_reach_the_upstream(auth_gateway, recorder, signed_in,
                                                                                    spelling, header):
    answer = request(auth_gateway.port, "POST", "/api/streamable/recorder",
                     [session_cookie(signed_in["admin"]), (spelling, "another-identitys-value")], PING)
    assert answer.status == 200, answer.head
    seen = recorder.requests[-1].headers
    assert not [name for name in seen if "_" in name and normalise(name) == header], seen
    assert "another-identitys-value" not in seen.values()


def test_the_dashed_mcp_headers_still_reach_the_upstream(auth_gateway, recorder, signed_in):
    answer = request(auth_gateway.port, "POST", "/api/streamable/recorder",
                     [session_cookie(signed_in["admin"]), ("MCP-Protocol-Version", "2025-06-18"),
                      ("Last-Event-ID", "7")], PING)
    assert answer.status == 200, answer.head
    seen = recorder.requests[-1].headers
    assert seen["mcp-protocol-version"] == "2025-06-18" and seen["last-event-id"] == "7"


@pytest.fixture(scope="module")
def compressing():
    with compressing_upstream() as upstream:
        yield upstream


@pytest.fixture(scope="module")
def probe_gateway(tmp_path_factory, recorder, compressing):
    """Local accounts; `currenttime` is the demo server with resumable streams (an event store),
    `twin` the same upstream under a second name (only admin may use it), `currenttime-json` an
    upstream that compresses its event streams, `keyed` the recorder behind a per-server
    credential header."""
    tmp = tmp_path_factory.mktemp("gw-probes")
    with mcp_upstream(tmp, name="currenttime", module="tests.support.resumable_upstream") as upstream:
        servers = [server_entry("currenttime", upstream.url),
                   server_entry("twin", upstream.url),  # the same upstream under a second name
                   # tina may call only current_time_by_timezone on it (tests/e2e/conftest.py)
                   server_entry("currenttime-json", compressing.url),
                   server_entry("keyed", recorder.url, upstream_header="X-Api-Key",
                                upstream_value_env="MCP_UPSTREAM_PROBE")]
        with run_gateway(tmp, servers, auth={"enabled": True, "provider_type": "local", "local": local_accounts()},
                         gateway={"policy_dir": str(test_policy_dir(tmp))},
                         env={"ADMIN_USER": "admin", "ADMIN_PASSWORD": ADMIN_PASSWORD,
                              "MCP_UPSTREAM_PROBE": "the-configured-key"}) as gw:
            wait_for_login_app(gw)
            yield gw


@pytest.mark.parametrize("spelling", ["X_Api_Key", "x_api_key", "X_API_KEY", "X-Api_Key", "X_Api-Key"])
def test_other_spellings_of_the_injected_credential_header_never_reach_the_upstream(probe_gateway, recorder,
                                                                                    spelling):
    admin = login_local(probe_gateway.url, "admin", ADMIN_PASSWORD)
    answer = request(probe_gateway.port, "POST", "/api/streamable/keyed",
                     [session_cookie(admin), ("X-Api-Key", "chosen-by-the-client"),
                      (spelling, "chosen-by-the-client")], PING)
    assert answer.status == 200, answer.head
    seen = recorder.requests[-1].headers
    assert [value for name, value in seen.items() if normalise(name) == "x-api-key"] == ["the-configured-key"], seen


def sse_events(text: str) -> list[tuple[str | None, str]]:
    """(id, data) of each event of an SSE body."""
    events = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.split("\n") if ": " in line)
        if fields:
            events.append((fields.get("id"), fields.get("data", "")))
    return events


def test_a_resumed_streamable_stream_replays_tools_list_narrowed(probe_gateway):
    """tina may call only current_time_by_timezone: the tools/list answer a GET with Last-Event-ID
    replays (the specification's resumability) is narrowed like the answer to the POST."""
    tina = login_local(probe_gateway.url, "tina", ACCOUNTS["tina"][0])
    url = probe_gateway.streamable_url("currenttime")
    with httpx.Client(cookies={"mcp_gateway_session": tina}, timeout=10,
                      headers={"accept": "application/json, text/event-stream"}) as http:
        opened = http.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "probe", "version": "1"}}})
        assert opened.status_code == 200, opened.text
        session = {"mcp-session-id": opened.headers["mcp-session-id"], "mcp-protocol-version": "2025-11-25"}
        http.post(url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=session)
        listed = http.post(url, json={"jsonrpc": "2.0", "id": 2, "method": "tools/list"}, headers=session)
        assert "countdown" not in listed.text and "current_time_by_timezone" in listed.text
        # The POST's stream opens with a priming event (an id, no data): resume right after it.
        priming = next(event_id for event_id, data in sse_events(listed.text) if event_id and not data.strip())
        replayed = ""
        with http.stream("GET", url, headers={**session, "last-event-id": priming,
                                              "accept": "text/event-stream"}) as stream:
            assert stream.status_code == 200
            for line in stream.iter_lines():
                replayed += line + "\n"
                if '"id":2' in line.replace(" ", ""):
                    break
    assert "current_time_by_timezone" in replayed
    assert "countdown" not in replayed


UNSAFE_IDS = {"2**53": 2**53, "-(2**53)": -(2**53), "2**53 + 1": 2**53 + 1, "2**64": 2**64, "10**30": 10**30}


@pytest.mark.parametrize("name", list(UNSAFE_IDS))
def test_integer_ids_not_every_parser_reads_alike_are_refused(auth_gateway, recorder, signed_in, name):
    before = len(recorder.requests)
    body = json.dumps({"jsonrpc": "2.0", "id": UNSAFE_IDS[name], "method": "tools/list"}).encode()
    answer = request(auth_gateway.port, "POST", "/api/streamable/recorder", [session_cookie(signed_in["admin"])], body)
    assert_json_refusal(answer, 400)
    time.sleep(0.05)
    assert len(recorder.requests) == before


@pytest.mark.parametrize("request_id", [2**53 - 1, -(2**53 - 1), 0])
def test_integer_ids_within_the_safe_range_pass(auth_gateway, recorder, signed_in, request_id):
    body = json.dumps({"jsonrpc": "2.0", "id": request_id, "method": "ping"}).encode()
    answer = request(auth_gateway.port, "POST", "/api/streamable/recorder", [session_cookie(signed_in["admin"])], body)
    assert answer.status == 200, answer.head
    assert recorder.requests[-1].body == body


INITIALIZE = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "probe", "version": "1"}}}
CALL = {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": "current_time_by_timezone", "arguments": {}}}
STREAMABLE = {"accept": "application/json, text/event-stream", "mcp-protocol-version": "2025-06-18"}


def test_a_streamable_session_is_usable_only_on_the_server_it_was_opened_on(probe_gateway):
    """admin opens a session on `twin`; dana, who may use `currenttime` — the same upstream —
    presents its id there: the upstream would accept it, the gateway does not (no binding on
    first claim). admin herself may not carry it to another server either."""
    admin = login_local(probe_gateway.url, "admin", ADMIN_PASSWORD)
    dana = login_local(probe_gateway.url, "dana", ACCOUNTS["dana"][0])
    with httpx.Client(timeout=10, headers=STREAMABLE) as http:
        opened = http.post(probe_gateway.streamable_url("twin"), json=INITIALIZE, cookies={"mcp_gateway_session": admin})
        assert opened.status_code == 200, opened.text
        session = {"mcp-session-id": opened.headers["mcp-session-id"]}
        for token, server in ((dana, "currenttime"), (admin, "currenttime"), (dana, "twin")):
            for method in ("POST", "GET", "DELETE"):
                answer = http.request(method, probe_gateway.streamable_url(server), headers=session,
                                      cookies={"mcp_gateway_session": token},
                                      json=CALL if method == "POST" else None)
                assert answer.status_code in (403, 404), (server, method, answer.status_code, answer.text[:200])
                assert answer.headers["content-type"].startswith("application/json")
                assert '"result"' not in answer.text
        # The owner, on the server it was opened on: still hers.
        http.post(probe_gateway.streamable_url("twin"), json={"jsonrpc": "2.0", "method": "notifications/initialized"},
                  headers=session, cookies={"mcp_gateway_session": admin})
        used = http.post(probe_gateway.streamable_url("twin"), json=CALL, headers=session,
                         cookies={"mcp_gateway_session": admin})
        assert used.status_code == 200 and '"result"' in used.text, used.text[:300]


@pytest.mark.parametrize("session_id", ["0123456789abcdef0123456789abcdef", "made-up", "x" * 200],
                         ids=["hex", "made-up", "200-characters"])
def test_a_streamable_session_id_the_gateway_never_handed_out_reaches_no_upstream(probe_gateway, recorder, session_id):
    admin = login_local(probe_gateway.url, "admin", ADMIN_PASSWORD)
    before = len(recorder.requests)
    for method in ("POST", "GET", "DELETE"):
        answer = request(probe_gateway.port, method, "/api/streamable/keyed",
                         [session_cookie(admin), ("Mcp-Session-Id", session_id)], PING if method == "POST" else b"")
        assert_json_refusal(answer, 404)
    time.sleep(0.05)
    assert len(recorder.requests) == before


SID = "0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize("query", [f"session_id={SID}", f"sessionId={SID}", f"session_id[]={SID}",
                                   f"%73ession_id={SID}", f"x=1&session_id={SID}", "session_id=not%20one"])
@pytest.mark.parametrize("method", ["POST", "GET", "DELETE"])
def test_an_sse_session_named_on_streamable_http_is_refused(auth_gateway, recorder, signed_in, query, method):
    """An editor may point `streamable_path` at the SSE message endpoint: the query would then post
    into the SSE session it names, past the SSE session binding."""
    before = len(recorder.requests)
    answer = request(auth_gateway.port, method, f"/api/streamable/recorder?{query}",
                     [session_cookie(signed_in["admin"])], PING if method == "POST" else b"")
    assert_json_refusal(answer, 400)
    time.sleep(0.05)
    assert len(recorder.requests) == before


@pytest.mark.parametrize("target", ["/api/execute/recorder/sse", "/api/execute/recorder",
                                    f"/api/execute/recorder/messages/?session_id={SID}"])
@pytest.mark.parametrize("spelling", ["Mcp-Session-Id", "mcp-session-id", "MCP-SESSION-ID"])
def test_an_mcp_session_id_on_the_sse_transport_is_refused(auth_gateway, recorder, signed_in, target, spelling):
    """An editor may point `sse_path` at the Streamable endpoint: the header would then open the
    stream of the Streamable session it names, past the Streamable session binding."""
    before = len(recorder.requests)
    method = "POST" if "messages" in target else "GET"
    answer = request(auth_gateway.port, method, target, [session_cookie(signed_in["admin"]), (spelling, SID)],
                     PING if method == "POST" else b"")
    assert_json_refusal(answer, 400)
    time.sleep(0.05)
    assert len(recorder.requests) == before


def test_the_sse_transport_works_without_an_mcp_session_id(auth_gateway, signed_in):
    with sse_stream(auth_gateway, signed_in["admin"]) as endpoint:
        answer = request(auth_gateway.port, "POST", endpoint, [session_cookie(signed_in["admin"])], PING)
        assert answer.status == 202, answer.head


@pytest.mark.parametrize("method", ["post", "Post", "pOST"])
def test_a_method_in_another_case_reaches_the_upstream_as_the_method_decided_on(auth_gateway, recorder, signed_in,
                                                                               method):
    """mitmproxy reads any case as POST (and the body was inspected as a POST's): the upstream
    receives POST, never the client's spelling."""
    answer = request(auth_gateway.port, method, "/api/streamable/recorder", [session_cookie(signed_in["admin"])], PING)
    assert answer.status == 200, answer.head
    assert (recorder.requests[-1].method, recorder.requests[-1].body) == ("POST", PING)



@pytest.mark.parametrize("accept_encoding", ["gzip", "gzip, deflate, br", "*", None, "identity"])
def test_an_upstream_that_compresses_its_event_streams_gets_no_tools_list_past_the_narrowing(probe_gateway, compressing,
                                                                                           accept_encoding):
    """tina may call only current_time_by_timezone: a compressed event stream cannot be read to
    narrow its tools/list answer, so the upstream is asked for none (and one sent anyway is refused).
    This upstream frames its stream with Content-Length, which the narrowed answer no longer has."""
    tina = login_local(probe_gateway.url, "tina", ACCOUNTS["tina"][0])
    headers = {"accept": "application/json, text/event-stream"}
    if accept_encoding:
        headers["accept-encoding"] = accept_encoding
    with httpx.Client(timeout=10, cookies={"mcp_gateway_session": tina}) as http:
        answer = http.post(probe_gateway.streamable_url("currenttime-json"), headers=headers,
                           json={"jsonrpc": "2.0", "id": 3, "method": "tools/list"})
    assert answer.status_code == 200, answer.text[:300]
    assert "current_time_by_timezone" in answer.text and "countdown" not in answer.text
    assert compressing.encodings_asked[-1] == "identity"


def test_an_event_stream_compressed_against_the_gateways_request_is_refused(probe_gateway, compressing):
    tina = login_local(probe_gateway.url, "tina", ACCOUNTS["tina"][0])
    compressing.always = True
    try:
        with httpx.Client(timeout=10, cookies={"mcp_gateway_session": tina}) as http:
            answer = http.post(probe_gateway.streamable_url("currenttime-json"),
                               headers={"accept": "application/json, text/event-stream"},
                               json={"jsonrpc": "2.0", "id": 3, "method": "tools/list"})
    finally:
        compressing.always = False
    assert answer.status_code == 502, answer.text[:300]
    assert answer.json()["status"] == 502 and "countdown" not in answer.text
