"""The one way a step refuses a flow: record the decision in the flow's state and render the answer.

Every kind of refusal the gateway gives is rendered here:
- `refuse`: a JSON error body (`responses.json_body`), with any extra headers — a 401 with
  `WWW-Authenticate`, a 405 with `Allow`, a 403 with an `insufficient_scope` challenge;
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

from .flow_state import Outcome, state_of
from .responses import NO_STORE, json_response


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
