"""The one way a step refuses a flow: record the decision in the flow's state and render the answer.

Every kind of refusal the gateway gives is rendered here:
- `refuse`: a JSON error body (`responses.json_body`), with any extra headers (a 405's `Allow`);
- `refuse_unauthenticated`, `refuse_insufficient_scope`: the same with a `WWW-Authenticate:
  Bearer` challenge pointing at the resource's RFC 9728 metadata (docs/mcp-clients.md);
- `redirect_to_login`: a browser navigation without a session goes to the login page (302);
- `refuse_with_jsonrpc_errors`: a call the caller's groups do not allow, answered as JSON-RPC
  errors in a 200 (what MCP clients show);
- `refuse_on_stream`: the decision alone, when the answer travels on another flow (an SSE
  session's refused POST is answered on its GET stream — sse_answers.py);
- `fail`: a step broke (failclosed.py) — 500, never forwarded.
The Auditor and Metrics read the decision back (`flow_state.state_of(flow).outcome`).
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any
from urllib.parse import quote

from mitmproxy import http

from mcp_gateway.resources import resource_metadata_url as server_metadata_url
from mcp_gateway.routing import Area, Route

from .flow_state import Outcome, state_of
from .responses import NO_STORE, json_response

REFUSAL_BODY = "gateway.refusal_body"


def refuse(flow: http.HTTPFlow, status: int, message: str, headers: dict[str, str] | None = None, *,
           decided: Outcome | None = None, after_answer: bool = False, **extra: Any) -> None:
    """Answer `status` with a JSON error body. `decided`: the refused decision this answers (its
    scope, method and tool are recorded); `after_answer`: the request was allowed and the refusal
    concerns the upstream's answer, so what was decided about the request is kept."""
    state = state_of(flow)
    if after_answer:
        cut_stream(flow, status, message)
    else:
        earlier = decided or state.decision
        kept = ({"scope": earlier.scope, "method": earlier.method, "tool": earlier.tool}
                if earlier is not None and earlier.refused else {})
        state.decide(Outcome("refused", status, reason=message, shadow=decided.shadow if decided else None, **kept))
    flow.response = json_response(status, message, headers, **extra)
    if after_answer:
        # Refused at the answer's head: mitmproxy would still read the upstream's body into this
        # answer, under its Content-Length. Send the refusal's body instead, and drop theirs. When
        # no body follows the head (a redirect, a 202), mitmproxy sets the upstream's empty one
        # instead: `restore_refusal_body` puts ours back before the answer leaves.
        pending = [flow.response.content]
        flow.metadata[REFUSAL_BODY] = flow.response.content
        flow.response.stream = lambda chunk: pending.pop() if pending else b""


def restore_refusal_body(flow: http.HTTPFlow) -> None:
    """In the `response` hook: the body of a refusal made at the answer's head, if it was lost."""
    body = flow.metadata.get(REFUSAL_BODY)
    if body is not None and flow.response is not None and flow.response.raw_content != body:
        flow.response.content = body


def refuse_unauthenticated(flow: http.HTTPFlow, public_url: str, found: Route, reason: str,
                           error: str | None = None) -> None:
    """401: no credentials (`error` None) or bad ones (`invalid_request`, `invalid_token`)."""
    challenge = f'resource_metadata="{resource_metadata_url(public_url, found)}"'
    if error is not None:
        challenge = f'error="{error}", error_description="{reason}", {challenge}'
    refuse(flow, 401, reason, {"www-authenticate": f"Bearer {challenge}"})


def refuse_insufficient_scope(flow: http.HTTPFlow, public_url: str, found: Route, decided: Outcome,
                              message: str) -> None:
    """403 asking the client to authorize again: the only refusal where that helps."""
    challenge = (f'Bearer error="insufficient_scope", scope="{decided.scope}", '
                 f'resource_metadata="{resource_metadata_url(public_url, found)}"')
    refuse(flow, 403, message, {"www-authenticate": challenge}, decided=decided, scope=decided.scope)


def redirect_to_login(flow: http.HTTPFlow, reason: str) -> None:
    state_of(flow).decide(Outcome("refused", 302, reason=reason))
    target = state_of(flow).public_path or flow.request.path
    flow.response = http.Response.make(302, b"", {"location": f"/oauth/login?next={quote(target, safe='/')}",
                                                  "cache-control": "no-store"})


def refuse_with_jsonrpc_errors(flow: http.HTTPFlow, decided: Outcome, errors: list[dict[str, Any]],
                               batch: bool) -> None:
    state_of(flow).decide(decided)
    flow.response = jsonrpc_errors_answer(flow.request.headers.get("accept", ""), errors, batch)


def refuse_on_stream(flow: http.HTTPFlow, decided: Outcome) -> None:
    state_of(flow).decide(decided)


def fail(flow: http.HTTPFlow) -> None:
    state = state_of(flow)
    state.approved = False
    state.decide(Outcome("error", 500, reason="internal error"))
    if flow.response is None or not flow.response.stream:
        flow.response = json_response(500, "the gateway failed while handling this request; it was not forwarded")


def cut_stream(flow: http.HTTPFlow, status: int, reason: str) -> None:
    """A stream already answered is refused after all: what was decided about the request stays."""
    state = state_of(flow)
    state.decision = replace(state.outcome, verdict="refused", status=status, reason=reason)


def jsonrpc_errors_answer(accept: str, errors: list[dict[str, Any]], batch: bool) -> http.Response:
    """A 200 answer carrying JSON-RPC errors, as the request's Accept asked: JSON whenever the
    client accepts it (the `mcp` and TypeScript SDKs send both and read either), otherwise
    an SSE stream of `message` events, one per error."""
    wanted = [part.split(";")[0].strip().lower() for part in accept.split(",") if part.strip()]
    if "text/event-stream" in wanted and not {"application/json", "application/*", "*/*"} & set(wanted):
        body = "".join(f"event: message\ndata: {json.dumps(error)}\n\n" for error in errors)
        return http.Response.make(200, body.encode(), {**NO_STORE, "content-type": "text/event-stream"})
    document = errors if batch else errors[0]
    return http.Response.make(200, json.dumps(document).encode(), {**NO_STORE, "content-type": "application/json"})


def resource_metadata_url(public_url: str, found: Route) -> str:
    if found.server and found.area in (Area.SSE, Area.STREAMABLE):
        return server_metadata_url(public_url, found.area.value, found.server)
    return public_url.rstrip("/") + "/.well-known/oauth-protected-resource"
