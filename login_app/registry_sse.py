"""The registry MCP server's SSE transport, run by the login app behind the proxy.

Clients reach it only as /api/execute/registry through the proxy, which identifies the caller,
binds the stream's session id to them in the store, decides connect and every POST, narrows
tools/list on the stream, and passes the caller on in a signed header
(mcp_gateway.registry_caller); a request here without a valid one is refused. Why here and not
in the proxy: docs/registry-ui.md.

GET …/sse opens a stream whose first event is `endpoint` (the message path with a fresh session
id), then keep-alive comments; POST …/messages/?session_id= from the stream's owner is answered
202 and its JSON-RPC answers go out as `message` events on that stream. The stream table is this
process's memory: the login app is one process behind every proxy worker, and a stream ends
(and leaves the table) when its client goes away.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import AsyncIterator

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from mcp_gateway.health import HealthBoard
from mcp_gateway.jsonrpc import JsonRpcRejected, parse_mcp_payload
from mcp_gateway.registry_caller import CALLER_HEADER, Caller, verify_caller
from mcp_gateway.registry_tools import RegistryTools, answer
from mcp_gateway.routing import RouteError
from mcp_gateway.upstream import session_id_from_query

from .context import context
from .session_api import json_error

log = logging.getLogger(__name__)

BASE = "/_gateway/registry-mcp"  # addons/registry_mcp.py SSE_BASE_PATH: the proxy's upstream for it
KEEPALIVE_SECONDS = 15.0
DISCONNECT_CHECK_SECONDS = 1.0
QUEUE_SIZE = 64
MAX_STREAMS = 1000


@dataclass
class _Stream:
    owner: str
    queue: asyncio.Queue = field(default_factory=lambda: asyncio.Queue(QUEUE_SIZE))


_streams: dict[str, _Stream] = {}


def _target(request: Request) -> str:
    path = request.scope.get("raw_path") or request.scope["path"].encode()
    query = request.scope.get("query_string") or b""
    return path.decode("latin-1") + (f"?{query.decode('latin-1')}" if query else "")


async def _caller(request: Request) -> Caller | None:
    ctx = context(request)
    body = await request.body() if request.method == "POST" else b""
    caller = verify_caller(ctx.config.auth.secret_key or "", request.headers.get(CALLER_HEADER),
                           request.method, _target(request), body)
    if caller is None:
        log.warning("auth: registry SSE request without a valid gateway signature refused: %s %s",
                    request.method, request.url.path)
    return caller


async def open_stream(request: Request) -> Response:
    caller = await _caller(request)
    if caller is None:
        return json_error(403, "forbidden", "only the gateway may call this endpoint")
    if len(_streams) >= MAX_STREAMS:
        return json_error(503, "unavailable", "too many open registry streams; try again shortly")
    session_id = uuid.uuid4().hex
    stream = _Stream(caller.owner)
    _streams[session_id] = stream
    log.info("registry: SSE stream %s opened by %s", session_id[:8], caller.username)
    return StreamingResponse(_events(request, session_id, stream), media_type="text/event-stream",
                             headers={"cache-control": "no-store", "x-accel-buffering": "no"})


async def _events(request: Request, session_id: str, stream: _Stream) -> AsyncIterator[str]:
    try:
        yield f"event: endpoint\ndata: {BASE}/messages/?session_id={session_id}\n\n"
        idle_since = time.monotonic()
        while True:
            try:
                message = await asyncio.wait_for(stream.queue.get(), DISCONNECT_CHECK_SECONDS)
            except TimeoutError:
                if await request.is_disconnected():
                    return
                if time.monotonic() - idle_since >= KEEPALIVE_SECONDS:
                    idle_since = time.monotonic()
                    yield ": keep-alive\n\n"
                continue
            idle_since = time.monotonic()
            yield f"event: message\ndata: {json.dumps(message)}\n\n"
    finally:
        _streams.pop(session_id, None)
        log.info("registry: SSE stream %s closed", session_id[:8])


async def post_message(request: Request) -> Response:
    caller = await _caller(request)
    if caller is None:
        return json_error(403, "forbidden", "only the gateway may call this endpoint")
    try:
        session_id = session_id_from_query(request.scope.get("query_string", b"").decode("latin-1"))
    except RouteError as e:
        return json_error(e.status, "bad_request", e.message)
    stream = _streams.get(session_id or "")
    if stream is None:
        return json_error(404, "not_found", "no open registry stream with this session id (in this login app)")
    if stream.owner != caller.owner:
        log.warning("auth: POST into another identity's registry stream refused: user=%s", caller.username)
        return json_error(403, "forbidden", "this MCP session belongs to another identity")
    ctx = context(request)
    try:
        payload = parse_mcp_payload(await request.body(), ctx.config.max_body_bytes)
    except JsonRpcRejected as e:
        return json_error(e.status, "bad_request", f"unreadable MCP body: {e.reason}")
    registry = ctx.registry
    board = HealthBoard(ctx.store)
    health = {s.name: h for s in registry.all() if (h := await board.read(s.name)) is not None}
    tools = RegistryTools(registry, health, ctx.config.public_url, caller.scopes)
    # A toggle writes the registry file under a lock: off the event loop.
    answers = await asyncio.to_thread(
        lambda: [a for a in (answer(m, tools, caller.username) for m in payload.messages) if a is not None])
    try:
        for item in answers:
            stream.queue.put_nowait(item)
    except asyncio.QueueFull:
        return json_error(503, "unavailable", "the stream is not being read; try again shortly")
    return Response(status_code=202, content=b"Accepted", headers={"cache-control": "no-store"})


REGISTRY_SSE_ROUTES = [
    Route(f"{BASE}/sse", open_stream, methods=["GET"]),
    Route(f"{BASE}/messages/", post_message, methods=["POST"]),
]
