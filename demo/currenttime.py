"""The bundled demo MCP server `currenttime`, built with the `mcp` SDK.

It serves both MCP transports on one port — SSE at /sse (+ /messages/) and Streamable
HTTP at /mcp — with the SDK's default transport security (it refuses a Host other than
its own loopback address, as any SDK server on loopback does).

    python -m demo.currenttime --port 8000
    python -m demo.currenttime --host 0.0.0.0 --allowed-host currenttime:8000   # in a container

`--allowed-host` adds a Host value the server accepts beside loopback, e.g. the compose
service name the gateway reaches it by; the DNS-rebinding check stays on.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import uvicorn
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from starlette.applications import Starlette

LOOPBACK_HOSTS = ["127.0.0.1:*", "localhost:*", "[::1]:*"]
LOOPBACK_ORIGINS = ["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"]


def build_server(name: str = "currenttime") -> MCPServer:
    server = MCPServer(name, instructions="Tells the current time in a timezone.")

    @server.tool()
    def current_time_by_timezone(timezone: str = "UTC") -> str:
        """The current date and time in an IANA timezone such as Europe/Berlin."""
        try:
            zone = ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            return f"Unknown timezone {timezone!r}; use an IANA name such as Europe/Berlin."
        return datetime.now(zone).isoformat(timespec="seconds")

    @server.tool()
    async def countdown(steps: int = 3, interval: float = 1.0, ctx: Context | None = None) -> str:
        """Counts down, reporting progress after each step (shows that events stream)."""
        steps = max(1, min(steps, 20))
        for step in range(1, steps + 1):
            await asyncio.sleep(max(0.0, min(interval, 5.0)))
            if ctx is not None:
                await ctx.report_progress(step, steps, f"step {step}")
        return f"counted {steps} steps"

    return server


def transport_security(allowed_hosts: list[str]) -> TransportSecuritySettings | None:
    """None keeps the SDK's loopback-only default; otherwise loopback plus `allowed_hosts`."""
    if not allowed_hosts:
        return None
    return TransportSecuritySettings(enable_dns_rebinding_protection=True,
                                     allowed_hosts=[*LOOPBACK_HOSTS, *allowed_hosts],
                                     allowed_origins=LOOPBACK_ORIGINS)


def build_app(server: MCPServer, json_response: bool = False, allowed_hosts: list[str] | None = None) -> Starlette:
    security = transport_security(allowed_hosts or [])
    sse = server.sse_app(transport_security=security)
    streamable = server.streamable_http_app(json_response=json_response, transport_security=security)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        async with streamable.router.lifespan_context(app):
            yield

    return Starlette(routes=[*sse.routes, *streamable.routes], lifespan=lifespan)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--name", default="currenttime")
    parser.add_argument("--json-response", action="store_true", help="answer Streamable HTTP POSTs with JSON, not SSE")
    parser.add_argument("--allowed-host", action="append", default=[], metavar="HOST[:PORT]",
                        help="a Host header to accept beside loopback (repeatable), e.g. currenttime:8000")
    args = parser.parse_args()
    app = build_app(build_server(args.name), json_response=args.json_response, allowed_hosts=args.allowed_host)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
