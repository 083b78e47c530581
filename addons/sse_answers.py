"""Rewriting answers that travel on an SSE stream, correlated by JSON-RPC id.

On the SSE transport the answer to a POST arrives on the separate GET stream, and the
`mcp` SDK ignores a refused (non-2xx) POST. So a refused call is forwarded as a harmless
`ping` under a gateway-made id; when the upstream's answer to that ping passes through the
stream, it is replaced by JSON-RPC errors carrying the original request ids — the caller's
awaited call fails at once, naming the missing scope. `tools/list` answers are narrowed
the same way: the allowed tool names are remembered per request id until the answer
passes.

The same filter serves Streamable HTTP POSTs answered with an SSE stream.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from mcp_gateway.authz import filter_tools_list_result
from mcp_gateway.sse import SseEvent

log = logging.getLogger(__name__)

MAX_PENDING_PER_SESSION = 1024
REFUSAL_ID_PREFIX = "mcp-gateway-refused-"


@dataclass
class PendingAnswers:
    """What to do with answers still to come on one MCP session's stream."""

    refusals: OrderedDict[str, list[dict[str, Any]]] = field(default_factory=OrderedDict)
    tool_filters: OrderedDict[str, frozenset[str]] = field(default_factory=OrderedDict)

    def _bounded(self, table: OrderedDict) -> None:
        while len(table) > MAX_PENDING_PER_SESSION:
            table.popitem(last=False)

    def add_refusal(self, errors: list[dict[str, Any]]) -> str:
        ping_id = REFUSAL_ID_PREFIX + uuid.uuid4().hex
        self.refusals[ping_id] = errors
        self._bounded(self.refusals)
        return ping_id

    def add_tool_filter(self, request_id: str | int, allowed: frozenset[str]) -> None:
        self.tool_filters[_key(request_id)] = allowed
        self._bounded(self.tool_filters)


class PendingRegistry:
    """Pending answers per (server, MCP session id), shared by the POSTs and the stream."""

    def __init__(self) -> None:
        self._sessions: dict[tuple[str, str], PendingAnswers] = {}

    def for_session(self, server: str, session_id: str) -> PendingAnswers:
        return self._sessions.setdefault((server, session_id), PendingAnswers())

    def peek(self, server: str, session_id: str) -> PendingAnswers | None:
        return self._sessions.get((server, session_id))

    def drop(self, server: str, session_id: str) -> None:
        self._sessions.pop((server, session_id), None)


def _key(request_id: object) -> str:
    return json.dumps(request_id)


def rewrite_answer(event: SseEvent, pending: PendingAnswers | None) -> SseEvent | list[SseEvent]:
    """The event(s) to send instead of `event`, or `event` itself when untouched."""
    if pending is None or not (pending.refusals or pending.tool_filters):
        return event
    try:
        message = json.loads(event.data)
    except ValueError:
        return event
    if not isinstance(message, dict) or "method" in message or "id" not in message:
        return event
    request_id = message["id"]
    if isinstance(request_id, str) and request_id in pending.refusals:
        errors = pending.refusals.pop(request_id)
        return [SseEvent(event="message", data=json.dumps(error)) for error in errors]
    allowed = pending.tool_filters.pop(_key(request_id), None)
    if allowed is not None:
        return SseEvent(event=event.event, data=json.dumps(filter_tools_list_result(message, allowed)), id=event.id)
    return event
