"""A minimal Streamable HTTP MCP upstream whose `tools/list` answer is chosen by the test:
tools with hostile names and descriptions, huge schemas, deep nesting — what a compromised or
careless upstream can put in front of the gateway's health checks and the pages showing them.
Speaks just enough MCP (initialize, notifications, tools/list) for a real check."""

from __future__ import annotations

import json
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Iterator

from .http_server import serving


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

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            message = json.loads(body or b"{}")
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
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args) -> None:
            pass

    with serving(Handler) as upstream.port:
        yield upstream
