"""Pass a GitHub token to a tool through the MCP Gateway (docs/end-to-end-tokens.md).

The gateway authenticates you (here: a local account's session cookie); the GitHub token is
only a tool argument, forwarded to the server untouched and kept out of the gateway's logs.
"""

import asyncio
import os

import httpx
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

GATEWAY = os.environ.get("GATEWAY_URL", "http://localhost:7860")
SERVER = os.environ.get("MCP_SERVER", "github")


def sign_in(username: str, password: str) -> str:
    response = httpx.post(f"{GATEWAY}/oauth/login/local", data={"username": username, "password": password},
                          headers={"origin": GATEWAY})
    if response.status_code != 303:
        raise SystemExit(f"sign-in failed: HTTP {response.status_code}")
    return response.cookies["mcp_gateway_session"]


async def main() -> str:
    session = sign_in(os.environ.get("ADMIN_USER", "admin"), os.environ["ADMIN_PASSWORD"])
    headers = {"cookie": f"mcp_gateway_session={session}"}
    async with create_mcp_http_client(headers=headers) as http:
        async with Client(streamable_http_client(f"{GATEWAY}/api/streamable/{SERVER}", http_client=http)) as client:
            result = await client.call_tool("get_github_user", {"github_token": os.environ["GITHUB_TOKEN"]})
            return result.content[0].text


if __name__ == "__main__":
    print(asyncio.run(main()))
