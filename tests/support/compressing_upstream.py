"""A minimal Streamable HTTP MCP upstream that compresses its answers whenever the request
allows it (`Accept-Encoding: gzip`), as Express's `compression()` middleware does, event streams
included. Its `tools/list` answer (an SSE event) names two tools."""

from __future__ import annotations

import gzip
import json
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator

from .http_server import QuietHandler, serving

TOOLS = [{"name": "current_time_by_timezone", "inputSchema": {"type": "object"}},
         {"name": "countdown", "inputSchema": {"type": "object"}}]


@dataclass
class CompressingUpstream:
    port: int
    encodings_asked: list[str] = field(default_factory=list)  # the Accept-Encoding of each request
    always: bool = False  # compress even when asked for `identity`

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@contextmanager
def compressing_upstream() -> Iterator[CompressingUpstream]:
    upstream = CompressingUpstream(port=0)

    class Handler(QuietHandler):
        def do_POST(self) -> None:
            message = self.read_json()
            asked = self.headers.get("accept-encoding", "")
            upstream.encodings_asked.append(asked)
            if "id" not in message:
                return self._send(202, b"", "application/json", asked)
            result = {"tools": TOOLS} if message.get("method") == "tools/list" else {}
            answer = json.dumps({"jsonrpc": "2.0", "id": message["id"], "result": result})
            self._send(200, f"event: message\ndata: {answer}\n\n".encode(), "text/event-stream", asked)

        def _send(self, status: int, payload: bytes, content_type: str, asked: str) -> None:
            if payload and ("gzip" in asked or upstream.always):
                return self.send(status, gzip.compress(payload), {"content-type": content_type,
                                                                  "content-encoding": "gzip"})
            self.send(status, payload, {"content-type": content_type})

    with serving(Handler) as upstream.port:
        yield upstream
