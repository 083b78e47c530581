"""An MCP server whose tool takes the caller's GitHub token as an argument (the direct-parameter
approach of docs/end-to-end-tokens.md), built with the `mcp` SDK.

    python examples/end_to_end_tokens_server.py --port 8010

The gateway forwards the token untouched; it never logs it, and mitmweb's stored flow shows "***".
GITHUB_API_URL points the tool at another GitHub API (GitHub Enterprise, or a test double).
"""

from __future__ import annotations

import argparse
import os

import httpx
import uvicorn
from mcp.server.mcpserver import MCPServer
from pydantic import Field

GITHUB_API_URL = os.environ.get("GITHUB_API_URL", "https://api.github.com")

server = MCPServer("github-tokens", instructions="GitHub calls made with the caller's own token.")


@server.tool()
async def get_github_user(github_token: str = Field(description="GitHub personal access token")) -> dict:
    """The GitHub account the given token belongs to."""
    async with httpx.AsyncClient(timeout=15) as http:
        response = await http.get(f"{GITHUB_API_URL}/user", headers={
            "authorization": f"token {github_token}", "accept": "application/vnd.github+json"})
    if response.status_code != 200:
        return {"error": f"GitHub answered HTTP {response.status_code}"}
    return response.json()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8010)
    args = parser.parse_args()
    uvicorn.run(server.streamable_http_app(), host=args.host, port=args.port, log_level="warning")
