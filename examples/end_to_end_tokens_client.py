"""Pass a GitHub token to a tool through the MCP Gateway (docs/end-to-end-tokens.md).

The gateway authenticates you (here: a local account, signed in with the client helper as in
call_with_cookie.py); the GitHub token is only a tool argument, forwarded to the server
untouched and kept out of the gateway's logs.
"""

import asyncio
import os

from mcp_gateway.client import GatewayClient

GATEWAY = os.environ.get("GATEWAY_URL", "http://localhost:7860")
SERVER = os.environ.get("MCP_SERVER", "github")


async def main() -> str:
    gateway = await GatewayClient.sign_in(GATEWAY, os.environ.get("ADMIN_USER", "admin"), os.environ["ADMIN_PASSWORD"])
    async with gateway.session(SERVER) as client:
        result = await client.call_tool("get_github_user", {"github_token": os.environ["GITHUB_TOKEN"]})
        return result.content[0].text


if __name__ == "__main__":
    print(asyncio.run(main()))
