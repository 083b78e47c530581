"""Hostile request lines and headers against the real gateway, signed in as an administrator
(so a request that slipped past a check would really be forwarded): each is refused with a
clear JSON answer and reaches no upstream, or reaches exactly the upstream it was decided for."""

from __future__ import annotations

import json
import socket
import time

import pytest

from tests.security.hostile import assert_json_refusal, exchange, parse_answer, request, session_cookie

pytestmark = pytest.mark.timeout(60)

PING = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "ping"}).encode()

# (method, target, status): refused before any upstream is contacted.
HOSTILE_TARGETS = [
    # dot segments, plain and encoded
    ("GET", "/api/execute/recorder/../currenttime/sse", 400),
    ("GET", "/api/execute/recorder/..%2f..%2fcurrenttime/sse", 400),
    ("GET", "/api/execute/recorder/%2e%2e/currenttime/sse", 400),
    ("GET", "/api/execute/recorder/%2E%2E/currenttime/sse", 400),
    ("GET", "/api/execute/recorder/.%2e/currenttime", 400),
    ("GET", "/api/execute/recorder/./sse", 400),
    ("GET", "/api/./execute/recorder/sse", 400),
    ("GET", "/api/execute/recorder/sse/..", 400),
    ("POST", "/api/streamable/recorder/../../streamable/currenttime", 400),
    ("GET", "/api/execute/recorder/messages/..%2f..%2f..%2fcurrenttime", 400),
    # encoded separators, double encoding, encoded NUL / # / ? / ;
    ("GET", "/api/execute/recorder%2fsse", 400),
    ("GET", "/api/execute/recorder%2Fsse", 400),
    ("GET", "/api/execute/recorder%5csse", 400),
    ("GET", "/api/execute/recorder%252e%252e/sse", 400),
    ("GET", "/api/execute/recorder%25%32%65/sse", 400),
    ("GET", "/api/execute/recorder%00/sse", 400),
    ("GET", "/api/execute/recorder%23/sse", 400),
    ("GET", "/api/execute/recorder%3f/sse", 400),
    ("GET", "/api/execute/recorder%3b/sse", 400),
    ("GET", "/api/execute/recorder/%u002e%u002e/sse", 400),
    ("GET", "/api/execute/recorder%", 400),
    ("GET", "/api/execute/%EF%BC%8Frecorder/sse", 400),
    ("GET", "/api/execute/recorder%c0%af/sse", 400),
    # backslashes, empty segments, matrix parameters
    ("GET", "/api/execute/recorder\\sse", 400),
    ("GET", "/api/execute/recorder\\..\\currenttime", 400),
    ("GET", "//api/execute/recorder/sse", 400),
    ("GET", "/api//execute/recorder/sse", 400),
    ("GET", "/api/execute//recorder/sse", 400),
    ("GET", "/api/execute/recorder//sse", 400),
    ("GET", "/api/execute/recorder;/sse", 400),
    ("GET", "/api/execute/recorder/sse;jsessionid=x", 400),
    ("GET", "/api/execute/recorder/..;/currenttime/sse", 400),
    ("POST", "/api/streamable/recorder;x=1", 400),
    # case and look-alikes: never a case-folded match
    ("GET", "/api/execute/RECORDER/sse", 400),
    ("GET", "/api/execute/Recorder/sse", 400),
    ("GET", "/api/execute/recorder\u0130/sse", 400),
    ("GET", "/api/execute/\uff52ecorder/sse", 400),
    ("GET", "/API/execute/recorder/sse", 404),
    ("GET", "/api/Execute/recorder/sse", 404),
    ("POST", "/api/STREAMABLE/recorder", 404),
    # sub-paths a transport does not have, other areas reached through dot segments
    ("POST", "/api/streamable/recorder/x", 404),
    ("POST", "/api/servers/recorder/../currenttime/toggle", 400),
    ("POST", "/api/servers/recorder%2ftoggle", 400),
    ("GET", "/.well-known/oauth-protected-resource/api/streamable/recorder/../currenttime", 400),
    ("GET", "/oauth/../api/streamable/recorder", 400),
    ("GET", "/oauth/%2e%2e/api/servers", 400),
    ("GET", "/healthz/../api/servers", 400),
    # request targets that are not an origin-form path
    ("GET", "http://evil.example/api/streamable/recorder", 400),
    ("GET", "https://127.0.0.1:1/api/streamable/recorder", 400),
    ("OPTIONS", "*", 400),
    ("GET", "api/servers", 400),
    ("GET", "/" + "a" * 5000, 414),
    # a session id two readers could take for different sessions
    ("POST", "/api/execute/recorder/messages/?session_id=x/../../y", 400),
]


@pytest.mark.parametrize("method,target,status", HOSTILE_TARGETS, ids=[f"{m} {t[:60]}" for m, t, _ in HOSTILE_TARGETS])
def test_hostile_request_targets_are_refused_and_forward_nothing(auth_gateway, recorder, signed_in, method, target,
                                                                  status):
    before = len(recorder.requests)
    answer = request(auth_gateway.port, method, target, [session_cookie(signed_in["admin"])],
                     PING if method == "POST" else b"")
    assert_json_refusal(answer, status)
    time.sleep(0.05)
    assert len(recorder.requests) == before, f"{target} reached an upstream"


@pytest.mark.parametrize("method,target,upstream_path", [
    ("POST", "/api/streamable/recorder", "/mcp"),
    # bytes the gateway does not decode travel as they are, to the same server
    ("GET", "/api/execute/recorder/sse?x=%c0%ae%c0%ae/x", "/sse?x=%c0%ae%c0%ae/x"),
    ("GET", "/api/execute/recorder/sse?x=%0d%0aHost:%20evil.example", "/sse?x=%0d%0aHost:%20evil.example"),
])
def test_what_passes_reaches_exactly_the_server_it_was_decided_for(auth_gateway, recorder, signed_in, method,
                                                                  target, upstream_path):
    answer = request(auth_gateway.port, method, target, [session_cookie(signed_in["admin"])],
                     PING if method == "POST" else b"")
    # The recorder answers JSON; the SSE stream must be an event stream, so its answer is refused
    # (502) — after the request reached the recorder, which is what this test is about.
    assert answer.status == (502 if target.startswith("/api/execute/") and method == "GET" else 200), answer.head
    seen = recorder.requests[-1]
    assert seen.path == upstream_path
    assert seen.headers["host"] == f"127.0.0.1:{recorder.port}"


@pytest.mark.parametrize("host", ["evil.example", "127.0.0.1:1", "localhost", "[::1]:22", "currenttime"])
def test_the_host_header_never_changes_routing(auth_gateway, recorder, upstream_sse_answers, signed_in, host):
    for spoofed in (host, f"127.0.0.1:{upstream_sse_answers.port}"):
        data = (f"POST /api/streamable/recorder HTTP/1.1\r\nHost: {spoofed}\r\nCookie: mcp_gateway_session="
                f"{signed_in['admin']}\r\nContent-Length: {len(PING)}\r\nConnection: close\r\n\r\n").encode() + PING
        answer = parse_answer(exchange(auth_gateway.port, data))
        assert answer.status == 200, answer.head
        assert recorder.requests[-1].headers["host"] == f"127.0.0.1:{recorder.port}"


def test_two_host_headers_do_not_change_routing(auth_gateway, recorder, signed_in):
    answer = request(auth_gateway.port, "POST", "/api/streamable/recorder",
                     [("Host", "evil.example"), session_cookie(signed_in["admin"])], PING)
    assert answer.status in (200, 400), answer.head
    if answer.status == 200:
        assert recorder.requests[-1].headers["host"] == f"127.0.0.1:{recorder.port}"


SPOOFED_FORWARDING = [("X-Forwarded-Host", "evil.example"), ("X-Forwarded-Proto", "https"),
                      ("X-Forwarded-Port", "443"), ("Forwarded", 'for=1.2.3.4;host=evil.example;proto=https'),
                      ("X-Original-Host", "evil.example"), ("X-Host", "evil.example")]


def test_forwarding_headers_never_change_the_public_urls_the_gateway_writes(auth_gateway, signed_in):
    public = auth_gateway.url
    unauthenticated = request(auth_gateway.port, "GET", "/api/execute/currenttime/sse", SPOOFED_FORWARDING)
    assert unauthenticated.status == 401
    assert unauthenticated.header("www-authenticate") == (
        f'Bearer resource_metadata="{public}/.well-known/oauth-protected-resource/api/execute/currenttime"')
    browser = request(auth_gateway.port, "GET", "/api/servers", [*SPOOFED_FORWARDING, ("Accept", "text/html")])
    assert browser.status == 302 and browser.header("location") == "/oauth/login?next=/api/servers"
    entry = request(auth_gateway.port, "GET", "/api/servers/currenttime",
                    [*SPOOFED_FORWARDING, session_cookie(signed_in["admin"])])
    assert entry.json()["endpoints"]["streamable"] == f"{public}/api/streamable/currenttime"
    metadata = request(auth_gateway.port, "GET", "/.well-known/oauth-protected-resource/api/streamable/currenttime",
                       SPOOFED_FORWARDING)
    assert metadata.json()["resource"] == f"{public}/api/streamable/currenttime"
    assert "evil.example" not in (unauthenticated.head + browser.head + entry.head + metadata.head)


def test_the_login_app_sees_the_real_client_address_not_a_spoofed_one(auth_gateway):
    answer = request(auth_gateway.port, "POST", "/oauth/login/local",
                     [("X-Forwarded-For", "203.0.113.77"), ("X-Real-IP", "203.0.113.78"),
                      ("Forwarded", "for=203.0.113.79"), ("Origin", auth_gateway.url),
                      ("Content-Type", "application/x-www-form-urlencoded")],
                     b"username=xff-probe&password=wrong&next=/")
    assert answer.status == 401
    deadline = time.monotonic() + 5
    while "user=xff-probe" not in auth_gateway.log and time.monotonic() < deadline:
        time.sleep(0.1)
    line = next(line for line in auth_gateway.log.splitlines() if "local login failed for user=xff-probe" in line)
    assert "client=127.0.0.1" in line and "203.0.113" not in line  # so throttling by address cannot be dodged


IDENTITY_HEADERS = [
    "X-User", "x-UsEr", "X-User-Id", "X-Groups", "X-Auth-Request-User", "X-Auth-Request-Email",
    "X-Auth-Request-Groups", "X-Forwarded-User", "X-Forwarded-Email", "X-Forwarded-Groups",
    "X-Forwarded-Preferred-Username", "X-Forwarded-Access-Token", "X-Forwarded-For", "X-Forwarded-Host",
    "X-Forwarded-Proto", "Forwarded", "X-Real-IP", "X-Remote-User", "Remote-User", "X-MCP-Gateway-User",
    "X-Amzn-Oidc-Identity", "X-Amzn-Oidc-Data", "X-Amzn-Oidc-Accesstoken", "X-Goog-Authenticated-User-Email",
    "X-Goog-Iap-Jwt-Assertion", "X-Ms-Client-Principal", "X-Ms-Client-Principal-Name", "Cf-Access-Jwt-Assertion",
    "Cf-Access-Authenticated-User-Email", "X-Client-Cert", "X-SSL-Client-Cert", "X-SSL-Client-S-DN",
    "X-Original-URL", "X-Original-Method", "X-Rewrite-URL", "X-HTTP-Method-Override", "X-HTTP-Method",
    "X-Method-Override", "Proxy-Authorization",
]


@pytest.mark.parametrize("name", IDENTITY_HEADERS)
def test_identity_and_override_headers_sent_by_the_client_never_reach_the_upstream(auth_gateway, recorder,
                                                                                   signed_in, name):
    answer = request(auth_gateway.port, "POST", "/api/streamable/recorder",
                     [session_cookie(signed_in["dana"]), (name, "admin")], PING)
    assert answer.status == 403  # dana may not use the recorder: the header did not make her admin
    answer = request(auth_gateway.port, "POST", "/api/streamable/recorder",
                     [session_cookie(signed_in["admin"]), (name, "mcp-admin")], PING)
    assert answer.status == 200, answer.head
    assert name.lower() not in recorder.requests[-1].headers


@pytest.mark.parametrize("cookies,status", [
    (["mcp_gateway_session={admin}", "mcp_gateway_session={admin}"], 401),
    (["mcp_gateway_session={admin}", "mcp_gateway_session={bob}"], 401),
    (["mcp_gateway_session={admin}; mcp_gateway_session={admin}"], 401),
    (["mcp_gateway_session={bob}", "other=1; mcp_gateway_session={admin}"], 401),
    (["MCP_GATEWAY_SESSION={admin}"], 401),
    (["mcp_gateway_session=\"{admin}\""], 401),
    (["mcp_gateway_session={admin}x"], 401),
    (["mcp_gateway_session= {admin}", "theme=dark"], 200),
    (["mcp_gateway_session={admin}", "theme=dark"], 200),
], ids=["same-twice", "two-users", "twice-in-one", "second-header", "name-case", "quoted", "suffixed",
        "leading-space", "two-headers"])
def test_cookie_header_tricks(auth_gateway, recorder, signed_in, cookies, status):
    headers = [("Cookie", value.format(**signed_in)) for value in cookies]
    answer = request(auth_gateway.port, "POST", "/api/streamable/recorder", headers, PING)
    assert answer.status == status, answer.head
    if status == 200:
        seen = recorder.requests[-1].headers
        assert signed_in["admin"] not in json.dumps(seen) and "theme=dark" in seen.get("cookie", "")


def test_two_authorization_headers_beside_a_valid_cookie_are_refused(auth_gateway, signed_in):
    answer = request(auth_gateway.port, "POST", "/api/streamable/recorder",
                     [session_cookie(signed_in["admin"]), ("Authorization", "Bearer a"), ("Authorization", "Bearer b")],
                     PING)
    assert_json_refusal(answer, 401)


QUERY_CREDENTIALS = ["access_token", "ACCESS_TOKEN", "token", "id_token", "api_key", "apikey", "session",
                     "mcp_gateway_session"]


@pytest.mark.parametrize("name", QUERY_CREDENTIALS)
@pytest.mark.parametrize("method,path", [("POST", "/api/streamable/recorder"), ("GET", "/api/execute/recorder/sse"),
                                         ("GET", "/api/servers")])
def test_credentials_in_the_query_string_are_refused_even_beside_a_valid_cookie(auth_gateway, recorder, signed_in,
                                                                                name, method, path):
    before = len(recorder.requests)
    answer = request(auth_gateway.port, method, f"{path}?x=1&{name}={signed_in['admin']}",
                     [session_cookie(signed_in["admin"])], PING if method == "POST" else b"")
    assert_json_refusal(answer, 401)
    assert "query string" in answer.json()["message"]
    assert len(recorder.requests) == before


@pytest.mark.parametrize("name", ["access%5Ftoken", "access%5ftoken", "ACCESS%5FTOKEN", "api%5fkey", "id%5Ftoken"])
def test_a_percent_encoded_credential_name_in_the_query_is_refused_too(auth_gateway, recorder, signed_in, name):
    """Upstreams decode parameter names (Starlette reads access%5Ftoken as access_token)."""
    before = len(recorder.requests)
    answer = request(auth_gateway.port, "POST", f"/api/streamable/recorder?{name}={signed_in['admin']}",
                     [session_cookie(signed_in["admin"])], PING)
    assert_json_refusal(answer, 401)
    assert len(recorder.requests) == before


@pytest.mark.parametrize("header", [
    "X-A: a\rX-User: admin", "X-A: a\x00b", "X-A: a\x0bb", "X-A: a\x0cb", "X-A: a\x7fb",
    "X-A: b\r\n X-User: admin",  # obsolete line folding
])
def test_control_characters_in_headers_are_refused(auth_gateway, recorder, signed_in, header):
    before = len(recorder.requests)
    data = (f"POST /api/streamable/recorder HTTP/1.1\r\nHost: x\r\nCookie: mcp_gateway_session={signed_in['admin']}"
            f"\r\n{header}\r\nContent-Length: {len(PING)}\r\nConnection: close\r\n\r\n").encode() + PING
    assert_json_refusal(parse_answer(exchange(auth_gateway.port, data)), 400)
    assert len(recorder.requests) == before


def _post(headers: str, body: bytes = PING, path: str = "/api/streamable/recorder", cookie: str = "") -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: x\r\n{cookie}{headers}\r\n").encode() + body


CHUNKED_PING = b"%x\r\n%s\r\n0\r\n\r\n" % (len(PING), PING)
SMUGGLED = b"GET /api/servers HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"

# (headers, body, status): framing the gateway refuses before anything is forwarded.
FRAMING = {
    "TE+CL": (f"Transfer-Encoding: chunked\r\nContent-Length: {len(PING)}\r\n", PING, 411),
    "TE chunked": ("Transfer-Encoding: chunked\r\n", CHUNKED_PING, 411),
    "TE chunked smuggling a request": ("Transfer-Encoding: chunked\r\n", b"0\r\n\r\n" + SMUGGLED, 411),
    "TE xchunked": (f"Transfer-Encoding: xchunked\r\nContent-Length: {len(PING)}\r\n", PING, 411),
    "TE tab": (f"Transfer-Encoding:\tchunked\r\nContent-Length: {len(PING)}\r\n", PING, 411),
    "TE space before colon": (f"Transfer-Encoding : chunked\r\nContent-Length: {len(PING)}\r\n", PING, 400),
    "TE identity": (f"Transfer-Encoding: identity\r\nContent-Length: {len(PING)}\r\n", PING, 411),
    "TE chunked, identity": ("Transfer-Encoding: chunked, identity\r\n", CHUNKED_PING, 411),
    "TE obs-fold": (f"X-A: b\r\n Transfer-Encoding: chunked\r\nContent-Length: {len(PING)}\r\n", PING, 400),
    "CL twice": (f"Content-Length: {len(PING)}\r\nContent-Length: {len(PING)}\r\n", PING, 400),
    "CL list": (f"Content-Length: {len(PING)}, {len(PING)}\r\n", PING, 400),
    "CL plus": (f"Content-Length: +{len(PING)}\r\n", PING, 400),
    "CL hex": (f"Content-Length: 0x{len(PING):x}\r\n", PING, 400),
    "CL negative": ("Content-Length: -1\r\n", PING, 400),
    "CL inner space": ("Content-Length: 4 0\r\n", PING, 400),
    "CL huge": ("Content-Length: 99999999999999999999999\r\n", PING, 413),
    "header name with space": (f"X A: b\r\nContent-Length: {len(PING)}\r\n", PING, 400),
    "header without colon": (f"NoColon\r\nContent-Length: {len(PING)}\r\n", PING, 400),
}


@pytest.mark.parametrize("name", list(FRAMING))
def test_request_smuggling_framings_are_refused_and_never_read_as_a_second_request(auth_gateway, recorder, signed_in, name):
    headers, body, status = FRAMING[name]
    before = len(recorder.requests)
    raw = exchange(auth_gateway.port, _post(headers, body, cookie=f"Cookie: mcp_gateway_session={signed_in['admin']}\r\n"))
    answer = parse_answer(raw)
    assert_json_refusal(answer, status)
    assert b"HTTP/1.1" not in answer.rest, "a second answer: the body was read as another request"
    assert len(recorder.requests) == before


def test_a_pipelined_second_request_goes_through_every_check_itself(auth_gateway, recorder, signed_in):
    """Bytes after a Content-Length body are a new request: it is authenticated on its own
    (here: no cookie, so 401) and never inherits the first request's identity."""
    first = _post(f"Content-Length: {len(PING)}\r\n", cookie=f"Cookie: mcp_gateway_session={signed_in['admin']}\r\n")
    second = b"POST /api/streamable/recorder HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s" % (
        len(PING), PING)
    before = len(recorder.requests)
    raw = exchange(auth_gateway.port, first + second)
    one = parse_answer(raw)
    two = parse_answer(one.rest)
    assert one.status == 200 and two.status == 401
    assert len(recorder.requests) == before + 1


@pytest.mark.parametrize("path", ["/api/streamable/recorder", "/api/execute/recorder/sse"])
@pytest.mark.parametrize("upgrade", ["websocket", "h2c"])
def test_protocol_upgrades_on_the_api_are_refused(auth_gateway, recorder, signed_in, path, upgrade):
    """A WebSocket (or h2c) connection would carry JSON-RPC past the per-message inspection."""
    before = len(recorder.requests)
    answer = request(auth_gateway.port, "GET", path, [
        session_cookie(signed_in["admin"]), ("Upgrade", upgrade), ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="), ("Sec-WebSocket-Version", "13"),
        ("HTTP2-Settings", "AAMAAABkAARAAAAAAAIAAAAA")])
    assert_json_refusal(answer, 400)
    assert len(recorder.requests) == before


def test_a_large_but_allowed_head_is_served(auth_gateway, signed_in):
    answer = request(auth_gateway.port, "GET", "/api/servers",
                     [session_cookie(signed_in["admin"]), ("X-Padding", "a" * 60_000)])
    assert answer.status == 200


@pytest.mark.parametrize("headers", [
    [("X-Big", "a" * 70_000)],
    [(f"X-H{i}", "v") for i in range(10_000)],
    [("Cookie", "c=" + "a" * 100_000)],
], ids=["one-long-header", "ten-thousand-headers", "long-cookie"])
def test_an_oversized_head_gets_431(auth_gateway, headers):
    answer = request(auth_gateway.port, "GET", "/api/servers", headers)
    assert_json_refusal(answer, 431)
    assert answer.json()["error"] == "request_header_fields_too_large"


def _rss_kib(pid: int) -> int:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_an_endless_head_is_cut_off_without_being_buffered(auth_gateway):
    """mitmproxy itself reads a head of any size into memory; the gateway stops at 64 KiB."""
    pid = auth_gateway.process.proc.pid
    before = _rss_kib(pid)
    sent = 0
    with socket.create_connection(("127.0.0.1", auth_gateway.port), timeout=10) as sock:
        sock.sendall(b"GET /api/servers HTTP/1.1\r\nHost: x\r\nX-Endless: ")
        try:
            while sent < 50_000_000:
                sock.sendall(b"a" * 65536)
                sent += 65536
        except OSError:
            pass
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except OSError:
            pass
    assert sent < 10_000_000, "the gateway kept reading an endless head"
    assert answer.startswith(b"HTTP/1.1 431")
    assert _rss_kib(pid) - before < 20_000


@pytest.mark.parametrize("method", ["PUT", "PATCH", "TRACE", "OPTIONS", "PROPFIND", "FOO"])
@pytest.mark.parametrize("path", ["/api/streamable/recorder", "/api/execute/recorder/sse"])
def test_methods_that_are_not_mcp_are_refused(auth_gateway, recorder, signed_in, method, path):
    before = len(recorder.requests)
    answer = request(auth_gateway.port, method, path, [session_cookie(signed_in["admin"])], PING)
    assert_json_refusal(answer, 405)
    assert len(recorder.requests) == before
