"""The demo MCP server plus one tool for timing streams: `stamped_countdown`.

Its progress messages carry the upstream's `time.monotonic_ns()` taken just before the
event is handed to the SDK. CLOCK_MONOTONIC is one clock for every process on a Linux host,
so a client on the same host subtracts it from its own arrival time and gets the event's
delivery latency — through the gateway or directly — without guessing when it was sent.

    python -m scripts.benchlib.stamped_server --port 8001
"""

from __future__ import annotations

import argparse
import asyncio
import time

import uvicorn
from mcp.server.mcpserver import Context, MCPServer

from demo.currenttime import build_app, build_server

from .jsonrpc import STAMPED_TOOL


def build_stamped_server(name: str) -> MCPServer:
    server = build_server(name)

    @server.tool(name=STAMPED_TOOL)
    async def stamped_countdown(steps: int = 20, interval: float = 0.05, ctx: Context | None = None) -> str:
        """Like countdown; each progress message is the emission time (monotonic ns)."""
        steps = max(1, min(steps, 200))
        for step in range(1, steps + 1):
            await asyncio.sleep(max(0.0, min(interval, 5.0)))
            if ctx is not None:
                await ctx.report_progress(step, steps, str(time.monotonic_ns()))
        return f"counted {steps} steps"

    return server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--name", default="currenttime")
    parser.add_argument("--json-response", action="store_true")
    args = parser.parse_args()
    app = build_app(build_stamped_server(args.name), json_response=args.json_response)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
