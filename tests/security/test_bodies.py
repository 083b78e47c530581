"""Hostile request bodies against the real gateway: every body it cannot read unambiguously is
refused whole and reaches no upstream — on the SSE transport's message path as on Streamable
HTTP and the registry API — and a body it refuses by its size is never read into memory. Only
UTF-8 JSON is accepted (the upstream gets a canonical `application/json`), and only on POST:
a body on a method the gateway does not inspect is refused before it is read."""

from __future__ import annotations

import json
import socket
import threading
import time

import httpx
import pytest

from tests.security.hostile import (
    assert_json_refusal,
    cookie,
    exchange,
    parse_answer,
    request,
    session_cookie,
    sse_stream,
)

pytestmark = pytest.mark.timeout(60)

MESSAGES_PATH = "/api/execute/recorder/messages/?session_id=0123456789abcdef0123456789abcdef"
PING = b'{"jsonrpc":"2.0","id":1,"method":"ping"}'
CALL = '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"countdown","arguments":{}}}'
UNREADABLE = {
    "not JSON": b"this is not json",
    "empty": b"",
    "whitespace": b"  \r\n ",
    "NaN": b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","arguments":{"a":NaN}}}',
    "Infinity": b'{"jsonrpc":"2.0","id":1,"method":"ping","params":{"a":Infinity}}',
    "float overflow": b'{"jsonrpc":"2.0","id":1,"method":"ping","params":{"a":1e999}}',
    "deep arrays": b'{"jsonrpc":"2.0","id":1,"method":"ping","params":{"a":' + b"[" * 500 + b"]" * 500 + b"}}",
    "deep objects": b'{"jsonrpc":"2.0","id":1,"method":"ping","params":' + b'{"a":' * 500 + b"1" + b"}" * 500 + b"}",
    "very deep": b"[" * 100_000 + b"]" * 100_000,
    "duplicate method": b'{"jsonrpc":"2.0","id":1,"method":"ping","method":"tools/call","params":{"name":"x"}}',
    "duplicate id": b'{"jsonrpc":"2.0","id":1,"id":2,"method":"ping"}',
    "duplicate params": b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a"},"params":{"name":"b"}}',
    "duplicate tool name": b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","name":"b"}}',
    "escaped duplicate": b'{"jsonrpc":"2.0","id":1,"method":"ping","m\\u0065thod":"tools/call"}',
    "case-variant Method": b'{"jsonrpc":"2.0","id":1,"method":"ping","Method":"tools/call"}',
    "case-variant PARAMS": b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a"},"PARAMS":{"name":"b"}}',
    "case-variant Name": b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","Name":"b"}}',
    "byte-order mark": b"\xef\xbb\xbf" + CALL.encode(),
    "UTF-16": CALL.encode("utf-16"),
    "UTF-32": CALL.encode("utf-32"),
    "latin-1 bytes": b'{"jsonrpc":"2.0","id":1,"method":"ping","params":{"a":"\xe9"}}',
    "trailing garbage": CALL.encode() + b" x",
    "two documents": CALL.encode() + CALL.encode(),
    "comment": b'{"jsonrpc":"2.0","id":1,/* x */"method":"ping"}',
    "single quotes": b"{'jsonrpc':'2.0','id':1,'method':'ping'}",
    "trailing comma": b'{"jsonrpc":"2.0","id":1,"method":"ping",}',
    "lone surrogate": b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a\\ud800"}}',
    "empty batch": b"[]",
    "batch of junk": b'[{"jsonrpc":"2.0","id":1,"method":"ping"}, 5]',
    "method number": b'{"jsonrpc":"2.0","id":1,"method":42}',
    "method null": b'{"jsonrpc":"2.0","id":1,"method":null}',
    "method array": b'{"jsonrpc":"2.0","id":1,"method":["tools/call"]}',
    "method object": b'{"jsonrpc":"2.0","id":1,"method":{"name":"tools/call"}}',
    "name number": b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":1}}',
    "name array": b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":["countdown"]}}',
    "name object": b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":{"x":"countdown"}}}',
    "name null": b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":null}}',
    "name true": b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":true}}',
    "params string": b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":"countdown"}',
    "params array": b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":["countdown"]}',
    "id true": b'{"jsonrpc":"2.0","id":true,"method":"ping"}',
    "id object": b'{"jsonrpc":"2.0","id":{"a":1},"method":"ping"}',
    "jsonrpc 1.0": b'{"jsonrpc":"1.0","id":1,"method":"ping"}',
    "no jsonrpc": b'{"id":1,"method":"ping"}',
    "top-level string": b'"tools/call"',
    "top-level number": b"1",
}


@pytest.mark.parametrize("name", list(UNREADABLE))
def test_unreadable_mcp_bodies_are_refused_whole(auth_gateway, recorder, signed_in, name):
    before = len(recorder.requests)
    answer = request(auth_gateway.port, "POST", "/api/streamable/recorder",
                     [session_cookie(signed_in["admin"]), ("Content-Type", "application/json")], UNREADABLE[name])
    assert answer.status in (400, 413), answer.head
    assert_json_refusal(answer, answer.status)
    assert len(UNREADABLE[name]) < 100 or answer.body.count(UNREADABLE[name][:100]) == 0  # no echo of the input
    time.sleep(0.05)
    assert len(recorder.requests) == before


@pytest.mark.parametrize("name", ["not JSON", "duplicate method", "escaped duplicate", "UTF-16", "latin-1 bytes",
                                  "two documents", "method array", "name object", "very deep"])
def test_unreadable_bodies_on_the_sse_message_endpoint_are_refused_whole(auth_gateway, signed_in, name):
    with sse_stream(auth_gateway, signed_in["admin"]) as endpoint:
        answer = request(auth_gateway.port, "POST", endpoint,
                         [session_cookie(signed_in["admin"]), ("Content-Type", "application/json")], UNREADABLE[name])
        assert answer.status in (400, 413), answer.head
        assert_json_refusal(answer, answer.status)


def test_a_readable_body_is_forwarded_byte_for_byte(auth_gateway, recorder, signed_in):
    answer = request(auth_gateway.port, "POST", "/api/streamable/recorder", [session_cookie(signed_in["admin"])],
                     CALL.encode())
    assert answer.status == 200
    assert recorder.requests[-1].path == "/mcp"
    assert recorder.requests[-1].body == CALL.encode()  # byte for byte


# Content types an upstream could read another way than the gateway did (it decodes UTF-8 JSON).
REFUSED_CONTENT_TYPES = {
    "utf-7": [("Content-Type", "application/json; charset=utf-7")],
    "UTF-7 upper": [("Content-Type", "application/json; charset=UTF-7")],
    "quoted utf-7": [("Content-Type", 'application/json; charset="utf-7"')],
    "name upper": [("Content-Type", "application/json; CHARSET=utf-16")],
    "utf-16": [("Content-Type", "application/json;charset=utf-16")],
    "utf-16le": [("Content-Type", "application/json; charset=utf-16le")],
    "latin-1": [("Content-Type", "application/json; charset=iso-8859-1")],
    "utf8 alias": [("Content-Type", "application/json; charset=utf8")],
    "unbalanced quote": [("Content-Type", 'application/json; charset="utf-8')],
    "escaped quote": [("Content-Type", 'application/json; charset="utf\\-8"')],
    "utf-8 then utf-7": [("Content-Type", "application/json; charset=utf-8; charset=utf-7")],
    "utf-7 then utf-8": [("Content-Type", "application/json; charset=utf-7; charset=utf-8")],
    "utf-8 twice": [("Content-Type", "application/json; charset=utf-8; charset=utf-8")],
    "charset without value": [("Content-Type", "application/json; charset")],
    "two headers": [("Content-Type", "application/json"), ("Content-Type", "application/json; charset=utf-7")],
    "two equal headers": [("Content-Type", "application/json"), ("Content-Type", "application/json")],
    "text/plain": [("Content-Type", "text/plain")],
    "text/json": [("Content-Type", "text/json")],
    "form": [("Content-Type", "application/x-www-form-urlencoded")],
    "multipart": [("Content-Type", "multipart/form-data; boundary=x")],
    "json-patch": [("Content-Type", "application/json-patch+json")],
    "list": [("Content-Type", "application/json, text/plain")],
    "empty": [("Content-Type", "")],
}


@pytest.mark.parametrize("name", list(REFUSED_CONTENT_TYPES))
@pytest.mark.parametrize("path", ["/api/streamable/recorder", MESSAGES_PATH], ids=["streamable", "sse-messages"])
def test_a_charset_other_than_utf8_or_another_media_type_is_refused_with_415(auth_gateway, recorder, signed_in,
                                                                              path, name):
    before = len(recorder.requests)
    answer = request(auth_gateway.port, "POST", path,
                     [session_cookie(signed_in["admin"]), *REFUSED_CONTENT_TYPES[name]], PING)
    assert_json_refusal(answer, 415)
    time.sleep(0.05)
    assert len(recorder.requests) == before


@pytest.mark.parametrize("content_type", [
    None, "application/json", "application/json; charset=utf-8", "Application/JSON; Charset=UTF-8",
    'application/json; charset="utf-8"', "application/json;charset=utf-8;", "application/json; profile=x",
])
def test_the_upstream_receives_a_canonical_json_content_type(auth_gateway, recorder, signed_in, content_type):
    headers = [session_cookie(signed_in["admin"])] + ([("Content-Type", content_type)] if content_type else [])
    answer = request(auth_gateway.port, "POST", "/api/streamable/recorder", headers, PING)
    assert answer.status == 200, answer.head
    seen = recorder.requests[-1]
    assert seen.headers["content-type"] == "application/json"
    assert seen.body == PING


@pytest.mark.parametrize("method,path,status", [
    ("GET", "/api/streamable/recorder", 400),
    ("DELETE", "/api/streamable/recorder", 400),
    ("GET", "/api/execute/recorder/sse", 400),
    ("GET", "/api/execute/recorder", 400),
    ("OPTIONS", "/api/streamable/recorder", 405),
    ("PUT", "/api/streamable/recorder", 405),
    ("DELETE", "/api/execute/recorder/sse", 405),
    ("HEAD", "/api/execute/recorder/sse", 405),
    ("GET", MESSAGES_PATH, 404),
    ("DELETE", MESSAGES_PATH, 404),
])
@pytest.mark.parametrize("signed", [True, False], ids=["signed-in", "anonymous"])
def test_a_body_on_a_method_the_gateway_does_not_inspect_is_refused_before_it_is_read(
        auth_gateway, recorder, signed_in, method, path, status, signed):
    before = len(recorder.requests)
    credentials = f"Cookie: mcp_gateway_session={signed_in['admin']}\r\n" if signed else ""
    head = (f"{method} {path} HTTP/1.1\r\nHost: x\r\n{credentials}Content-Type: application/json\r\n"
            f"Content-Length: 100000\r\n\r\n").encode()
    started = time.monotonic()
    answer = parse_answer(exchange(auth_gateway.port, head + PING, timeout=3.0))
    assert time.monotonic() - started < 2.5, "the answer waited for the body"
    if method != "HEAD":
        assert_json_refusal(answer, status)
    assert answer.status == status
    time.sleep(0.05)
    assert len(recorder.requests) == before


@pytest.mark.parametrize("method", ["GET", "DELETE"])
def test_an_empty_declared_body_on_get_and_delete_still_passes(auth_gateway, recorder, signed_in, method):
    answer = request(auth_gateway.port, method, "/api/streamable/recorder",
                     [session_cookie(signed_in["admin"]), ("Content-Length", "0")])
    assert answer.status == 200, answer.head
    assert recorder.requests[-1].method == method and recorder.requests[-1].body == b""


def test_a_batch_with_one_forbidden_call_is_refused_whole_on_the_sse_transport(auth_gateway, signed_in):
    """rita may read currenttime, not call its tools: the whole batch is answered with errors on
    her stream (the SSE transport's answers travel there), and no call reaches the server."""
    with httpx.Client(timeout=10) as http:
        with http.stream("GET", auth_gateway.sse_url("currenttime"), headers=cookie(signed_in["rita"])) as stream:
            lines = stream.iter_lines()
            endpoint = next(line[5:].strip() for line in lines if line.startswith("data:"))
            time.sleep(0.3)
            batch = [{"jsonrpc": "2.0", "id": 21, "method": "tools/list", "params": {}},
                     {"jsonrpc": "2.0", "id": 22, "method": "tools/call",
                      "params": {"name": "current_time_by_timezone", "arguments": {"timezone": "UTC"}}}]
            posted = http.post(auth_gateway.url + endpoint, json=batch, headers=cookie(signed_in["rita"]))
            assert posted.status_code in (202, 403)
            answers: list[dict] = []
            for line in lines:
                if line.startswith("data:"):
                    event = json.loads(line[5:])
                    answers += event if isinstance(event, list) else [event]
                if len(answers) >= 2:
                    break
    assert sorted(a["id"] for a in answers) == [21, 22]
    assert all("error" in a and "result" not in a for a in answers), answers
    assert all(a["error"]["data"]["scope"] == "mcp:server:currenttime:tool:current_time_by_timezone:execute"
               for a in answers)


@pytest.mark.parametrize("framing,status", [
    ("Content-Length: 2000000000", 413),
    ("Content-Length: 1048577", 413),
    ("Transfer-Encoding: chunked", 411),
    ("Content-Length: 2000000000\r\nExpect: 100-continue", 413),
])
def test_a_body_refused_by_its_size_is_answered_before_it_is_sent(auth_gateway, signed_in, framing, status):
    """The client learns at once (no need to send the body first), and the gateway closes."""
    head = (f"POST /api/streamable/recorder HTTP/1.1\r\nHost: x\r\nCookie: mcp_gateway_session={signed_in['admin']}"
            f"\r\n{framing}\r\n\r\n").encode()
    started = time.monotonic()
    answer = parse_answer(exchange(auth_gateway.port, head, timeout=3.0))
    assert time.monotonic() - started < 2.5, "the answer waited for a body"
    assert_json_refusal(answer, status)
    assert b"100 Continue" not in answer.head.encode()


def _rss_kib(pid: int) -> int:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.mark.parametrize("framing", ["Content-Length: 2000000000", "Transfer-Encoding: chunked"])
def test_a_refused_body_is_never_buffered(auth_gateway, framing):
    """Unauthenticated, pushing 60 MB at a refused request: the gateway's memory does not follow."""
    pid = auth_gateway.process.proc.pid
    before = _rss_kib(pid)
    pushed = 0

    def push() -> None:
        nonlocal pushed
        with socket.create_connection(("127.0.0.1", auth_gateway.port), timeout=3) as sock:
            try:
                sock.sendall(f"POST /api/streamable/recorder HTTP/1.1\r\nHost: x\r\n{framing}\r\n\r\n".encode())
                while pushed < 60_000_000:
                    chunk = b"a" * 1_000_000
                    sock.sendall(b"f4240\r\n" + chunk + b"\r\n" if "chunked" in framing else chunk)
                    pushed += len(chunk)
            except OSError:
                pass

    pusher = threading.Thread(target=push)
    pusher.start()
    pusher.join(30)
    assert pushed < 20_000_000, f"the gateway accepted {pushed} bytes of a refused body"
    assert _rss_kib(pid) - before < 20_000


@pytest.mark.parametrize("body,status", [
    (b'{"enabled": true, "enabled": false}', 400),
    (b'{"enabled": NaN}', 400),
    (b'{"enabled": "false"}', 400),
    (b'{"enabled": 0}', 400),
    (b"[true]", 400),
    (b"not json", 400),
    pytest.param(b'{"enabled": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", 400, id="nested-100000-deep"),
])
def test_registry_bodies_are_read_strictly(auth_gateway, signed_in, body, status):
    before = request(auth_gateway.port, "GET", "/api/servers/recorder", [session_cookie(signed_in["admin"])]).json()
    answer = request(auth_gateway.port, "POST", "/api/servers/recorder/toggle",
                     [session_cookie(signed_in["admin"]), ("Content-Type", "application/json")], body)
    assert_json_refusal(answer, status)
    after = request(auth_gateway.port, "GET", "/api/servers/recorder", [session_cookie(signed_in["admin"])]).json()
    assert after["enabled"] == before["enabled"]
