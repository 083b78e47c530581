"""fastmcp's Python client (PyPI `fastmcp`), driven as an application would — the Python twin of
sdk_client.mjs, with the same options (one JSON argument) and the same one-line JSON report.

    python -m tests.clients.fastmcp_client '{"url": ..., "transport": "streamable" | "sse",
                                             "cookie": "name=value" | "browser": "/path/to/opener", ...}'

With "browser", fastmcp's own OAuth helper (`auth="oauth"`) runs: it opens the authorization URL
with Python's `webbrowser`, which honours $BROWSER — set here to the opener — and waits on its
loopback callback server.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from datetime import timedelta

REQUEST_TIMEOUT = timedelta(seconds=20)


def count_opens(report: dict) -> None:
    import webbrowser

    original = webbrowser.open

    def counted(url: str, *args, **kwargs) -> bool:
        report["browser_opens"] += 1
        return original(url, *args, **kwargs)

    webbrowser.open = counted


async def run(options: dict, report: dict) -> None:
    from fastmcp import Client
    from fastmcp.client.transports import SSETransport, StreamableHttpTransport

    headers = {"Cookie": options["cookie"]} if options.get("cookie") else None
    auth = "oauth" if options.get("browser") else None
    transport_class = SSETransport if options["transport"] == "sse" else StreamableHttpTransport
    transport = transport_class(options["url"], headers=headers, auth=auth)
    try:
        client = Client(transport, timeout=REQUEST_TIMEOUT, init_timeout=60)
        async with client:
            report["tools"] = sorted(tool.name for tool in await client.list_tools())
            for key in ("allowed", "refused"):
                if options.get(key):
                    report[key] = await call(client, options[key])
    except Exception as problem:  # noqa: BLE001 — what the client surfaced is the result
        if report["tools"] is None:
            report["connect_error"] = describe(problem)
        else:
            report["list_error"] = describe(problem)


async def call(client, tool: dict) -> dict:
    try:
        result = await client.call_tool(tool["name"], tool.get("arguments", {}), raise_on_error=False)
    except Exception as problem:  # noqa: BLE001
        return {"error": describe(problem), "error_type": type(problem).__name__}
    text = "".join(getattr(part, "text", "") for part in result.content)
    return {"error": text, "error_type": "isError"} if result.is_error else {"text": text}


def describe(problem: BaseException) -> str:
    if isinstance(problem, BaseExceptionGroup):
        return "; ".join(describe(inner) for inner in problem.exceptions)
    return f"{type(problem).__name__}: {problem}"


def main() -> int:
    options = json.loads(sys.argv[1])
    report = {"tools": None, "allowed": None, "refused": None, "connect_error": None, "browser_opens": 0}
    if options.get("browser"):
        os.environ["BROWSER"] = options["browser"]
        count_opens(report)
    asyncio.run(run(options, report))
    sys.stdout.write(json.dumps(report) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
