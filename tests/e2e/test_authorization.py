"""Scope enforcement end to end, row by row of docs/policies.md's table, with the `mcp` SDK's
clients against the real gateway (policies/default.toml + one explicit mapping)."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from mcp.shared.exceptions import MCPError

from tests.e2e.conftest import ACCOUNTS, ADMIN_PASSWORD
from tests.support.login import cookie_header, login_local
from tests.support.mcp_clients import ACCEPT, sse_session, streamable_session
from tests.support.waiting import wait_until

pytestmark = pytest.mark.timeout(120)

TRANSPORTS = [("sse", "currenttime"), ("streamable", "currenttime"), ("streamable", "currenttime-json")]
TRANSPORT_IDS = ["sse", "streamable-sse-answers", "streamable-json-answers"]


def headers_for(gw, user: str) -> dict[str, str]:
    password = ADMIN_PASSWORD if user == "admin" else ACCOUNTS[user][0]
    return cookie_header(login_local(gw.url, user, password))


def session(gw, transport: str, server: str, headers):
    if transport == "sse":
        return sse_session(gw.sse_url(server), headers)
    return streamable_session(gw.streamable_url(server), headers)


def names(result) -> list[str]:
    return sorted(t.name for t in result.tools)


@pytest.mark.parametrize("transport,server", TRANSPORTS, ids=TRANSPORT_IDS)
async def test_tool_scope_user_sees_and_calls_only_that_tool(auth_gateway, transport, server):
    # tina's groups grant only the tool scope of current_time_by_timezone, on currenttime and on
    # currenttime-json (a hyphenated name: "mcp-server-currenttime-json-tool-…" must bind to it)
    headers = headers_for(auth_gateway, "tina")
    async with session(auth_gateway, transport, server, headers) as client:
        assert names(await client.list_tools()) == ["current_time_by_timezone"]
        result = await client.call_tool("current_time_by_timezone", {"timezone": "UTC"})
        assert result.content[0].text.endswith("+00:00")
        started = time.monotonic()
        with pytest.raises(MCPError) as refused:
            await client.call_tool("countdown", {"steps": 1, "interval": 0})
        assert time.monotonic() - started < 5, "a refused call must fail promptly, not time out"
        assert f"mcp:server:{server}:tool:countdown:execute" in str(refused.value)
        # the session stays usable after a refusal
        assert names(await client.list_tools()) == ["current_time_by_timezone"]


@pytest.mark.parametrize("transport,server", TRANSPORTS, ids=TRANSPORT_IDS)
async def test_admin_sees_every_tool(auth_gateway, transport, server):
    async with session(auth_gateway, transport, server, headers_for(auth_gateway, "admin")) as client:
        assert names(await client.list_tools()) == ["countdown", "current_time_by_timezone"]


@pytest.mark.parametrize("transport", ["sse", "streamable"])
async def test_server_read_can_connect_and_list_but_not_call(auth_gateway, transport):
    async with session(auth_gateway, transport, "currenttime", headers_for(auth_gateway, "rita")) as client:
        assert names(await client.list_tools()) == []
        with pytest.raises(MCPError) as refused:
            await client.call_tool("current_time_by_timezone", {"timezone": "UTC"})
        assert "mcp:server:currenttime:tool:current_time_by_timezone:execute" in str(refused.value)


@pytest.mark.parametrize("transport", ["sse", "streamable"])
async def test_server_execute_calls_every_tool(auth_gateway, transport):
    async with session(auth_gateway, transport, "currenttime", headers_for(auth_gateway, "dana")) as client:
        assert names(await client.list_tools()) == ["countdown", "current_time_by_timezone"]
        result = await client.call_tool("countdown", {"steps": 1, "interval": 0})
        assert result.content[0].text == "counted 1 steps"


def test_registry_read_lists_but_cannot_connect(auth_gateway):
    headers = headers_for(auth_gateway, "bob")
    listing = httpx.get(f"{auth_gateway.url}/api/servers", headers=headers, timeout=10)
    assert listing.status_code == 200
    assert {s["name"] for s in listing.json()["servers"]} == {"currenttime", "currenttime-json", "recorder"}
    entry = httpx.get(f"{auth_gateway.url}/api/servers/currenttime", headers=headers, timeout=10)
    assert entry.status_code == 200 and entry.json()["endpoints"]["streamable"].endswith("/api/streamable/currenttime")
    for response in (
        httpx.get(auth_gateway.sse_url("currenttime"), headers=headers, timeout=10),
        httpx.post(auth_gateway.streamable_url("currenttime"), headers={**headers, **ACCEPT}, timeout=10,
                   json={"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                       "protocolVersion": "2025-06-18", "capabilities": {},
                       "clientInfo": {"name": "t", "version": "1"}}}),
    ):
        # no access at all: 403 naming the scope, and no step-up challenge (groups decide, not consent)
        assert response.status_code == 403 and response.json()["scope"] == "mcp:server:currenttime:read"
        assert "www-authenticate" not in response.headers


def test_registry_list_is_filtered_to_readable_servers(auth_gateway):
    listing = httpx.get(f"{auth_gateway.url}/api/servers", headers=headers_for(auth_gateway, "dana"), timeout=10)
    assert [s["name"] for s in listing.json()["servers"]] == ["currenttime"]
    hidden = httpx.get(f"{auth_gateway.url}/api/servers/recorder", headers=headers_for(auth_gateway, "dana"),
                       timeout=10)
    assert hidden.status_code == 403 and hidden.json()["scope"] == "mcp:server:recorder:read"


def test_toggle_edit_and_admin_on_the_registry_api(auth_gateway):
    api = f"{auth_gateway.url}/api/servers"
    otto, eddy, admin, bob = (headers_for(auth_gateway, u) for u in ("otto", "eddy", "admin", "bob"))
    # toggle: only with mcp:server:recorder:toggle (or admin)
    assert httpx.post(f"{api}/recorder/toggle", headers=bob, timeout=10).status_code == 403
    off = httpx.post(f"{api}/recorder/toggle", headers=otto, json={"enabled": False}, timeout=10)
    assert off.status_code == 200 and off.json()["enabled"] is False
    down = httpx.post(auth_gateway.streamable_url("recorder"), headers=admin, timeout=10,
                      json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
    assert down.status_code == 503
    assert httpx.post(f"{api}/recorder/toggle", headers=otto, json={"enabled": True}, timeout=10).json()["enabled"]
    # edit: only with mcp:server:recorder:edit
    assert httpx.patch(f"{api}/recorder", headers=otto, json={"description": "x"}, timeout=10).status_code == 403
    edited = httpx.patch(f"{api}/recorder", headers=eddy, json={"description": "records requests"}, timeout=10)
    assert edited.status_code == 200 and edited.json()["description"] == "records requests"
    # url: the registry admin's (tests/security/test_registry_edits.py has the whole table)
    moved = httpx.patch(f"{api}/recorder", headers=eddy, json={"url": "http://127.0.0.1:1"}, timeout=10)
    assert moved.status_code == 403 and moved.json()["scope"] == "mcp:registry:admin"
    bad = httpx.patch(f"{api}/recorder", headers=admin, json={"url": "ftp://x"}, timeout=10)
    assert bad.status_code == 400 and "http" in bad.json()["message"]
    creds = httpx.patch(f"{api}/recorder", headers=admin, json={"url": "http://u:p@127.0.0.1:1"}, timeout=10)
    assert creds.status_code == 400
    # register and delete: admin only
    entry = {"name": "extra", "url": "http://127.0.0.1:9", "description": "added at run time"}
    assert httpx.post(api, headers=eddy, json=entry, timeout=10).status_code == 403
    created = httpx.post(api, headers=admin, json=entry, timeout=10)
    assert created.status_code == 201 and created.json()["name"] == "extra"
    assert httpx.post(api, headers=admin, json=entry, timeout=10).status_code == 409
    assert httpx.post(api, headers=admin, json={**entry, "name": "Bad Name"}, timeout=10).status_code == 400
    assert httpx.delete(f"{api}/extra", headers=eddy, timeout=10).status_code == 403
    assert httpx.delete(f"{api}/extra", headers=admin, timeout=10).status_code == 200
    assert httpx.get(f"{api}/extra", headers=admin, timeout=10).status_code == 404
    # gateway.toml is never rewritten
    assert "extra" not in auth_gateway.config_path.read_text()


@pytest.mark.parametrize("body,status", [
    (b"not json", 400),
    (b'{"jsonrpc": "2.0", "id": 1, "method": "ping", "method": "tools/call"}', 400),
    (b'{"jsonrpc": "2.0", "id": 1, "method": "ping", "Method": "tools/call"}', 400),
    (b'{"jsonrpc": "2.0", "id": 1, "method": 42}', 400),
    (b'{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": ["countdown"]}}', 400),
    (b'{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "x", "arguments": {"a": NaN}}}', 400),
    (b"[]", 400),
    (b"[" * 200 + b"]" * 200, 400),
    (b'{"jsonrpc": "2.0", "id": true, "method": "ping"}', 400),
])
def test_unreadable_bodies_are_refused_whole(auth_gateway, recorder, body, status):
    before = len(recorder.requests)
    response = httpx.post(auth_gateway.streamable_url("recorder"), content=body,
                          headers={**headers_for(auth_gateway, "admin"), "content-type": "application/json"},
                          timeout=10)
    assert response.status_code == status, response.text
    assert response.json()["status"] == status
    assert len(recorder.requests) == before


def test_a_batch_with_one_forbidden_call_is_refused_whole(auth_gateway, upstream_sse_answers):
    headers = {**headers_for(auth_gateway, "tina"), **ACCEPT}
    url = auth_gateway.streamable_url("currenttime")
    init = httpx.post(url, headers=headers, timeout=10, json={"jsonrpc": "2.0", "id": 1, "method": "initialize",
                      "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                                 "clientInfo": {"name": "t", "version": "1"}}})
    assert init.status_code == 200
    batch = [
        {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
         "params": {"name": "current_time_by_timezone", "arguments": {}}},
        {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "countdown", "arguments": {}}},
    ]
    response = httpx.post(url, headers={**headers, "mcp-session-id": init.headers["mcp-session-id"]},
                          json=batch, timeout=10)
    assert response.status_code == 200  # JSON-RPC errors, which MCP clients show
    errors = response.json()
    assert [e["id"] for e in errors] == [2, 3]
    assert all(e["error"]["data"]["scope"] == "mcp:server:currenttime:tool:countdown:execute" for e in errors)


def test_decisions_are_audited_without_secrets(auth_gateway):
    token = login_local(auth_gateway.url, "tina", ACCOUNTS["tina"][0])
    httpx.get(auth_gateway.sse_url("recorder"), headers=cookie_header(token), timeout=10)
    audit = auth_gateway.state_dir / "audit.jsonl"
    refused = wait_until(lambda: [r for r in map(json.loads, audit.read_text().splitlines())
                                  if r["user"] == "tina" and r["server"] == "recorder"], 5, "tina's request is audited")
    assert refused[-1]["decision"] == "refused" and refused[-1]["status"] == 403
    assert refused[-1]["scope"] == "mcp:server:recorder:read"
    assert token not in audit.read_text() and token not in auth_gateway.log
    assert "access refused" in auth_gateway.log
