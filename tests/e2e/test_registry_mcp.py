"""The registry as an MCP server (/api/streamable/registry), with the `mcp` SDK's Streamable
HTTP client through the real gateway: an admin, a reader (registry read + the registry
server's execute scope), a server owner who may toggle one server, and people the policies
do not let reach the registry server at all."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from mcp.shared.exceptions import MCPError

from mcp_gateway.passwords import hash_password
from tests.e2e.conftest import ADMIN_PASSWORD, test_policy_dir, wait_for_login_app
from tests.support.gateway import run_gateway, server_entry
from tests.support.login import cookie_header, login_local
from tests.support.mcp_clients import ACCEPT, INIT, streamable_session
from tests.support.processes import free_port

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
    accounts = [{"username": u, "password_hash": hash_password(PASSWORD), "groups": g} for u, g in USERS.items()]
    servers = [server_entry("currenttime", upstream_sse_answers.url),
               server_entry("other", f"http://127.0.0.1:{free_port()}", description="nobody home")]
    with run_gateway(tmp, servers, auth={"enabled": True, "provider_type": "local", "local": {"accounts": accounts}},
                     gateway={"policy_dir": str(policies), "health_check_interval": "1s", "health_check_timeout": "3s"},
                     env={"ADMIN_USER": "admin", "ADMIN_PASSWORD": ADMIN_PASSWORD}) as gw:
        wait_for_login_app(gw)
        yield gw


def headers_for(gw, user: str) -> dict[str, str]:
    return cookie_header(login_local(gw.url, user, ADMIN_PASSWORD if user == "admin" else PASSWORD))


async def _checked_tools(client, server: str) -> dict:
    deadline = time.monotonic() + 30
    while True:
        result = await client.call_tool("get_server_tools", {"server": server})
        if result.structured_content["health"]["status"] != "unknown" or time.monotonic() > deadline:
            return result.structured_content
        await asyncio.sleep(0.3)


async def test_admin_lists_finds_and_toggles(registry_gateway):
    url = registry_gateway.streamable_url("registry")
    async with streamable_session(url, headers_for(registry_gateway, "admin")) as client:
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
        entry = httpx.get(f"{registry_gateway.url}/api/servers/other", timeout=10,
                          headers=headers_for(registry_gateway, "admin")).json()
        assert entry["enabled"] is False
        await client.call_tool("toggle_server", {"server": "other", "enabled": True})


async def test_reader_reads_but_may_not_toggle(registry_gateway):
    async with streamable_session(registry_gateway.streamable_url("registry"),
                                  headers_for(registry_gateway, "reader")) as client:
        assert len((await client.call_tool("list_servers", {})).structured_content["servers"]) == 2
        tools = await _checked_tools(client, "currenttime")
        assert all(t["may_call"] is False and t["needs"] for t in tools["tools"])
        refused = await client.call_tool("toggle_server", {"server": "currenttime", "enabled": False})
        assert refused.is_error and "mcp:server:currenttime:toggle" in refused.content[0].text
    state = httpx.get(f"{registry_gateway.url}/api/servers/currenttime", timeout=10,
                      headers=headers_for(registry_gateway, "admin")).json()
    assert state["enabled"] is True


async def test_owner_toggles_only_their_server(registry_gateway):
    async with streamable_session(registry_gateway.streamable_url("registry"),
                                  headers_for(registry_gateway, "owner")) as client:
        refused = await client.call_tool("toggle_server", {"server": "other", "enabled": False})
        assert refused.is_error and "mcp:server:other:toggle" in refused.content[0].text
        done = await client.call_tool("toggle_server", {"server": "currenttime", "enabled": False})
        assert done.structured_content == {"server": "currenttime", "enabled": False}
        await client.call_tool("toggle_server", {"server": "currenttime", "enabled": True})


async def test_a_tool_scope_on_the_registry_server_narrows_it_like_any_server(registry_gateway):
    async with streamable_session(registry_gateway.streamable_url("registry"),
                                  headers_for(registry_gateway, "listonly")) as client:
        assert [t.name for t in (await client.list_tools()).tools] == ["list_servers"]
        servers = (await client.call_tool("list_servers", {})).structured_content["servers"]
        assert [s["name"] for s in servers] == ["currenttime"]  # only the servers this person may read
        with pytest.raises(MCPError) as refused:
            await client.call_tool("toggle_server", {"server": "currenttime", "enabled": False})
        assert "mcp:server:registry" in str(refused.value)


@pytest.mark.parametrize("user, status", [("browser", 403), (None, 401)])
def test_no_scope_on_the_registry_server_no_connection(registry_gateway, user, status):
    headers = {**ACCEPT, **(headers_for(registry_gateway, user) if user else {})}
    answer = httpx.post(registry_gateway.streamable_url("registry"), json=INIT, headers=headers, timeout=10)
    assert answer.status_code == status
    if status == 401:
        metadata = answer.headers["www-authenticate"].split('resource_metadata="')[1].rstrip('"')
        assert httpx.get(metadata, timeout=10).status_code == 200


@pytest.mark.parametrize("method, path, status", [
    ("GET", "/api/streamable/registry", 405),
    ("GET", "/api/execute/registry/sse", 404),
])
def test_what_the_registry_server_does_not_speak(registry_gateway, method, path, status):
    answer = httpx.request(method, registry_gateway.url + path, timeout=10,
                           headers={**ACCEPT, **headers_for(registry_gateway, "admin")})
    assert answer.status_code == status and answer.json()["status"] == status
