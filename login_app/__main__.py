"""python -m login_app --config gateway.toml [--host 127.0.0.1] [--port 7861]"""

from __future__ import annotations

import argparse
import logging
import sys

import uvicorn

from mcp_gateway.config import ConfigError, load_config

from .app import create_app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m login_app", description="The MCP Gateway's login app.")
    parser.add_argument("--config", default="gateway.toml")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7861)
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config)
    except ConfigError as e:
        print(f"login app: configuration error: {e}", file=sys.stderr)
        return 2
    logging.basicConfig(level=config.logging_level, format="[login-app] %(levelname)s %(name)s: %(message)s")
    uvicorn.run(create_app(config), host=args.host, port=args.port, log_level="warning",
                proxy_headers=False, server_header=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
