"""Answers rewritten on an SSE stream without shared state: signed refusal ids, tools/list narrowing."""

from __future__ import annotations

import json

import pytest

from addons.refusals import jsonrpc_errors_answer
from addons.sse_answers import REFUSAL_ID_PREFIX, RefusalCodec, rewrite_answer
from mcp_gateway.sse import SseEvent

ERRORS = [{"jsonrpc": "2.0", "id": 7, "error": {"code": -32003, "message": "forbidden"}}]


def answer(request_id, result=None) -> SseEvent:
    return SseEvent(data=json.dumps({"jsonrpc": "2.0", "id": request_id, "result": result or {}}))


def test_the_ping_answer_becomes_the_refusal_in_any_process_with_the_same_key():
    ping_id = RefusalCodec("k" * 40).ping_id(ERRORS)
    replaced = rewrite_answer(answer(ping_id), RefusalCodec("k" * 40), None)
    assert [json.loads(e.data) for e in replaced] == ERRORS


def test_a_forged_or_foreign_refusal_id_is_left_alone():
    forged = answer(REFUSAL_ID_PREFIX + "W3siaWQiOiAxfV0.bad-signature")
    assert rewrite_answer(forged, RefusalCodec("k" * 40), None) is forged
    other_key = answer(RefusalCodec("x" * 40).ping_id(ERRORS))
    assert rewrite_answer(other_key, RefusalCodec("k" * 40), None) is other_key


def test_tools_lists_are_narrowed_and_other_answers_pass():
    tools = answer(1, {"tools": [{"name": "a"}, {"name": "b"}, {"nameless": True}]})
    narrowed = rewrite_answer(tools, None, frozenset({"b"}))
    assert json.loads(narrowed.data)["result"]["tools"] == [{"name": "b"}]
    assert rewrite_answer(tools, None, None) is tools
    other = answer(2, {"content": []})
    assert rewrite_answer(other, None, frozenset()) is other
    request = SseEvent(data=json.dumps({"jsonrpc": "2.0", "id": 3, "method": "sampling/createMessage"}))
    assert rewrite_answer(request, None, frozenset()) is request
    assert rewrite_answer(SseEvent(data="not json"), None, frozenset()) .data == "not json"


def test_a_tools_key_spelled_with_escapes_is_still_narrowed():
    escaped = SseEvent(data='{"jsonrpc": "2.0", "id": 1, "result": {"\\u0074ools": [{"name": "a"}, {"name": "b"}]}}')
    narrowed = rewrite_answer(escaped, None, frozenset({"b"}))
    assert json.loads(narrowed.data)["result"]["tools"] == [{"name": "b"}]


def test_the_allowed_tools_are_computed_only_for_tools_lists():
    calls = []

    def allowed():
        calls.append(1)
        return frozenset({"a"})

    rewrite_answer(SseEvent(data='{"jsonrpc": "2.0", "method": "notifications/progress", "params": {}}'), None, allowed)
    rewrite_answer(answer(1, {"content": []}), None, allowed)
    assert calls == []
    rewrite_answer(answer(2, {"tools": [{"name": "a"}]}), None, allowed)
    assert calls == [1]


@pytest.mark.parametrize("accept,content_type", [
    ("application/json, text/event-stream", "application/json"),
    ("text/event-stream, application/json;q=0.5", "application/json"),
    ("*/*", "application/json"), ("application/*", "application/json"), ("", "application/json"),
    ("text/html", "application/json"),
    ("text/event-stream", "text/event-stream"), ("TEXT/EVENT-STREAM; charset=utf-8", "text/event-stream"),
])
def test_refusals_are_200_answers_in_the_accepted_type(accept, content_type):
    two = [*ERRORS, {**ERRORS[0], "id": 8}]
    answer_ = jsonrpc_errors_answer(accept, two, batch=True)
    assert answer_.status_code == 200 and answer_.headers["content-type"] == content_type
    if content_type == "application/json":
        assert json.loads(answer_.content) == two
    else:
        events = answer_.content.decode().split("\n\n")[:-1]
        assert [json.loads(e.split("data: ", 1)[1]) for e in events] == two
        assert all(e.startswith("event: message\n") for e in events)
    single = jsonrpc_errors_answer(accept, ERRORS, batch=False)
    if content_type == "application/json":
        assert json.loads(single.content) == ERRORS[0]  # a single request gets an object, not a list
