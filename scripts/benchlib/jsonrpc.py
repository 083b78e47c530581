"""Raw MCP JSON-RPC bodies and the Streamable HTTP handshake, without the SDK client.

The SDK client spends more CPU per call than the gateway does, so it cannot be the load
generator; these are the same messages it sends, valid MCP the gateway can inspect.
"""

from __future__ import annotations

import itertools
from typing import Any

import httpx

PROTOCOL_VERSION = "2025-06-18"
ACCEPT_BOTH = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
SESSION_HEADER = "mcp-session-id"
STAMPED_TOOL = "stamped_countdown"   # stamped_server.py's tool: progress messages carry their emission time
_ids = itertools.count(1)


def request(method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"jsonrpc": "2.0", "id": next(_ids), "method": method}
    if params is not None:
        body["params"] = params
    return body


def initialize() -> dict[str, Any]:
    return request("initialize", {"protocolVersion": PROTOCOL_VERSION, "capabilities": {},
                                  "clientInfo": {"name": "mcp-gateway-bench", "version": "1"}})


def initialized() -> dict[str, Any]:
    return {"jsonrpc": "2.0", "method": "notifications/initialized"}


def tool_call(name: str, arguments: dict[str, Any], progress_token: str | None = None) -> dict[str, Any]:
    params: dict[str, Any] = {"name": name, "arguments": arguments}
    if progress_token is not None:
        params["_meta"] = {"progressToken": progress_token}
    return request("tools/call", params)


class BenchError(Exception):
    """A request the benchmark needs did not get the answer it expects."""


def check_status(response: httpx.Response, expected: int, what: str) -> None:
    if response.status_code != expected:
        try:
            body = response.text[:300]
        except httpx.ResponseNotRead:  # a streamed answer: its body is not worth waiting for
            body = ""
        raise BenchError(f"{what}: HTTP {response.status_code} {body!r}")


async def open_streamable_session(client: httpx.AsyncClient, url: str, headers: dict[str, str]) -> dict[str, str]:
    """initialize + notifications/initialized; returns the headers every later request carries."""
    response = await client.post(url, json=initialize(), headers={**ACCEPT_BOTH, **headers})
    check_status(response, 200, "initialize")
    session_id = response.headers.get(SESSION_HEADER)
    if not session_id:
        raise BenchError("initialize: the answer carries no Mcp-Session-Id")
    session_headers = {**ACCEPT_BOTH, **headers, SESSION_HEADER: session_id, "mcp-protocol-version": PROTOCOL_VERSION}
    response = await client.post(url, json=initialized(), headers=session_headers)
    check_status(response, 202, "notifications/initialized")
    return session_headers
