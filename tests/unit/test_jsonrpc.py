import json

import pytest

from mcp_gateway.jsonrpc import JsonRpcRejected, RpcMessage, error_responses, parse_mcp_body, parse_mcp_payload

MAX = 64 * 1024


def call(name="echo", id=1, **extra):
    return {"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": name, "arguments": {}}, **extra}


def body(value) -> bytes:
    return json.dumps(value).encode()


def test_single_request():
    [message] = parse_mcp_body(body(call("get_time", id="x-1")), MAX)
    assert (message.kind, message.id, message.method, message.tool) == ("request", "x-1", "tools/call", "get_time")
    assert message.raw["params"]["name"] == "get_time"


def test_notification_response_and_batch():
    batch = [
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 7, "result": {"content": []}},
        {"jsonrpc": "2.0", "id": "s1", "error": {"code": -1, "message": "no"}},
        {"jsonrpc": "2.0", "id": None, "error": {"code": -32700, "message": "parse error"}},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}},
        {"jsonrpc": "2.0", "id": 3, "method": "ping"},
    ]
    payload = parse_mcp_payload(body(batch), MAX)
    assert payload.batch
    assert [(m.kind, m.id, m.method) for m in payload.messages] == [
        ("notification", None, "notifications/initialized"),
        ("response", 7, None),
        ("response", "s1", None),
        ("response", None, None),
        ("request", 2, "tools/list"),
        ("request", 3, "ping"),
    ]
    assert not parse_mcp_payload(body(call()), MAX).batch


def test_accepted_edge_cases():
    assert parse_mcp_body(b'  {"jsonrpc":"2.0","id":-5,"method":"ping"}\r\n', MAX)[0].id == -5
    assert parse_mcp_body(body(call(id=2**53 - 1)), MAX)[0].id == 2**53 - 1  # the largest every parser reads alike
    assert parse_mcp_body(b'{"jsonrpc":"2.0","id":1,"method":"x","params":[1,2]}', MAX)[0].method == "x"
    # escapes decode to the same key or name every parser sees
    assert parse_mcp_body(b'{"jsonrpc":"2.0","id":1,"m\\u0065thod":"ping"}', MAX)[0].method == "ping"
    assert parse_mcp_body(body(call("a\U0001F600")), MAX)[0].tool == "a\U0001F600"
    # the same key in different objects is not a duplicate
    nested_same_keys = call()
    nested_same_keys["params"]["arguments"] = {"name": 1, "inner": {"name": 2, "Name2": 3}}
    assert parse_mcp_body(body(nested_same_keys), MAX)[0].tool == "echo"
    assert len(parse_mcp_body(body(call()), len(body(call())))) == 1  # exactly at the cap


def nested(depth: int) -> bytes:
    return b'{"jsonrpc":"2.0","id":1,"method":"x","params":' + b"[" * depth + b"]" * depth + b"}"


HOSTILE = [
    ("oversize", body(call("x" * MAX))),
    ("empty", b""),
    ("whitespace", b"   "),
    ("not utf-8", b'{"jsonrpc":"2.0","id":1,"method":"p\xffng"}'),
    ("utf-16", '{"jsonrpc":"2.0","id":1,"method":"ping"}'.encode("utf-16")),
    ("bom", b'\xef\xbb\xbf{"jsonrpc":"2.0","id":1,"method":"ping"}'),
    ("not json", b"jsonrpc=2.0&method=ping"),
    ("trailing garbage", b'{"jsonrpc":"2.0","id":1,"method":"ping"}x'),
    ("two documents", b'{"jsonrpc":"2.0","id":1,"method":"ping"}{"jsonrpc":"2.0","id":2,"method":"ping"}'),
    ("NaN", b'{"jsonrpc":"2.0","id":1,"method":"x","params":{"a":NaN}}'),
    ("Infinity", b'{"jsonrpc":"2.0","id":1,"method":"x","params":{"a":-Infinity}}'),
    ("overflowing float", b'{"jsonrpc":"2.0","id":1,"method":"x","params":{"a":1e999}}'),
    ("huge integer", b'{"jsonrpc":"2.0","id":' + b"9" * 5000 + b',"method":"ping"}'),
    ("deep nesting", nested(65)),
    ("very deep nesting", b"[" * 100_000 + b"]" * 100_000),
    ("duplicate method", b'{"jsonrpc":"2.0","id":1,"method":"ping","method":"tools/call","params":{"name":"x"}}'),
    ("duplicate via escape", b'{"jsonrpc":"2.0","id":1,"method":"ping","m\\u0065thod":"tools/call"}'),
    ("duplicate name", b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","name":"b"}}'),
    ("duplicate deep", b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","arguments":{"x":{"y":1,"y":2}}}}'),
    ("duplicate in array", b'[{"jsonrpc":"2.0","id":1,"method":"ping","id":2}]'),
    ("case-variant method", b'{"jsonrpc":"2.0","id":1,"method":"ping","Method":"tools/call"}'),
    ("case-variant name", b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","NAME":"b"}}'),
    ("kelvin sign", '{"jsonrpc":"2.0","id":1,"method":"x","params":{"k":1,"\u212a":2}}'.encode()),
    ("long s", '{"jsonrpc":"2.0","id":1,"method":"x","params":{"s":1,"\u017f":2}}'.encode()),
    ("lone surrogate value", b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a\\ud800"}}'),
    ("lone surrogate key", b'{"jsonrpc":"2.0","id":1,"method":"x","params":{"\\udfff":1}}'),
    ("empty batch", b"[]"),
    ("batch of numbers", b"[1, 2]"),
    ("batch with null", b'[{"jsonrpc":"2.0","id":1,"method":"ping"}, null]'),
    ("nested batch", b'[[{"jsonrpc":"2.0","id":1,"method":"ping"}]]'),
    ("top-level string", b'"ping"'),
    ("top-level null", b"null"),
    ("no jsonrpc", b'{"id":1,"method":"ping"}'),
    ("jsonrpc 1.0", b'{"jsonrpc":"1.0","id":1,"method":"ping"}'),
    ("jsonrpc number", b'{"jsonrpc":2.0,"id":1,"method":"ping"}'),
    ("method number", b'{"jsonrpc":"2.0","id":1,"method":7}'),
    ("method list", b'{"jsonrpc":"2.0","id":1,"method":["tools/call"]}'),
    ("method null", b'{"jsonrpc":"2.0","id":1,"method":null}'),
    ("method empty", b'{"jsonrpc":"2.0","id":1,"method":""}'),
    ("id true", b'{"jsonrpc":"2.0","id":true,"method":"ping"}'),
    ("id null", b'{"jsonrpc":"2.0","id":null,"method":"ping"}'),
    ("id float", b'{"jsonrpc":"2.0","id":1.0,"method":"ping"}'),
    ("id beyond 2**53", b'{"jsonrpc":"2.0","id":9007199254740993,"method":"tools/list"}'),
    ("id 2**70", body(call(id=2**70))),
    ("response id beyond 2**53", b'{"jsonrpc":"2.0","id":-9007199254740992,"result":{}}'),
    ("id object", b'{"jsonrpc":"2.0","id":{},"method":"ping"}'),
    ("id list", b'{"jsonrpc":"2.0","id":[1],"method":"ping"}'),
    ("params string", b'{"jsonrpc":"2.0","id":1,"method":"ping","params":"x"}'),
    ("params null", b'{"jsonrpc":"2.0","id":1,"method":"ping","params":null}'),
    ("params number", b'{"jsonrpc":"2.0","id":1,"method":"ping","params":1}'),
    ("tools/call without params", b'{"jsonrpc":"2.0","id":1,"method":"tools/call"}'),
    ("tools/call params array", b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":["echo"]}'),
    ("tools/call name missing", b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"arguments":{}}}'),
    ("tools/call name list", b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":["echo"]}}'),
    ("tools/call name number", b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":1}}'),
    ("tools/call name null", b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":null}}'),
    ("notification tools/call no name", b'{"jsonrpc":"2.0","method":"tools/call","params":{}}'),
    ("request and response", b'{"jsonrpc":"2.0","id":1,"method":"ping","result":{}}'),
    ("result and error", b'{"jsonrpc":"2.0","id":1,"result":{},"error":{"code":1,"message":"x"}}'),
    ("neither", b'{"jsonrpc":"2.0","id":1}'),
    ("response without id", b'{"jsonrpc":"2.0","result":{}}'),
    ("response id bool", b'{"jsonrpc":"2.0","id":false,"result":{}}'),
    ("error not object", b'{"jsonrpc":"2.0","id":1,"error":"boom"}'),
    ("batch with one bad entry", b'[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","id":2,"method":3}]'),
]


TOO_LARGE = {raw for name, raw in HOSTILE if name in ("oversize", "very deep nesting")}


@pytest.mark.parametrize("raw", [raw for _, raw in HOSTILE], ids=[name for name, _ in HOSTILE])
def test_hostile_bodies_are_refused(raw):
    with pytest.raises(JsonRpcRejected) as refused:
        parse_mcp_body(raw, MAX)
    assert refused.value.reason
    # Too big (bytes, or nesting deeper than the parser will go) is 413; anything else malformed, 400.
    assert refused.value.status == (413 if raw in TOO_LARGE else 400)


def test_oversize_is_413_and_checked_before_parsing():
    with pytest.raises(JsonRpcRejected) as refused:
        parse_mcp_body(b"\xff" * 100, 99)  # not UTF-8 either: the size is what is reported
    assert refused.value.status == 413


def test_nesting_limit_is_inclusive():
    assert parse_mcp_body(nested(62), MAX)  # object + 62 arrays = 63 levels
    with pytest.raises(JsonRpcRejected):
        parse_mcp_body(nested(64), MAX)


def test_reason_does_not_echo_long_input():
    with pytest.raises(JsonRpcRejected) as refused:
        parse_mcp_body(b'{"jsonrpc":"2.0","id":1,"method":"x","params":{"a":1e' + b"9" * 5000 + b"}}", 10**6)
    assert len(refused.value.reason) < 300


def test_error_responses_answer_every_request_of_a_batch():
    messages = [
        RpcMessage("request", 1, "tools/call", "a", {}),
        RpcMessage("notification", None, "notifications/cancelled", None, {}),
        RpcMessage("request", "b", "ping", None, {}),
        RpcMessage("response", 9, None, None, {}),
    ]
    answers = error_responses(messages, -32001, "insufficient scope", {"scope": "mcp:server:s:execute"})
    assert [answer["id"] for answer in answers] == [1, "b"]
    assert answers[0] == {
        "jsonrpc": "2.0",
        "id": 1,
        "error": {"code": -32001, "message": "insufficient scope", "data": {"scope": "mcp:server:s:execute"}},
    }
    assert answers[0]["error"] is not answers[1]["error"]
