"""Rewriting answers that travel on an SSE stream — without state shared between the
process that took the POST and the one holding the stream.

On the SSE transport the answer to a POST arrives on the separate GET stream, and the
`mcp` SDK ignores a refused (non-2xx) POST. So a refused call is forwarded as a harmless
`ping` whose id carries the JSON-RPC errors for the original request ids, signed with
SECRET_KEY; when the upstream's answer to that ping passes through the stream — in
whichever gateway process or instance holds it — the signature is checked and the answer
replaced by those errors. The caller's awaited call fails at once, naming the missing
scope. `tools/list` answers on a stream are narrowed to the tools the stream's owner may
call (MCP sessions are bound to one identity, so the owner is the caller).

The same narrowing serves Streamable HTTP POSTs answered with an SSE stream. On Streamable
HTTP a refused call is answered at once by the gateway (`refusals.refuse_with_jsonrpc_errors`).
"""

from __future__ import annotations

import json
import logging
from typing import Any, Callable

from itsdangerous import BadSignature, URLSafeSerializer

from mcp_gateway.authz import filter_tools_list_result
from mcp_gateway.sse import SseEvent

log = logging.getLogger(__name__)

REFUSAL_ID_PREFIX = "mcp-gateway-refused."
_SALT = "mcp-gateway-sse-refusal"


class RefusalCodec:
    """Packs refusal errors into a ping id and unpacks them, signed with SECRET_KEY."""

    def __init__(self, secret_key: str):
        self._serializer = URLSafeSerializer(secret_key, salt=_SALT)

    def ping_id(self, errors: list[dict[str, Any]]) -> str:
        return REFUSAL_ID_PREFIX + self._serializer.dumps(errors)

    def errors(self, request_id: object) -> list[dict[str, Any]] | None:
        if not isinstance(request_id, str) or not request_id.startswith(REFUSAL_ID_PREFIX):
            return None
        try:
            errors = self._serializer.loads(request_id[len(REFUSAL_ID_PREFIX):])
        except BadSignature:
            log.warning("an answer carried a gateway refusal id with a bad signature; left as it is")
            return None
        return errors if isinstance(errors, list) else None


def rewrite_answer(event: SseEvent, codec: RefusalCodec | None,
                   allowed_tools: frozenset[str] | None | Callable[[], frozenset[str] | None]
                   ) -> SseEvent | list[SseEvent]:
    """The event(s) to send instead of `event`, or `event` itself when untouched.

    `allowed_tools` None: the caller may call every tool, tools lists pass unchanged. It may be
    a callable, asked only when a tools list actually passes.
    """
    data = event.data
    if REFUSAL_ID_PREFIX not in data and "tools" not in data and "\\u" not in data:
        # Progress, notifications, ordinary results: no JSON parsing on the hot path. (A key
        # spelled with \u escapes is parsed: it could still decode to "tools".)
        return event
    try:
        message = json.loads(event.data)
    except ValueError:
        return event
    if not isinstance(message, dict) or "method" in message or "id" not in message:
        return event
    errors = codec.errors(message["id"]) if codec is not None else None
    if errors is not None:
        return [SseEvent(event="message", data=json.dumps(error)) for error in errors]
    result = message.get("result")
    if not (isinstance(result, dict) and isinstance(result.get("tools"), list)):
        return event
    if callable(allowed_tools):
        allowed_tools = allowed_tools()
    if allowed_tools is not None:
        return SseEvent(event=event.event, data=json.dumps(filter_tools_list_result(message, allowed_tools)),
                        id=event.id)
    return event
