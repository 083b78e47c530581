"""Call a tool through the MCP Gateway with the `mcp` SDK, signed in with a local account."""

import asyncio
import os

import httpx
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

GATEWAY = os.environ.get("GATEWAY_URL", "http://localhost:7860")


def sign_in(username: str, password: str) -> str:
    """The session cookie's value, from the login app's form endpoint."""
    response = httpx.post(f"{GATEWAY}/oauth/login/local", data={"username": username, "password": password},
                          headers={"origin": GATEWAY})
    if response.status_code != 303:
        raise SystemExit(f"sign-in failed: HTTP {response.status_code}")
    return response.cookies["mcp_gateway_session"]


async def main() -> str:
    session = sign_in(os.environ.get("ADMIN_USER", "admin"), os.environ["ADMIN_PASSWORD"])
    headers = {"cookie": f"mcp_gateway_session={session}"}
    async with create_mcp_http_client(headers=headers) as http:
        async with Client(streamable_http_client(f"{GATEWAY}/api/streamable/currenttime", http_client=http)) as client:
            tools = await client.list_tools()
            print("tools:", ", ".join(tool.name for tool in tools.tools))
            result = await client.call_tool("current_time_by_timezone", {"timezone": "Europe/Berlin"})
            return result.content[0].text


if __name__ == "__main__":
    print(asyncio.run(main()))
