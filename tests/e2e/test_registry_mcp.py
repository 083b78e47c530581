"""The registry as an MCP server, with the `mcp` SDK's own clients through the real gateway on
both transports — Streamable HTTP (/api/streamable/registry, answered in the proxy) and SSE
(/api/execute/registry, relayed to the login app): an admin, a reader (registry read + the
registry server's execute scope), a server owner who may toggle one server, and people the
policies do not let reach the registry server at all."""

from __future__ import annotations

import asyncio
import re
import time
import uuid

import httpx
import pytest
from mcp.shared.exceptions import MCPError

from tests.support.accounts import account_hash
from mcp_gateway.registry_caller import CALLER_HEADER
from tests.e2e.conftest import ADMIN_PASSWORD, test_policy_dir, wait_for_login_app
from tests.support.gateway import run_gateway, server_entry
from tests.support.login import cookie_header, login_app_url, login_local
from tests.security.hostile import sse_stream
from tests.support.mcp_clients import ACCEPT, INIT, session_for
from tests.support.processes import free_port
from tests.support.waiting import wait_until

pytestmark = pytest.mark.timeout(120)

USERS = {  # name: groups (policies/default.toml plus the mapping written below)
    "reader": ["registry-reader"],                     # mcp:registry:read + mcp:server:registry:execute
    "owner": ["registry-reader", "mcp-server-currenttime-toggle"],
    "listonly": ["registry-list-tool"],                # only the list_servers tool of the registry server
    "browser": ["mcp-user"],                           # registry read, but no scope on the registry server
}
PASSWORD = "registry-mcp-password-for-tests"
POLICY = """[groups]
"registry-reader" = ["mcp:registry:read", "mcp:server:registry:execute"]
"registry-list-tool" = ["mcp:server:currenttime:read", "mcp:server:registry:tool:list_servers:execute"]
"""


@pytest.fixture(scope="module")
def registry_gateway(tmp_path_factory, upstream_sse_answers):
    tmp = tmp_path_factory.mktemp("gw-registry-mcp")
    policies = test_policy_dir(tmp)
    (policies / "60-registry.toml").write_text(POLICY)
    accounts = [{"username": u, "password_hash": account_hash(PASSWORD), "groups": g} for u, g in USERS.items()]
    servers = [server_entry("currenttime", upstream_sse_answers.url),
               server_entry("other", f"http://127.0.0.1:{free_port()}", description="nobody home")]
    with run_gateway(tmp, servers, auth={"enabled": True, "provider_type": "local", "local": {"accounts": accounts}},
                     gateway={"policy_dir": str(policies), "health_check_interval": "1s", "health_check_timeout": "3s"},
                     env={"ADMIN_USER": "admin", "ADMIN_PASSWORD": ADMIN_PASSWORD}) as gw:
        wait_for_login_app(gw)
        yield gw


def token_for(gw, user: str) -> str:
    return login_local(gw.url, user, ADMIN_PASSWORD if user == "admin" else PASSWORD)


def headers_for(gw, user: str) -> dict[str, str]:
    return cookie_header(token_for(gw, user))


TRANSPORTS = pytest.mark.parametrize("transport", ["streamable", "sse"])


def registry_session(gw, transport: str, user: str):
    url = gw.streamable_url("registry") if transport == "streamable" else gw.sse_url("registry")
    return session_for(transport)(url, headers_for(gw, user))


async def _checked_tools(client, server: str) -> dict:
    deadline = time.monotonic() + 30
    while True:
        result = await client.call_tool("get_server_tools", {"server": server})
        if result.structured_content["health"]["status"] != "unknown" or time.monotonic() > deadline:
            return result.structured_content
        await asyncio.sleep(0.3)


@TRANSPORTS
async def test_admin_lists_finds_and_toggles(registry_gateway, transport):
    async with registry_session(registry_gateway, transport, "admin") as client:
        listed = sorted(t.name for t in (await client.list_tools()).tools)
        assert listed == ["find_tools", "get_server_tools", "list_servers", "toggle_server"]
        servers = (await client.call_tool("list_servers", {})).structured_content["servers"]
        assert [s["name"] for s in servers] == ["currenttime", "other"]
        tools = await _checked_tools(client, "currenttime")
        assert "current_time_by_timezone" in [t["name"] for t in tools["tools"]]
        found = (await client.call_tool("find_tools", {"query": "TIME timezone"})).structured_content["tools"]
        assert [(t["server"], t["name"]) for t in found] == [("currenttime", "current_time_by_timezone")]
        assert (await client.call_tool("find_tools", {"query": "no-such-word"})).structured_content["tools"] == []
        off = await client.call_tool("toggle_server", {"server": "other", "enabled": False})
        assert not off.is_error and off.structured_content == {"server": "other", "enabled": False}
        admin = headers_for(registry_gateway, "admin")

        def proxy_sees_it_off() -> bool:  # the SSE transport's toggle is written by the login app
            return httpx.get(f"{registry_gateway.url}/api/servers/other", headers=admin, timeout=10).json()["enabled"] is False
        await asyncio.to_thread(wait_until, proxy_sees_it_off, 15, "the toggle reaches the registry API")
        await client.call_tool("toggle_server", {"server": "other", "enabled": True})
        await asyncio.to_thread(wait_until, lambda: not proxy_sees_it_off(), 15, "the server is back on")


@TRANSPORTS
async def test_reader_reads_but_may_not_toggle(registry_gateway, transport):
    async with registry_session(registry_gateway, transport, "reader") as client:
        assert len((await client.call_tool("list_servers", {})).structured_content["servers"]) == 2
        tools = await _checked_tools(client, "currenttime")
        assert all(t["may_call"] is False and t["needs"] for t in tools["tools"])
        refused = await client.call_tool("toggle_server", {"server": "currenttime", "enabled": False})
        assert refused.is_error and "mcp:server:currenttime:toggle" in refused.content[0].text
    state = httpx.get(f"{registry_gateway.url}/api/servers/currenttime", timeout=10,
                      headers=headers_for(registry_gateway, "admin")).json()
    assert state["enabled"] is True


@TRANSPORTS
async def test_owner_toggles_only_their_server(registry_gateway, transport):
    async with registry_session(registry_gateway, transport, "owner") as client:
        refused = await client.call_tool("toggle_server", {"server": "other", "enabled": False})
        assert refused.is_error and "mcp:server:other:toggle" in refused.content[0].text
        done = await client.call_tool("toggle_server", {"server": "currenttime", "enabled": False})
        assert done.structured_content == {"server": "currenttime", "enabled": False}
        await client.call_tool("toggle_server", {"server": "currenttime", "enabled": True})


@TRANSPORTS
async def test_a_tool_scope_on_the_registry_server_narrows_it_like_any_server(registry_gateway, transport):
    async with registry_session(registry_gateway, transport, "listonly") as client:
        assert [t.name for t in (await client.list_tools()).tools] == ["list_servers"]
        servers = (await client.call_tool("list_servers", {})).structured_content["servers"]
        assert [s["name"] for s in servers] == ["currenttime"]  # only the servers this person may read
        with pytest.raises(MCPError) as refused:
            await client.call_tool("toggle_server", {"server": "currenttime", "enabled": False})
        assert "mcp:server:registry" in str(refused.value)


@pytest.mark.parametrize("transport", ["streamable", "sse"])
@pytest.mark.parametrize("user, status", [("browser", 403), (None, 401)])
def test_no_scope_on_the_registry_server_no_connection(registry_gateway, transport, user, status):
    headers = {**ACCEPT, **(headers_for(registry_gateway, user) if user else {})}
    if transport == "streamable":
        answer = httpx.post(registry_gateway.streamable_url("registry"), json=INIT, headers=headers, timeout=10)
    else:
        answer = httpx.get(registry_gateway.sse_url("registry"), headers=headers, timeout=10)
    assert answer.status_code == status
    if status == 401:
        metadata = answer.headers["www-authenticate"].split('resource_metadata="')[1].rstrip('"')
        assert httpx.get(metadata, timeout=10).status_code == 200


@pytest.mark.parametrize("method, path, status", [
    ("GET", "/api/streamable/registry", 405),
    ("POST", "/api/execute/registry/sse", 405),
    ("GET", "/api/execute/registry/mcp", 404),
    ("POST", "/api/execute/registry/messages/", 404),                       # names no session
    ("POST", f"/api/execute/registry/messages/?session_id=5e551d00000000000000000000000000", 404),  # a session nobody opened
])
def test_what_the_registry_server_does_not_speak(registry_gateway, method, path, status):
    answer = httpx.request(method, registry_gateway.url + path, timeout=10, json=INIT if method == "POST" else None,
                           headers={**ACCEPT, **headers_for(registry_gateway, "admin")})
    assert answer.status_code == status and answer.json()["status"] == status


@pytest.mark.parametrize("path", ["/api/execute/registry", "/api/execute/registry/", "/api/execute/registry/sse"])
def test_every_stream_path_announces_a_message_endpoint_of_the_gateway(registry_gateway, path):
    with httpx.stream("GET", registry_gateway.url + path, headers=headers_for(registry_gateway, "admin"),
                      timeout=10) as stream:
        assert stream.status_code == 200 and stream.headers["content-type"].startswith("text/event-stream")
        lines = stream.iter_lines()
        assert next(lines) == "event: endpoint"
        endpoint = next(lines)
    assert re.fullmatch(r"data: /api/execute/registry/messages/\?session_id=[0-9a-f]{32}", endpoint)


def test_another_identity_cannot_post_into_the_admins_registry_stream(registry_gateway):
    toggle = {"jsonrpc": "2.0", "id": 7, "method": "tools/call",
              "params": {"name": "toggle_server", "arguments": {"server": "other", "enabled": False}}}
    with sse_stream(registry_gateway, token_for(registry_gateway, "admin"), "registry") as endpoint:
        for user in ("reader", "owner"):  # both may use the registry server, on their own sessions
            hijack = httpx.post(registry_gateway.url + endpoint, json=toggle, timeout=10,
                                headers=headers_for(registry_gateway, user))
            assert hijack.status_code == 403 and hijack.json()["status"] == 403
        own = httpx.post(registry_gateway.url + endpoint, timeout=10, headers=headers_for(registry_gateway, "admin"),
                         json={"jsonrpc": "2.0", "id": 8, "method": "ping"})
        assert own.status_code == 202
    admin = headers_for(registry_gateway, "admin")
    wait_until(lambda: httpx.get(f"{registry_gateway.url}/api/servers/other", headers=admin, timeout=10)
               .json()["enabled"] is True, 15, "the server the hijacker tried to turn off is still on")


def test_a_stream_ends_when_its_client_goes_away(registry_gateway):
    token = token_for(registry_gateway, "admin")
    headers, ping = cookie_header(token), {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    with sse_stream(registry_gateway, token, "registry") as endpoint:
        assert httpx.post(registry_gateway.url + endpoint, json=ping, headers=headers, timeout=10).status_code == 202
    # The gateway still knows the session; the login app has dropped the stream.
    wait_until(lambda: httpx.post(registry_gateway.url + endpoint, json=ping, headers=headers, timeout=10)
               .status_code == 404, 20, "the closed stream's session is gone")


@pytest.mark.parametrize("header", [None, "", "not-signed", "e30.0000", "e30." + "0" * 64])
def test_the_login_app_serves_the_registry_stream_only_to_the_gateway(registry_gateway, header):
    """A local process calling the login app's port directly, with no or a forged caller header."""
    base = login_app_url(registry_gateway) + "/_gateway/registry-mcp"
    headers = {} if header is None else {CALLER_HEADER: header}
    assert httpx.get(f"{base}/sse", headers=headers, timeout=10).status_code == 403
    posted = httpx.post(f"{base}/messages/?session_id={uuid.uuid4().hex}", json=INIT, headers=headers, timeout=10)
    assert posted.status_code == 403 and posted.json()["status"] == 403


def test_with_authentication_off_the_sse_transport_is_not_there(open_gateway):
    """No login app runs without authentication, so no SSE transport; Streamable HTTP answers."""
    answer = httpx.get(open_gateway.sse_url("registry"), timeout=10)
    assert answer.status_code == 404 and "/api/streamable/registry" in answer.json()["message"]
    assert httpx.post(open_gateway.streamable_url("registry"), json=INIT, headers=ACCEPT, timeout=10).status_code == 200
