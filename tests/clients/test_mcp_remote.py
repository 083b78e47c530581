"""mcp-remote (the stdio bridge desktop clients run) between the `mcp` SDK's stdio client and the
gateway, on both transports: with a `--header 'Cookie: …'`, and with OAuth, where it opens the
"browser" through the `open` package — `$BROWSER` here, pointing at tests/clients/browser.py, which
counts every opening — with its state in a temporary MCP_REMOTE_CONFIG_DIR."""

from __future__ import annotations

from contextlib import asynccontextmanager

import anyio
import pytest
from mcp import Client, MCPError
from mcp.client.stdio import StdioServerParameters, stdio_client

from tests.support.processes import free_port

from .conftest import (ALLOWED, CLIENT_TIMEOUT, NODE_BIN, REFUSED, Browser, cookie_for, names_refused_scope, node_env,
                       url_of)

pytestmark = pytest.mark.timeout(180)
# --transport: the gateway's two transports, no fallback from one to the other
TRANSPORTS = {"streamable": "http-only", "sse": "sse-only"}
READ_TIMEOUT = 20.0


@asynccontextmanager
async def mcp_remote(gateway, transport: str, tmp_path, *, cookie: str | None = None, browser: Browser | None = None):
    args = [url_of(gateway, transport), str(free_port()), "--transport", TRANSPORTS[transport],
            "--host", "127.0.0.1", "--auth-timeout", "30"]
    if cookie:
        args += ["--header", f"Cookie: {cookie}"]
    env = {**node_env(), "MCP_REMOTE_CONFIG_DIR": str(tmp_path / "mcp-remote")}
    if browser:
        env["BROWSER"] = str(browser.program)
    params = StdioServerParameters(command=str(NODE_BIN / "mcp-remote"), args=args, env=env)
    with open(tmp_path / "mcp-remote.stderr", "w") as errlog:
        async with Client(stdio_client(params, errlog=errlog), read_timeout_seconds=READ_TIMEOUT) as client:
            yield client


def stderr_of(tmp_path) -> str:
    return (tmp_path / "mcp-remote.stderr").read_text(errors="replace")


async def tools_and_calls(client: Client) -> tuple[list[str], str, str]:
    """The tools listed, the allowed call's text, and the message of the error the refused call raised."""
    tools = sorted(tool.name for tool in (await client.list_tools()).tools)
    allowed = await client.call_tool(ALLOWED["name"], ALLOWED["arguments"])
    with pytest.raises(MCPError) as refused:
        await client.call_tool(REFUSED["name"], REFUSED["arguments"])
    return tools, allowed.content[0].text, str(refused.value)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_with_a_cookie_header_a_refused_call_is_an_error_naming_the_scope(auth_gateway, tmp_path, transport):
    async with mcp_remote(auth_gateway, transport, tmp_path, cookie=cookie_for(auth_gateway, "tina")) as client:
        tools, allowed, refused = await tools_and_calls(client)

    assert tools == ["current_time_by_timezone"]
    assert allowed.endswith("+00:00")
    assert names_refused_scope(refused), refused  # not a timeout: the bridge passed the JSON-RPC error on


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_with_oauth_a_refused_call_is_an_error_naming_the_scope_without_reopening_the_browser(
        auth_gateway, tmp_path, browser_for, transport):
    browser = browser_for("tina")
    async with mcp_remote(auth_gateway, transport, tmp_path, browser=browser) as client:
        tools, allowed, refused = await tools_and_calls(client)

    assert tools == ["current_time_by_timezone"]
    assert allowed.endswith("+00:00")
    assert names_refused_scope(refused), refused  # not "mcp-remote: Unauthorized" after a second consent
    assert browser.outcomes() == [("allow", None, True, None)]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_with_oauth_a_person_without_access_gets_access_denied_once(auth_gateway, tmp_path, browser_for,
                                                                           transport):
    browser = browser_for("bob")
    with pytest.raises(Exception):  # the bridge gives up and exits: the stdio connection closes
        with anyio.fail_after(CLIENT_TIMEOUT):
            async with mcp_remote(auth_gateway, transport, tmp_path, browser=browser) as client:
                await client.list_tools()

    assert browser.outcomes() == [("deny", "access_denied", False, None)]
    assert "access_denied" in stderr_of(tmp_path)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_with_a_cookie_header_a_person_without_access_is_refused_at_connect(auth_gateway, tmp_path, transport):
    with pytest.raises(Exception):
        with anyio.fail_after(CLIENT_TIMEOUT):
            async with mcp_remote(auth_gateway, transport, tmp_path, cookie=cookie_for(auth_gateway, "bob")) as client:
                await client.list_tools()

    stderr = stderr_of(tmp_path)
    assert "403" in stderr, stderr
    assert "Waiting for authorization" not in stderr, stderr  # no sign-in can help a cookie without access
