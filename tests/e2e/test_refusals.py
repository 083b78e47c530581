"""Refusals an MCP client can show (issue 20): a call the person's groups refuse is a JSON-RPC
error in a 200 answer naming the scope and the group that would grant it; no access at all is
a 403 without a step-up challenge; `insufficient_scope` only for a facade token granted less than
the groups allow now — where authorizing the client again helps. Real gateway, real upstreams,
the `mcp` SDK's clients (cookie and OAuth, both transports)."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest
from mcp.shared.exceptions import MCPError

from tests.e2e.conftest import ACCOUNTS, local_accounts, test_policy_dir, wait_for_login_app
from tests.e2e.test_mcp_oauth import MemoryStorage, oauth_provider, sdk_session
from tests.support.facade import Facade
from tests.support.gateway import run_gateway, server_entry
from tests.support.login import cookie_header, login_local
from tests.support.mcp_clients import ACCEPT, INIT, session_for

pytestmark = pytest.mark.timeout(120)

COUNTDOWN_SCOPE = "mcp:server:currenttime:tool:countdown:execute"
TOOL_ONLY_SCOPE = "mcp:server:currenttime:tool:current_time_by_timezone:execute"
TINA_PASSWORD = ACCOUNTS["tina"][0]


def call(request_id: object, tool: str) -> dict:
    return {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": {"name": tool, "arguments": {}}}


def tina(gw) -> dict[str, str]:
    return cookie_header(login_local(gw.url, "tina", TINA_PASSWORD))


def initialized(gw, headers: dict[str, str]) -> dict[str, str]:
    """Headers of an initialized Streamable HTTP session of `headers`' person."""
    init = httpx.post(gw.streamable_url("currenttime"), json=INIT, headers={**headers, **ACCEPT}, timeout=10)
    assert init.status_code == 200, init.text
    return {**headers, **ACCEPT, "mcp-session-id": init.headers["mcp-session-id"]}


def assert_names_scope_and_group(message: str) -> None:
    assert COUNTDOWN_SCOPE in message and "group mcp-server-currenttime-tool-countdown" in message, message
    assert "mcp:server:currenttime:execute (group mcp-server-currenttime)" in message, message


# -- policy refusals: a JSON-RPC error in a 200 answer -----------------------------------------------


@pytest.mark.parametrize("accept,content_type", [
    ("application/json, text/event-stream", "application/json"),  # what the mcp and TypeScript SDKs send
    ("text/event-stream, application/json", "application/json"),
    ("application/json", "application/json"),
    ("*/*", "application/json"),
    ("text/event-stream", "text/event-stream"),
])
def test_a_refused_tool_is_a_jsonrpc_error_in_a_200_answer_as_accept_asks(auth_gateway, accept, content_type):
    headers = {**initialized(auth_gateway, tina(auth_gateway)), "accept": accept}

    answer = httpx.post(auth_gateway.streamable_url("currenttime"), json=call(7, "countdown"), headers=headers,
                        timeout=10)

    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith(content_type)
    assert "www-authenticate" not in answer.headers
    if content_type == "text/event-stream":
        assert answer.text.startswith("event: message\ndata: ") and answer.text.count("event: message") == 1
        error = json.loads(answer.text.split("data: ", 1)[1].split("\n", 1)[0])
    else:
        error = answer.json()
    assert error["id"] == 7 and error["error"]["code"] == -32003
    assert error["error"]["data"]["scope"] == COUNTDOWN_SCOPE
    assert error["error"]["data"]["groups"] == ["mcp-server-currenttime-tool-countdown", "mcp-server-currenttime"]
    assert_names_scope_and_group(error["error"]["message"])


@pytest.mark.parametrize("batch,expected_ids", [
    ([call(2, "current_time_by_timezone"), call(3, "countdown")], [2, 3]),
    ([call("a", "countdown"), {"jsonrpc": "2.0", "method": "notifications/progress", "params": {}}], ["a"]),
    ([{"jsonrpc": "2.0", "id": 9, "method": "resources/read", "params": {"uri": "x:/"}}, call(10, "countdown")],
     [9, 10]),
])
def test_a_batch_with_one_refused_call_is_refused_whole_with_an_error_per_request(auth_gateway, batch, expected_ids):
    answer = httpx.post(auth_gateway.streamable_url("currenttime"), json=batch,
                        headers=initialized(auth_gateway, tina(auth_gateway)), timeout=10)

    assert answer.status_code == 200, answer.text
    errors = answer.json()
    assert [e["id"] for e in errors] == expected_ids  # notifications get nothing
    assert all(e["error"]["code"] == -32003 and "forbidden" in e["error"]["message"] for e in errors)


@pytest.mark.parametrize("transport", ["sse", "streamable"])
async def test_sdk_cookie_client_raises_naming_the_scope_and_group(auth_gateway, transport):
    url = auth_gateway.sse_url("currenttime") if transport == "sse" else auth_gateway.streamable_url("currenttime")
    async with session_for(transport)(url, tina(auth_gateway)) as client:
        started = time.monotonic()
        with pytest.raises(MCPError) as refused:
            await client.call_tool("countdown", {"steps": 1, "interval": 0})
        assert time.monotonic() - started < 5
        assert_names_scope_and_group(str(refused.value))
        assert (await client.call_tool("current_time_by_timezone", {"timezone": "UTC"})).content


# -- no access at all: 403 naming the scope, no step-up challenge ---------------------------------------


@pytest.mark.parametrize("transport,method,body", [
    ("sse", "GET", None),  # SSE takes POSTs only on the message endpoint of a stream it could not open
    ("streamable", "GET", None), ("streamable", "DELETE", None), ("streamable", "POST", INIT),
    ("streamable", "POST", call(1, "countdown")),
])
def test_no_access_at_all_is_a_403_without_a_challenge(auth_gateway, transport, method, body):
    url = auth_gateway.sse_url("currenttime") if transport == "sse" else auth_gateway.streamable_url("currenttime")
    bob = cookie_header(login_local(auth_gateway.url, "bob", ACCOUNTS["bob"][0]))

    answer = httpx.request(method, url, json=body, headers={**bob, **ACCEPT}, timeout=10)

    assert answer.status_code == 403, answer.text
    assert "www-authenticate" not in answer.headers
    is_call = body is not None and body["method"] == "tools/call"
    assert answer.json()["scope"] == (COUNTDOWN_SCOPE if is_call else "mcp:server:currenttime:read")
    assert "(group mcp-server-currenttime" in answer.json()["message"]
    if body is not None:  # also the request's JSON-RPC error, which SDK clients show for a non-2xx answer
        assert answer.json()["id"] == body["id"] and answer.json()["error"]["code"] == -32003
        assert answer.json()["scope"] in answer.json()["error"]["message"]


def test_a_registry_refusal_is_a_403_without_a_challenge(auth_gateway):
    bob = cookie_header(login_local(auth_gateway.url, "bob", ACCOUNTS["bob"][0]))
    answer = httpx.post(f"{auth_gateway.url}/api/servers/recorder/toggle", headers=bob, timeout=10)
    assert answer.status_code == 403 and "www-authenticate" not in answer.headers
    assert "insufficient_scope" not in answer.text


# -- OAuth tokens: a policy refusal never asks for a second consent; step-up only when it helps ------------


@pytest.fixture
def stepup_gateway(tmp_path, upstream_sse_answers):
    """Its own gateway (local accounts) whose policy the test edits."""
    policies = test_policy_dir(tmp_path)
    with run_gateway(tmp_path, [server_entry("currenttime", upstream_sse_answers.url)],
                     auth={"enabled": True, "provider_type": "local", "local": local_accounts()},
                     gateway={"policy_dir": str(policies)}) as gw:
        wait_for_login_app(gw)
        gw.policies = policies
        yield gw


@pytest.mark.parametrize("transport", ["streamable", "sse"])
async def test_oauth_sdk_client_gets_the_error_and_no_second_consent(auth_gateway, transport):
    url = auth_gateway.streamable_url("currenttime") if transport == "streamable" else auth_gateway.sse_url(
        "currenttime")
    storage, consents = MemoryStorage(), []
    async with httpx.AsyncClient(timeout=15) as browser:
        auth = oauth_provider(url, browser, "tina", TINA_PASSWORD, storage, authorizations=consents)
        async with sdk_session(transport, url, auth) as client:
            assert [t.name for t in (await client.list_tools()).tools] == ["current_time_by_timezone"]
            with pytest.raises(MCPError) as refused:
                await client.call_tool("countdown", {"steps": 1, "interval": 0})
            assert (await client.call_tool("current_time_by_timezone", {"timezone": "UTC"})).content

    assert_names_scope_and_group(str(refused.value))
    assert len(consents) == 1, "a policy refusal must not send the person to consent again"
    assert storage.tokens.scope.split() == [TOOL_ONLY_SCOPE]  # exactly what tina holds on currenttime


@pytest.mark.parametrize("transport", ["streamable", "sse"])
async def test_a_token_granted_less_than_the_groups_allow_now_gets_the_step_up_challenge(stepup_gateway, transport):
    gw = stepup_gateway
    url = gw.streamable_url("currenttime") if transport == "streamable" else gw.sse_url("currenttime")
    storage, consents = MemoryStorage(), []
    async with httpx.AsyncClient(timeout=15) as browser:
        auth = oauth_provider(url, browser, "tina", TINA_PASSWORD, storage, authorizations=consents)
        async with sdk_session(transport, url, auth) as client:
            with pytest.raises(MCPError):
                await client.call_tool("countdown", {"steps": 1, "interval": 0})
            narrow = storage.tokens.access_token
            assert storage.tokens.scope.split() == [TOOL_ONLY_SCOPE]

            # Opened before the policy edit: once it applies, the stream itself is refused for step-up.
            target = gw.streamable_url("currenttime") if transport == "streamable" else \
                await _sse_message_url(gw, narrow)
            # tina's group now grants the whole server: her token was granted less than that
            (gw.policies / "60-wider.toml").write_text(
                '[groups]\n"mcp-server-currenttime-tool-current_time_by_timezone" = '
                '["mcp:server:currenttime:execute"]\n')
            raw = await _until_status(target, narrow, 403)
            assert 'error="insufficient_scope"' in raw.headers["www-authenticate"]
            assert f'scope="{COUNTDOWN_SCOPE}"' in raw.headers["www-authenticate"]
            assert "authorize the client again" in raw.json()["message"]
            await _login_app_scopes(browser, gw.url, lambda scopes: "mcp:server:currenttime:execute" in scopes)

            # the SDK steps up (one more consent) and its retried call goes through
            result = await client.call_tool("countdown", {"steps": 1, "interval": 0})

    assert result.content[0].text == "counted 1 steps"
    assert len(consents) == 2
    assert "mcp:server:currenttime:execute" in storage.tokens.scope.split()


async def _sse_message_url(gw, token: str) -> str:
    """The message endpoint of an SSE stream opened with `token` (POSTs go only there)."""
    headers = {"accept": "text/event-stream", "authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(timeout=10) as http:
        async with http.stream("GET", gw.sse_url("currenttime"), headers=headers) as stream:
            async for line in stream.aiter_lines():
                if line.startswith("data:"):
                    return gw.url + line.removeprefix("data:").strip()
    raise AssertionError("the SSE stream announced no message endpoint")


async def _until_status(url: str, token: str, wanted: int, timeout: float = 10) -> httpx.Response:
    """POST a tools/call of countdown with `token` until the answer has `wanted` status (a policy edit
    applies within the gateway's poll interval)."""
    headers = {**ACCEPT, "authorization": f"Bearer {token}"}
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(timeout=10) as http:
        while True:
            answer = await http.post(url, json=call(2, "countdown"), headers=headers)
            if answer.status_code == wanted or time.monotonic() > deadline:
                assert answer.status_code == wanted, answer.text
                return answer
            await asyncio.sleep(0.3)


async def _login_app_scopes(browser: httpx.AsyncClient, base_url: str, wanted, timeout: float = 10) -> None:
    """Wait until the login app (a process of its own, reloading the policy itself) shows scopes
    in force for which `wanted(scopes)` holds."""
    deadline = time.monotonic() + timeout
    while not wanted((await browser.get(f"{base_url}/oauth/me")).json().get("scopes", [])):
        assert time.monotonic() < deadline, "the login app never saw the policy edit"
        await asyncio.sleep(0.3)


async def test_a_token_whose_groups_lost_all_access_gets_403_without_challenge_and_no_refresh(stepup_gateway):
    gw = stepup_gateway
    async with httpx.AsyncClient(base_url=gw.url, timeout=15) as browser:
        facade = Facade(browser)
        client = await facade.register()
        grant = await facade.authorize(client, gw.streamable_url("currenttime"), "rita", ACCOUNTS["rita"][0])
        issued = (await facade.redeem(client, grant)).json()
        assert issued["scope"] == "mcp:server:currenttime:read"

        (gw.policies / "50-tests.toml").write_text("# reader-currenttime grants nothing any more\n")
        refused = await _until_status(gw.streamable_url("currenttime"), issued["access_token"], 403)
        assert "www-authenticate" not in refused.headers  # no consent can help: no step-up
        await _login_app_scopes(browser, gw.url, lambda scopes: not scopes)
        refreshed = await facade.refresh(client, issued["refresh_token"])

    assert refreshed.status_code == 400 and refreshed.json()["error"] == "invalid_grant"
    assert "no longer give access to server 'currenttime'" in refreshed.json()["error_description"]
