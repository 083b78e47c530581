"""The MCP Inspector's CLI (@modelcontextprotocol/inspector-cli) against the gateway, run with the
node 22 the `node` npm package installs (tests/clients/package.json), on both transports. Its CLI
has no OAuth flow of its own: it takes headers, so it is given a browser session's cookie, or an
access token the facade issued to a client (the OAuth case, tests.support.facade)."""

from __future__ import annotations

import json
import subprocess

import httpx
import pytest

from tests.support.facade import Facade

from .conftest import (ALLOWED, CLIENT_TIMEOUT, NODE_BIN, REFUSED, SERVER, cookie_for, names_refused_scope,
                       node_env, password, url_of)

pytestmark = pytest.mark.timeout(180)
INSPECTOR = NODE_BIN.parent / "@modelcontextprotocol" / "inspector-cli" / "build" / "index.js"
TRANSPORTS = {"streamable": "http", "sse": "sse"}


def inspector(gateway, transport: str, header: str, *method: str) -> subprocess.CompletedProcess:
    command = [str(NODE_BIN / "node"), str(INSPECTOR), url_of(gateway, transport), "--transport",
               TRANSPORTS[transport], "--header", header, *method]
    # cwd: the CLI finds its own package.json by a path relative to the working directory
    return subprocess.run(command, capture_output=True, text=True, timeout=CLIENT_TIMEOUT, env=node_env(),
                          cwd=INSPECTOR.parent)


def tool_call(tool: dict) -> list[str]:
    return ["--method", "tools/call", "--tool-name", tool["name"],
            *[arg for name, value in tool["arguments"].items() for arg in ("--tool-arg", f"{name}={value}")]]


async def access_token(gateway, username: str, transport: str) -> str:
    async with httpx.AsyncClient(base_url=gateway.url, timeout=15) as http:
        facade = Facade(http)
        client = await facade.register(client_name="MCP Inspector")
        resource = gateway.streamable_url(SERVER) if transport == "streamable" else f"{gateway.url}/api/execute/{SERVER}"
        grant = await facade.authorize(client, resource, username, password(username))
        return (await facade.redeem(client, grant)).json()["access_token"]


async def header_for(gateway, mode: str, username: str, transport: str) -> str:
    if mode == "cookie":
        return f"Cookie: {cookie_for(gateway, username)}"
    return f"Authorization: Bearer {await access_token(gateway, username, transport)}"


@pytest.mark.parametrize("mode", ["cookie", "oauth-token"])
@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_lists_calls_and_shows_a_refusal_naming_the_scope(auth_gateway, transport, mode):
    header = await header_for(auth_gateway, mode, "tina", transport)

    listed = inspector(auth_gateway, transport, header, "--method", "tools/list")
    allowed = inspector(auth_gateway, transport, header, *tool_call(ALLOWED))
    refused = inspector(auth_gateway, transport, header, *tool_call(REFUSED))

    assert listed.returncode == 0, listed.stderr
    assert [tool["name"] for tool in json.loads(listed.stdout)["tools"]] == ["current_time_by_timezone"]
    assert allowed.returncode == 0, allowed.stderr
    assert json.loads(allowed.stdout)["content"][0]["text"].endswith("+00:00")
    assert refused.returncode != 0
    # the JSON-RPC error as the SDK's McpError, not "Error POSTing to endpoint: <raw body>"
    assert "Failed to call tool countdown: MCP error -32" in refused.stderr, refused.stderr
    assert names_refused_scope(refused.stderr), refused.stderr


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_person_without_access_is_refused_at_connect(auth_gateway, transport):
    # (with OAuth such a person gets no token at all: access_denied at consent, see the other clients)
    listed = inspector(auth_gateway, transport, await header_for(auth_gateway, "cookie", "bob", transport),
                       "--method", "tools/list")

    assert listed.returncode != 0 and not listed.stdout.strip()
    # 403 with a JSON body naming the scope; over SSE the SDK shows only the status of the GET stream
    expected = "mcp:server:currenttime:read" if transport == "streamable" else "403"
    assert expected in listed.stderr, listed.stderr
