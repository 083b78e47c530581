"""python -m login_app --config gateway.toml [--host 127.0.0.1] [--port 7861]"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys

import uvicorn

from mcp_gateway.config import ConfigError, load_config

from .app import create_app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m login_app", description="The MCP Gateway's login app.")
    parser.add_argument("--config", default="gateway.toml")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7861)
    parser.add_argument("--fd", type=int, default=None,
                        help="serve on this already listening socket (the gateway's supervisor passes its own)")
    parser.add_argument("--ready-fd", type=int, default=None,
                        help="write one byte to this file descriptor once serving (the supervisor waits for it)")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config)
    except ConfigError as e:
        print(f"login app: configuration error: {e}", file=sys.stderr)
        return 2
    logging.basicConfig(level=config.logging_level, format="[login-app] %(levelname)s %(name)s: %(message)s")
    where = {"fd": args.fd} if args.fd is not None else {"host": args.host, "port": args.port}
    server = uvicorn.Server(uvicorn.Config(create_app(config), **where, log_level="warning", proxy_headers=False,
                                           server_header=False))
    asyncio.run(_serve(server, args.ready_fd))
    return 0


async def _serve(server: uvicorn.Server, ready_fd: int | None) -> None:
    serving = asyncio.create_task(server.serve())
    if ready_fd is not None:
        while not server.started and not serving.done():
            await asyncio.sleep(0.02)
        if server.started:
            os.write(ready_fd, b"1")
        os.close(ready_fd)
    await serving


if __name__ == "__main__":
    sys.exit(main())
