"""Identify, SessionBinding and Authorizer at the unit level, with mitmproxy's taddons/tflow and a
real SQLite session store; the Auditor renders what they decided (docs/architecture.md §1)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from mitmproxy.test import taddons, tflow, tutils

from addons.auditor import Auditor
from addons.authorizer import FORBIDDEN, Authorizer
from addons.flow_state import state_of
from addons.identify import Identify
from addons.router import Router
from addons.runtime import Runtime
from addons.session_binding import SessionBinding, bind_streamable_session
from mcp_gateway.config import load_config
from mcp_gateway.identity import SESSION_COOKIE, identity_of
from mcp_gateway.policy_repository import PolicyRepository
from mcp_gateway.registry import Registry
from mcp_gateway.services import session_store_for

ROOT = Path(__file__).resolve().parents[2]
CONFIG = """
[gateway]
public_url = "http://gateway.test"
[auth]
enabled = true
provider_type = "local"
secret_key = "{key}"
[[servers]]
name = "a"
url = "http://127.0.0.1:9"
"""


@pytest.fixture
async def runtime(tmp_path):
    shutil.copytree(ROOT / "policies", tmp_path / "policies", ignore=shutil.ignore_patterns("tests"))
    path = tmp_path / "gateway.toml"
    path.write_text(CONFIG.format(key="k" * 40))
    config = load_config(path, env={})
    runtime = Runtime()
    runtime.install(config, Registry(config.servers, config.state_dir, tmp_path), session_store_for(config),
                    PolicyRepository(config.policy_dir), None)
    yield runtime
    await runtime.release_store().close()


async def sign_in(runtime: Runtime, *groups: str, subject: str = "alice") -> str:
    token, _ = await runtime.store.create(subject=subject, username=subject, provider="local", groups=groups)
    return token


def flow_for(runtime: Runtime, path: str, method: str = "GET", body: bytes = b"", cookie: str | None = None,
             accept: str = "application/json, text/event-stream"):
    request = tutils.treq(method=method.encode(), path=path.encode(), authority=b"", content=body)
    request.headers["content-length"] = str(len(body))
    request.headers["accept"] = accept
    if body:
        request.headers["content-type"] = "application/json"
    if cookie is not None:
        request.headers["cookie"] = cookie
    flow = tflow.tflow(req=request)
    flow.response = None
    Router(runtime).requestheaders(flow)
    assert flow.response is None, flow.response and flow.response.content
    return flow


def call(tool: str) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
                       "params": {"name": tool, "arguments": {}}}).encode()


async def through_request_hooks(runtime: Runtime, flow) -> None:
    """The request hooks of the three addons, in the chain's order."""
    await Identify(runtime).request(flow)
    await SessionBinding(runtime).request(flow)
    Authorizer(runtime).request(flow)


def audited(runtime: Runtime, flow) -> dict:
    auditor = Auditor(runtime)
    auditor.response(flow)
    auditor.done()
    return json.loads(runtime.config.audit_log.read_text().splitlines()[-1])


async def test_a_session_cookie_identifies_its_person(runtime):
    token = await sign_in(runtime, "mcp-server-a")
    with taddons.context():
        flow = flow_for(runtime, "/api/streamable/a", "POST", call("echo"), cookie=f"x=1; {SESSION_COOKIE}={token}")
        await Identify(runtime).request(flow)
    identity = state_of(flow).identity
    assert flow.response is None and identity.username == "alice" and identity.kind == "session"
    assert identity.groups == ("mcp-server-a",)


@pytest.mark.parametrize("cookie", [
    f"{SESSION_COOKIE}=not-a-session",                 # unknown token
    f"{SESSION_COOKIE}=",                              # empty
    "other=1",                                         # no session cookie at all
    f"{SESSION_COOKIE}=a; {SESSION_COOKIE}=b",         # ambiguous: two of them
])
async def test_a_bad_cookie_is_401_with_a_challenge_and_a_refused_decision(runtime, cookie):
    with taddons.context():
        flow = flow_for(runtime, "/api/streamable/a", "POST", call("echo"), cookie=cookie)
        await Identify(runtime).request(flow)
    assert flow.response.status_code == 401
    assert 'resource_metadata="http://gateway.test/' in flow.response.headers["www-authenticate"]
    assert json.loads(flow.response.content)["status"] == 401
    assert state_of(flow).outcome.verdict == "refused" and state_of(flow).identity is None


async def test_a_browser_without_a_session_goes_to_the_login_page(runtime):
    with taddons.context():
        flow = flow_for(runtime, "/api/streamable/a?x=1", accept="text/html")
        await Identify(runtime).request(flow)
    assert flow.response.status_code == 302
    assert flow.response.headers["location"] == "/oauth/login?next=/api/streamable/a%3Fx%3D1"
    assert (state_of(flow).outcome.verdict, state_of(flow).outcome.status) == ("refused", 302)


async def test_a_session_id_bound_to_another_identity_is_403(runtime):
    mallory = await sign_in(runtime, "mcp-server-a", subject="mallory")
    alice = identity_of((await runtime.store.get(await sign_in(runtime, "mcp-server-a"))))
    await bind_streamable_session(runtime.store, "streamable:a:sid-1", alice.owner, 60)
    with taddons.context():
        flow = flow_for(runtime, "/api/streamable/a", "POST", call("echo"), cookie=f"{SESSION_COOKIE}={mallory}")
        flow.request.headers["mcp-session-id"] = "sid-1"
        await through_request_hooks(runtime, flow)
    assert flow.response.status_code == 403
    assert json.loads(flow.response.content)["message"] == "this MCP session belongs to another identity"
    record = audited(runtime, flow)
    assert (record["decision"], record["status"], record["user"]) == ("refused", 403, "mallory")
    assert flow.marked


async def test_a_refused_tool_call_is_a_jsonrpc_error_in_a_200(runtime):
    token = await sign_in(runtime, "mcp-server-a-tool-echo")  # may call echo only
    with taddons.context():
        flow = flow_for(runtime, "/api/streamable/a", "POST", call("drop_table"), cookie=f"{SESSION_COOKIE}={token}")
        await through_request_hooks(runtime, flow)
    assert flow.response.status_code == 200
    answer = json.loads(flow.response.content)
    assert answer["id"] == 7 and answer["error"]["code"] == FORBIDDEN
    assert answer["error"]["data"]["scope"] == "mcp:server:a:tool:drop_table:execute"
    assert not state_of(flow).approved
    record = audited(runtime, flow)
    assert (record["decision"], record["status"], record["method"], record["tool"]) == (
        "refused", 403, "tools/call", "drop_table")
    assert record["scope"] == "mcp:server:a:tool:drop_table:execute" and flow.marked


async def test_an_allowed_call_is_decided_allowed_and_left_for_the_forwarder(runtime):
    token = await sign_in(runtime, "mcp-server-a-tool-echo")
    with taddons.context():
        flow = flow_for(runtime, "/api/streamable/a", "POST", call("echo"), cookie=f"{SESSION_COOKIE}={token}")
        await through_request_hooks(runtime, flow)
    assert flow.response is None
    outcome = state_of(flow).outcome
    assert (outcome.verdict, outcome.scope, outcome.tool) == ("allowed", "mcp:server:a:tool:echo:execute", "echo")


async def answer_with_new_session(runtime: Runtime, token: str, store_fails: bool = False):
    """A streamable POST the upstream answered with a new Mcp-Session-Id."""
    with taddons.context():
        flow = flow_for(runtime, "/api/streamable/a", "POST", call("echo"), cookie=f"{SESSION_COOKIE}={token}")
        await through_request_hooks(runtime, flow)
        assert flow.response is None
        state_of(flow).approved = True  # as the Forwarder leaves it
        if store_fails:
            await runtime.store.close()  # a real store, unavailable from here on
        flow.response = tutils.tresp(status_code=200, headers=[(b"mcp-session-id", b"sid-new"),
                                                               (b"content-type", b"application/json")])
        await SessionBinding(runtime).responseheaders(flow)
    return flow


async def test_a_new_session_the_store_cannot_bind_is_audited_as_a_refused_503(runtime):
    token = await sign_in(runtime, "mcp-server-a")
    flow = await answer_with_new_session(runtime, token, store_fails=True)
    assert json.loads(flow.response.content)["error"] == "unavailable"
    assert_refused_after_the_answer(runtime, flow, 503)


async def test_an_upstream_session_id_owned_by_another_identity_is_audited_as_a_refused_502(runtime):
    token = await sign_in(runtime, "mcp-server-a")
    await runtime.store.bind("streamable:a:sid-new", "local:mallory", 60)
    flow = await answer_with_new_session(runtime, token)
    assert json.loads(flow.response.content)["message"] == "upstream session clash"
    assert_refused_after_the_answer(runtime, flow, 502)


def assert_refused_after_the_answer(runtime: Runtime, flow, status: int) -> None:
    """The answer is replaced (the session id is not handed out) and the audit says so: refused,
    with the status answered and what was decided about the request, marked in mitmweb."""
    assert flow.response.status_code == status and "mcp-session-id" not in flow.response.headers
    record = audited(runtime, flow)
    assert (record["decision"], record["status"], record["method"], record["tool"]) == (
        "refused", status, "tools/call", "echo")
    assert flow.marked and flow.comment.startswith("refused")
