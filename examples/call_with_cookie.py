"""Call a tool through the MCP Gateway with the `mcp` SDK, signed in with a local account.

TRANSPORT=sse uses the gateway's SSE endpoint (/api/execute/currenttime/sse) instead of
Streamable HTTP (/api/streamable/currenttime). Needs `pip install "mcp-gateway[client]"`."""

import asyncio
import os

from mcp_gateway.client import GatewayClient

GATEWAY = os.environ.get("GATEWAY_URL", "http://localhost:7860")
TRANSPORT = os.environ.get("TRANSPORT", "streamable")


async def main() -> str:
    # Or GatewayClient(GATEWAY, cookie=...) with a browser's mcp_gateway_session cookie,
    # or GatewayClient(GATEWAY, bearer_token=...) with an access token.
    gateway = await GatewayClient.sign_in(GATEWAY, os.environ.get("ADMIN_USER", "admin"), os.environ["ADMIN_PASSWORD"])
    async with gateway.session("currenttime", transport=TRANSPORT) as client:
        tools = await client.list_tools()
        print("tools:", ", ".join(tool.name for tool in tools.tools))
        result = await client.call_tool("current_time_by_timezone", {"timezone": "Europe/Berlin"})
        return result.content[0].text


if __name__ == "__main__":
    print(asyncio.run(main()))
