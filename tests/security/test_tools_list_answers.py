"""A `tools/list` answer the gateway must narrow is narrowed however its upstream spells it, or
does not pass (addons/authorizer.py). An upstream answering `Content-Type: Application/JSON`,
`TEXT/EVENT-STREAM`, `text/plain`, none, or a body that is not JSON reached a tool-restricted
person whole — every tool's name, description and schema — because the gateway compared media
types case-sensitively and let what it could not read pass."""

from __future__ import annotations

import json
from contextlib import ExitStack

import httpx
import pytest

from tests.e2e.conftest import wait_for_login_app
from tests.support.accounts import account_hash
from tests.support.gateway import run_gateway, server_entry
from tests.support.http_server import QuietHandler, serving
from tests.support.login import cookie_header, kept_session
from tests.support.mcp_clients import ACCEPT

pytestmark = pytest.mark.timeout(120)

TOOLS = {"tools": [{"name": "current_time_by_timezone", "inputSchema": {"type": "object"}},
                   {"name": "hidden_admin_tool", "description": "not for tina", "inputSchema": {"type": "object"}}]}


def as_json(message: dict) -> bytes:
    return json.dumps(message).encode()


def as_sse(message: dict) -> bytes:
    return b"event: message\ndata: " + json.dumps(message).encode() + b"\n\n"


# path → (content type, body maker); the answer is `{"jsonrpc": "2.0", "id": <the request's>, "result": TOOLS}`
NARROWED = {
    "json-upper": ("Application/JSON", as_json),
    "json-charset": ("application/json; charset=UTF-8", as_json),
    "json-spaced": (" application/json ;charset=utf-8", as_json),
    "sse-upper": ("TEXT/EVENT-STREAM", as_sse),
    "sse-param": ("Text/Event-Stream; charset=utf-8", as_sse),
}
REFUSED = {
    "text-plain": ("text/plain", as_json),
    "no-type": (None, as_json),
    "json-ld": ("application/ld+json", as_json),
    "not-json": ("application/json", lambda message: as_json(message)[:-5]),
    "json-but-sse": ("application/json", as_sse),
    "unknown-encoding": ("application/json", as_json),  # sent with Content-Encoding: x-unknown
}
ANSWERS = {**NARROWED, **REFUSED}


class Upstream(QuietHandler):
    def do_POST(self) -> None:
        self.answer(self.read_json())

    def do_GET(self) -> None:  # a Streamable GET stream (a resumed one replays tools/list answers)
        self.answer({"id": 7})

    def answer(self, message: dict) -> None:
        case = self.path.strip("/").split("/")[0]
        content_type, body = ANSWERS[case]
        headers = {"content-type": content_type} if content_type else {}
        if case == "unknown-encoding":
            headers["content-encoding"] = "x-unknown"
        self.send(200, body({"jsonrpc": "2.0", "id": message["id"], "result": TOOLS}), headers)


PASSWORD = "tess-password-for-tests"
TOOL = "current_time_by_timezone"


@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    with ExitStack() as stack:
        port = stack.enter_context(serving(Upstream))
        tmp = tmp_path_factory.mktemp("gw-tools-list-answers")
        servers = [server_entry(f"c-{case}", f"http://127.0.0.1:{port}/{case}") for case in ANSWERS]
        # tess may call one tool of each server: every tools/list answer she gets is narrowed to it
        groups = [f"mcp-server-c-{case}-tool-{TOOL}" for case in ANSWERS]
        accounts = {"accounts": [{"username": "tess", "password_hash": account_hash(PASSWORD), "groups": groups}]}
        gw = stack.enter_context(run_gateway(tmp, servers, auth={"enabled": True, "provider_type": "local",
                                                                 "local": accounts}))
        wait_for_login_app(gw)
        yield gw


def tools_list(gw, case: str) -> httpx.Response:
    headers = {**cookie_header(kept_session(gw.url, "tess", PASSWORD)), **ACCEPT, "content-type": "application/json"}
    return httpx.post(gw.streamable_url(f"c-{case}"), content=b'{"jsonrpc": "2.0", "id": 7, "method": "tools/list"}',
                      headers=headers, timeout=10)


def tool_names(response: httpx.Response) -> list[str]:
    text = response.text
    if response.headers["content-type"].lower().startswith("text/event-stream"):
        text = next(line[5:] for line in text.splitlines() if line.startswith("data:"))
    return [tool["name"] for tool in json.loads(text)["result"]["tools"]]


@pytest.mark.parametrize("case", NARROWED)
def test_an_answer_in_any_spelling_of_json_or_event_stream_is_narrowed(gw, case):
    answer = tools_list(gw, case)

    assert answer.status_code == 200, answer.text
    assert tool_names(answer) == [TOOL]
    assert "hidden_admin_tool" not in answer.text


@pytest.mark.parametrize("case", REFUSED)
def test_an_answer_the_gateway_cannot_read_does_not_pass(gw, case):
    answer = tools_list(gw, case)

    assert answer.status_code == 502, answer.text
    assert answer.headers["content-type"] == "application/json"
    assert "tools/list" in answer.json()["message"]
    assert "hidden_admin_tool" not in answer.text
    assert f"server c-{case}: its answer to tools/list cannot be read" in gw.log


@pytest.mark.parametrize("case", ["json-upper", "json-charset", "text-plain", "no-type"])
def test_a_stream_get_answered_with_anything_but_an_event_stream_does_not_pass(gw, case):
    headers = {**cookie_header(kept_session(gw.url, "tess", PASSWORD)), "accept": "text/event-stream"}

    answer = httpx.get(gw.streamable_url(f"c-{case}"), headers=headers, timeout=10)

    assert answer.status_code == 502, answer.text
    assert "hidden_admin_tool" not in answer.text
    assert "event stream" in answer.json()["message"]


@pytest.mark.parametrize("case", ["sse-upper", "sse-param"])
def test_a_stream_get_is_narrowed_in_any_spelling_of_event_stream(gw, case):
    headers = {**cookie_header(kept_session(gw.url, "tess", PASSWORD)), "accept": "text/event-stream"}

    answer = httpx.get(gw.streamable_url(f"c-{case}"), headers=headers, timeout=10)

    assert answer.status_code == 200, answer.text
    assert tool_names(answer) == [TOOL]
