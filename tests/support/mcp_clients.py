"""The `mcp` SDK's own clients, pointed at the gateway."""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import AsyncIterator

from mcp import Client
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

# Bounded waits: a refused or broken call must fail the test, never hang it.
READ_TIMEOUT = 20.0


@asynccontextmanager
async def sse_session(url: str, headers: dict[str, str] | None = None) -> AsyncIterator[Client]:
    async with Client(sse_client(url, headers=headers, timeout=10, sse_read_timeout=READ_TIMEOUT),
                      read_timeout_seconds=READ_TIMEOUT) as client:
        yield client


@asynccontextmanager
async def streamable_session(url: str, headers: dict[str, str] | None = None) -> AsyncIterator[Client]:
    async with create_mcp_http_client(headers=headers) as http:
        async with Client(streamable_http_client(url, http_client=http), read_timeout_seconds=READ_TIMEOUT) as client:
            yield client


def session_for(transport: str):
    return {"sse": sse_session, "streamable": streamable_session}[transport]


# Raw JSON-RPC pieces for tests that speak HTTP directly.
INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
ACCEPT = {"accept": "application/json, text/event-stream"}
