"""A minimal MCP upstream for the throughput and idle-stream phases: HTTP/1.1 with h11 on
asyncio, no SDK.

The bundled demo server (the `mcp` SDK on uvicorn) spends about 2 ms of CPU per `tools/call`.
On a 2-core host that also runs the load generator, that would take the cores the proxies are
being measured on; this upstream answers the same messages for a small fraction of it:

- `POST /mcp` (Streamable HTTP, JSON answers): `initialize` gets a result and an
  `Mcp-Session-Id`, notifications get 202, `tools/call` a text result, anything else an empty
  result; `DELETE /mcp` ends the session (200).
- `GET /sse` (the SSE transport): the `endpoint` event, then an idle stream held open until the
  client leaves — what an idle MCP client's stream looks like to a proxy.

    python -m scripts.benchlib.light_upstream --port 8002
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import time

import h11

READ_SIZE = 65536
SESSION_HEADER = b"mcp-session-id"
SERVER_INFO = {"name": "light-upstream", "version": "1"}


def _result(message: dict) -> dict:
    method = message.get("method")
    if method == "initialize":
        return {"protocolVersion": message.get("params", {}).get("protocolVersion", "2025-06-18"),
                "capabilities": {"tools": {}}, "serverInfo": SERVER_INFO}
    if method == "tools/call":
        return {"content": [{"type": "text", "text": f"{time.time():.6f}"}], "isError": False}
    return {}


def answer_post(body: bytes) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    try:
        message = json.loads(body)
    except ValueError:
        return 400, [(b"content-type", b"text/plain")], b"not JSON"
    if not isinstance(message, dict):
        return 400, [(b"content-type", b"text/plain")], b"batches are not served here"
    if "id" not in message:
        return 202, [], b""
    headers = [(b"content-type", b"application/json")]
    if message.get("method") == "initialize":
        headers.append((SESSION_HEADER, secrets.token_hex(16).encode()))
    answer = {"jsonrpc": "2.0", "id": message["id"], "result": _result(message)}
    return 200, headers, json.dumps(answer, separators=(",", ":")).encode()


class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader = reader
        self.writer = writer
        self.h11 = h11.Connection(h11.SERVER)

    async def next_event(self):
        while True:
            event = self.h11.next_event()
            if event is not h11.NEED_DATA:
                return event
            self.h11.receive_data(await self.reader.read(READ_SIZE))

    def send(self, *events) -> None:
        self.writer.write(b"".join(self.h11.send(event) or b"" for event in events))

    async def serve(self) -> None:
        try:
            while True:
                request = await self.next_event()
                if not isinstance(request, h11.Request):
                    return
                body = b""
                while not isinstance(event := await self.next_event(), h11.EndOfMessage):
                    body += event.data
                if request.method == b"GET" and request.target.split(b"?")[0] == b"/sse":
                    return await self.hold_stream()
                status, headers, content = self.route(request, body)
                headers.append((b"content-length", b"%d" % len(content)))
                self.send(h11.Response(status_code=status, headers=headers), h11.Data(data=content), h11.EndOfMessage())
                await self.writer.drain()
                if self.h11.our_state is h11.MUST_CLOSE:
                    return
                self.h11.start_next_cycle()
        except (ConnectionError, h11.RemoteProtocolError):
            return
        finally:
            self.writer.close()

    @staticmethod
    def route(request: h11.Request, body: bytes) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        path = request.target.split(b"?")[0]
        if path == b"/mcp" and request.method == b"POST":
            return answer_post(body)
        if path == b"/mcp" and request.method == b"DELETE":
            return 200, [], b""
        return 404, [(b"content-type", b"text/plain")], b"not here"

    async def hold_stream(self) -> None:
        endpoint = f"event: endpoint\r\ndata: /messages/?session_id={secrets.token_hex(16)}\r\n\r\n".encode()
        self.send(h11.Response(status_code=200, headers=[(b"content-type", b"text/event-stream"),
                                                         (b"cache-control", b"no-store")]),
                  h11.Data(data=endpoint))
        await self.writer.drain()
        while await self.reader.read(READ_SIZE):  # until the client (or the proxy) closes
            pass


async def serve(port: int) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await Connection(reader, writer).serve()

    server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=4096)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    try:
        asyncio.run(serve(args.port))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
