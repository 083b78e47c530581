"""Pass a GitHub token to a tool through the MCP Gateway (docs/end-to-end-tokens.md).

The gateway authenticates you (here: a local account's session cookie, signed in as in
call_with_cookie.py); the GitHub token is only a tool argument, forwarded to the server
untouched and kept out of the gateway's logs.
"""

import asyncio
import os

from call_with_cookie import GATEWAY, sign_in
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

SERVER = os.environ.get("MCP_SERVER", "github")


async def main() -> str:
    session = sign_in(os.environ.get("ADMIN_USER", "admin"), os.environ["ADMIN_PASSWORD"])
    headers = {"cookie": f"mcp_gateway_session={session}"}
    async with create_mcp_http_client(headers=headers) as http:
        async with Client(streamable_http_client(f"{GATEWAY}/api/streamable/{SERVER}", http_client=http)) as client:
            result = await client.call_tool("get_github_user", {"github_token": os.environ["GITHUB_TOKEN"]})
            return result.content[0].text


if __name__ == "__main__":
    print(asyncio.run(main()))
