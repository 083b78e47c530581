"""What the gateway knows about one flow, in one typed value under one metadata key.

Each step of the chain fills in its part on the way down (route and server: Router;
identity: Identify; the decision: whichever step decided; approved: Forwarder), and the
steps at the end (Auditor, Metrics) read it on the way back. `state_of(flow)` is the only
way in; nothing else about a request travels in `flow.metadata` except the streaming
callables of sse_stream.py and the addons' own bookkeeping (docs/architecture.md §5).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any, Literal

from mitmproxy import http

from mcp_gateway.authz import Decision
from mcp_gateway.config import ServerConfig
from mcp_gateway.identity import Identity
from mcp_gateway.routing import Route

STATE = "gateway.state"
# Read-only mirrors for addons written against the keys of the previous release (ROUTE,
# IDENTITY): written once with the state, read by nothing in this repository. Removed in the
# next release; read `state_of(flow).route` / `.identity` instead (docs/architecture.md §5).
LEGACY_ROUTE = "gateway.route"
LEGACY_IDENTITY = "gateway.identity"

Verdict = Literal["allowed", "refused", "error"]


@dataclass(frozen=True)
class Shadow:
    """What the shadow policy would have decided (docs/policies.md, "Shadow mode")."""
    allowed: bool
    scope: str | None
    reason: str

    @property
    def verdict(self) -> Verdict:
        return "allowed" if self.allowed else "refused"


@dataclass(frozen=True)
class Outcome:
    """The flow's decision, as the log line, the audit record, mitmweb and the metrics show it."""
    verdict: Verdict = "allowed"
    status: int | None = None   # the status the decision stands for; None: the answer's status
    scope: str | None = None
    reason: str = "forwarded"
    method: str | None = None
    tool: str | None = None
    arguments: Any = None       # the tools/call arguments, only when `log_tool_arguments` is on
    shadow: Shadow | None = None

    @classmethod
    def of(cls, decision: Decision, arguments: Any = None) -> Outcome:
        return cls("allowed" if decision.allowed else "refused", decision.status, decision.scope,
                   decision.reason, decision.method, decision.tool, arguments)

    @property
    def refused(self) -> bool:
        return self.verdict == "refused"


FORWARDED = Outcome()  # the decision of a flow nobody refused


@dataclass
class FlowState:
    seen: bool = False                 # the Router looked at it (the sentinel lets it pass `requestheaders`)
    started: float | None = None       # monotonic time of the request's headers
    public_path: str | None = None     # the path as the client sent it (the forwarder rewrites the request's)
    route: Route | None = None
    server: ServerConfig | None = None
    # With auth on, an unknown or disabled server is told apart only after the caller is identified
    # (addons/server_gate.py): (status, message) of the answer it would have had.
    server_problem: tuple[int, str] | None = None
    identity: Identity | None = None
    scopes: frozenset[str] | None = None  # what the identity may use on this request (Authorizer)
    decision: Outcome | None = None
    approved: bool = False             # the Forwarder sends it on; anything else is refused by the sentinel
    forwarded_to: str | None = None    # a server's name or "login-app"
    audited: bool = False              # the Auditor has rendered it
    counted: bool = False              # Metrics has counted it

    @property
    def outcome(self) -> Outcome:
        return self.decision or FORWARDED

    def decide(self, outcome: Outcome) -> None:
        self.decision = replace(outcome, shadow=outcome.shadow or (self.decision.shadow if self.decision else None))

    def amend(self, **changes: Any) -> None:
        """Change some fields of the decision made so far (the default one if none was)."""
        self.decision = replace(self.outcome, **changes)


def state_of(flow: http.HTTPFlow) -> FlowState:
    state = flow.metadata.get(STATE)
    if state is None:
        state = flow.metadata[STATE] = FlowState()
    return state


def start(flow: http.HTTPFlow) -> FlowState:
    """The Router's first look: the flow is the gateway's from here on."""
    state = state_of(flow)
    state.seen, state.started, state.public_path = True, time.monotonic(), flow.request.path
    return state


def set_route(flow: http.HTTPFlow, found: Route) -> None:
    state_of(flow).route = flow.metadata[LEGACY_ROUTE] = found


def set_identity(flow: http.HTTPFlow, identity: Identity) -> None:
    state_of(flow).identity = flow.metadata[LEGACY_IDENTITY] = identity


def final_status(flow: http.HTTPFlow) -> int:
    """The status the flow is recorded with: a refusal's own (a refused SSE call is answered on
    the stream, not by this POST), else the answer's, else 502 (no answer: the upstream failed)."""
    outcome = state_of(flow).outcome
    if outcome.refused and outcome.status:
        return outcome.status
    return flow.response.status_code if flow.response else 502


def identified(flow: http.HTTPFlow) -> tuple[Route, Identity] | None:
    """The route and the identity of a live, unanswered flow the Identify step let through."""
    if flow.response or flow.error or not flow.live:
        return None
    state = state_of(flow)
    if state.route is None or state.identity is None:
        return None
    return state.route, state.identity
