"""The demo MCP server (demo/currenttime.py) with an in-memory event store, so the Streamable HTTP
streams it answers can be resumed by a GET carrying `Last-Event-ID` (the MCP specification's
resumability), which replays a stream's events — a `tools/list` answer among them.

    python -m tests.support.resumable_upstream --port 8000 --name resumable
"""

from __future__ import annotations

import argparse
import contextlib
import itertools

import uvicorn
from mcp.server.streamable_http import EventCallback, EventMessage, EventStore
from starlette.applications import Starlette

from demo.currenttime import build_server


class MemoryEventStore(EventStore):
    def __init__(self) -> None:
        self.events: list[tuple[str, str, object]] = []  # (event id, stream id, message or None)
        self._ids = itertools.count(1)

    async def store_event(self, stream_id, message):
        event_id = str(next(self._ids))
        self.events.append((event_id, stream_id, message))
        return event_id

    async def replay_events_after(self, last_event_id, send_callback: EventCallback):
        stream = next((s for e, s, _ in self.events if e == last_event_id), None)
        if stream is None:
            return None
        after = False
        for event_id, stream_id, message in self.events:
            if after and stream_id == stream and message is not None:
                await send_callback(EventMessage(message, event_id))
            after = after or event_id == last_event_id
        return stream


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--name", default="resumable")
    args = parser.parse_args()
    server = build_server(args.name)
    streamable = server.streamable_http_app(event_store=MemoryEventStore())

    @contextlib.asynccontextmanager
    async def lifespan(app):
        async with streamable.router.lifespan_context(app):
            yield

    app = Starlette(routes=streamable.routes, lifespan=lifespan)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
