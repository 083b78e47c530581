"""A minimal Streamable HTTP MCP upstream whose `tools/list` answer is chosen by the test:
tools with hostile names and descriptions, huge schemas, deep nesting — what a compromised or
careless upstream can put in front of the gateway's health checks and the pages showing them.
Speaks just enough MCP (initialize, notifications, tools/list) for a real check."""

from __future__ import annotations

import json
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator

from .http_server import QuietHandler, serving


@dataclass
class HostileUpstream:
    port: int
    # server path ("/a/mcp") → the raw bytes after `"id": n, ` in its tools/list answer:
    # b'"result": {...}' or b'"error": {...}'
    tools_answers: dict[str, bytes] = field(default_factory=dict)

    def url(self, prefix: str) -> str:
        return f"http://127.0.0.1:{self.port}/{prefix}"


@contextmanager
def hostile_upstream() -> Iterator[HostileUpstream]:
    upstream = HostileUpstream(port=0)

    class Handler(QuietHandler):
        def do_POST(self) -> None:
            message = self.read_json()
            if "id" not in message:
                return self._send(202, b"")
            if message.get("method") == "tools/list":
                tail = upstream.tools_answers.get(self.path, b'"result": {"tools": []}')
            else:
                tail = b'"result": ' + json.dumps({"protocolVersion": "2025-06-18", "capabilities": {"tools": {}},
                                                   "serverInfo": {"name": "hostile", "version": "1"}}).encode()
            self._send(200, b'{"jsonrpc": "2.0", "id": ' + json.dumps(message["id"]).encode() + b", " + tail + b"}")

        def do_GET(self) -> None:
            self._send(405, b"")

        do_DELETE = do_GET

        def _send(self, status: int, payload: bytes) -> None:
            self.send(status, payload, {"content-type": "application/json"})

    with serving(Handler) as upstream.port:
        yield upstream
