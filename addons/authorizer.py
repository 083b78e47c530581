"""Authorize: the caller's scopes (from their groups, by the policy in force now) against
what the request needs — per server, per MCP method, per tool.

Every MCP POST body is read as JSON-RPC (single or batch); a body that cannot be read
unambiguously is refused whole, and so is a batch with one forbidden call. The decision
is one value (mcp_gateway.authz.Decision) that is rendered once: as the answer, the audit
record and the mitmweb comment.

How a refusal is answered (docs/mcp-clients.md, "When the gateway says no"):
- a call the person's groups do not allow (a tool, a method) on a server they can use: a
  JSON-RPC error with the request's id in a 200 answer — what MCP clients show;
- no access at all to the server (connect): 403 with a JSON body naming the scope;
- an OAuth facade token granted less than the person's groups allow now: 403 with a
  `WWW-Authenticate: Bearer error="insufficient_scope"` challenge — the only case where
  authorizing the client again helps, so the only one where a client is asked to.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import replace
from typing import Any

from mitmproxy import http

from mcp_gateway.authz import (
    Decision,
    decide_mcp,
    decide_mcp_connect,
    filter_tools_list_result,
    granting_groups,
    held_scopes,
    refused_unreadable,
    tool_filter,
    usable_scopes,
)
from mcp_gateway.identity import Identity
from mcp_gateway.jsonrpc import JsonRpcRejected, RpcMessage, error_responses, parse_mcp_payload
from mcp_gateway.routing import Area, Route
from mcp_gateway.upstream import session_id_from_query

from .failclosed import refuse_on_error
from .flow_state import Outcome, Shadow, identified, state_of
from .refusals import refuse, refuse_insufficient_scope, refuse_on_stream, refuse_with_jsonrpc_errors
from .responses import media_type
from .runtime import Runtime
from .sse_answers import RefusalCodec, rewrite_answer
from .sse_stream import SSE_MESSAGE_FILTER

log = logging.getLogger(__name__)

TOOLS_LIST_FILTER = "gateway.tools_list_filter"
FORBIDDEN = -32003  # JSON-RPC error code for a call the caller's scopes do not allow
POLICY_POLL_INTERVAL = 1.0


def _log_shadow(identity: Identity, shadow: Decision, enforced: Decision) -> None:
    """A shadow policy that would decide otherwise is logged; the enforced decision stands."""
    if shadow.allowed != enforced.allowed:
        log.warning("access shadow %s (enforced: %s) user=%s method=%s tool=%s scope=%s reason=%s",
                    "allowed" if shadow.allowed else "refused", "allowed" if enforced.allowed else "refused",
                    *(_one_line(value) for value in (identity.username, shadow.method or "-",
                                                     shadow.tool or "-", shadow.scope or "-", shadow.reason)))


def _one_line(value: str) -> str:
    return value.encode("unicode_escape").decode("ascii")


class Authorizer:
    def __init__(self, runtime: Runtime):
        self.runtime = runtime
        self._codec: tuple[str, RefusalCodec] | None = None
        self._poller: asyncio.Task | None = None

    # -- policy reloads ---------------------------------------------------------------------

    def running(self) -> None:
        if self._poller is None:
            self._poller = asyncio.get_running_loop().create_task(self._poll_policies())

    def done(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            self._poller = None

    async def _poll_policies(self) -> None:
        while True:
            await asyncio.sleep(POLICY_POLL_INTERVAL)
            policies = self.runtime.policies
            try:
                if policies is not None and policies.changed():
                    await asyncio.to_thread(policies.reload_if_changed)
            except Exception:
                log.exception("policy: reload check failed; the last good policy stays in force")

    def scopes_of(self, identity: Identity) -> frozenset[str]:
        """What the person's groups (and allowed direct scopes) grant, by the policy in force now."""
        assert self.runtime.policies is not None and self.runtime.registry is not None
        return held_scopes(self.runtime.policies.current(), identity.groups, identity.direct_scopes,
                           self.runtime.registry.names())

    def usable_scopes(self, identity: Identity, held: frozenset[str] | None = None) -> frozenset[str]:
        """What this credential may use: the groups' scopes, within a facade token's granted scope."""
        return usable_scopes(self.scopes_of(identity) if held is None else held, identity.granted_scopes)

    def _decided(self, identity: Identity, enforced: Decision, decide, arguments: Any = None) -> Outcome:
        """The enforced decision, with what the shadow view of the policy would decide beside it."""
        outcome = Outcome.of(enforced, arguments)
        assert self.runtime.policies is not None and self.runtime.registry is not None
        shadow_policy = self.runtime.policies.current().shadow
        if shadow_policy is None:
            return outcome
        held = held_scopes(shadow_policy, identity.groups, identity.direct_scopes, self.runtime.registry.names())
        shadow = decide(usable_scopes(held, identity.granted_scopes))
        _log_shadow(identity, shadow, enforced)
        return replace(outcome, shadow=Shadow(shadow.allowed, shadow.scope, shadow.reason))

    # -- requests ---------------------------------------------------------------------------

    @refuse_on_error
    def request(self, flow: http.HTTPFlow) -> None:
        if (seen := identified(flow)) is None or not seen[0].is_mcp:
            return
        found, identity = seen
        if identity.kind == "anonymous":
            return  # authentication is off: the data plane alone
        held = self.scopes_of(identity)
        scopes = self.usable_scopes(identity, held)
        state = state_of(flow)
        state.scopes = scopes
        method = flow.request.method
        if method == "POST":
            self._authorize_post(flow, found, identity, scopes, held)
        elif method in ("GET", "DELETE"):
            decision = decide_mcp_connect(scopes, found.server)
            outcome = self._decided(identity, decision, lambda shadow: decide_mcp_connect(shadow, found.server))
            if not decision.allowed:
                return self._refuse(flow, found, identity, outcome, held)
            state.decide(outcome)
            if method == "GET" and found.area is Area.SSE:
                self._watch_sse_stream(flow, found)
            elif method == "GET" and tool_filter(scopes, found.server) is not None:
                # A Streamable GET with Last-Event-ID replays a stream's events, a tools/list
                # answer among them (the specification's resumability): narrowed like any other.
                self._watch_sse_stream(flow, found)
        else:
            refuse(flow, 405, f"{method} is not an MCP method; use POST, GET or DELETE")

    def _authorize_post(self, flow: http.HTTPFlow, found: Route, identity: Identity, scopes: frozenset[str],
                        held: frozenset[str]) -> None:
        assert self.runtime.config is not None
        try:
            payload = parse_mcp_payload(flow.request.raw_content or b"", self.runtime.config.max_body_bytes)
        except JsonRpcRejected as e:
            decision = refused_unreadable(e.reason, e.status)
            log.warning("access refused: unreadable MCP body for %s: %s", found.server, e.reason)
            return refuse(flow, e.status, decision.reason, decided=Outcome.of(decision))
        messages = payload.messages
        decision = decide_mcp(scopes, found.server, messages)
        outcome = self._decided(identity, decision, lambda shadow: decide_mcp(shadow, found.server, messages),
                                self._arguments(messages))
        if not decision.allowed:
            return self._refuse(flow, found, identity, outcome, held, messages, payload.batch)
        state_of(flow).decide(outcome)
        if found.area is Area.STREAMABLE and tool_filter(scopes, found.server) is not None:
            lists = {m.id for m in messages if m.kind == "request" and m.method == "tools/list"}
            if lists:
                flow.metadata[TOOLS_LIST_FILTER] = (lists, tool_filter(scopes, found.server))
                flow.metadata["gateway.buffer_response"] = True  # JSON answers are filtered whole in `response`
        # On the SSE transport the answer travels on the GET stream, which narrows it there.

    def _arguments(self, messages: list[RpcMessage]) -> Any:
        config = self.runtime.config
        if config is None or not config.log_tool_arguments:
            return None
        calls = [m.raw.get("params", {}).get("arguments") for m in messages if m.method == "tools/call"]
        return calls or None

    def _refuse(self, flow: http.HTTPFlow, found: Route, identity: Identity, decision: Outcome,
                held: frozenset[str], messages: list[RpcMessage] | None = None, batch: bool = False) -> None:
        assert self.runtime.config is not None
        log.warning("access refused: server=%s method=%s tool=%s missing scope %s", found.server,
                    decision.method or flow.request.method, decision.tool or "-", decision.scope)
        if identity.granted_scopes is not None and self._groups_allow(held, found.server, messages):
            # The person's groups allow it, the token was granted less: authorizing again helps.
            message = (f"this token was granted less than your groups allow: {decision.reason}; "
                       "authorize the client again")
            return refuse_insufficient_scope(flow, self.runtime.config.public_url, found, decision, message)
        errors = error_responses(messages or [], FORBIDDEN, f"forbidden: {decision.reason}",
                                 {"scope": decision.scope, "groups": granting_groups(decision.scope)})
        if errors and found.area is Area.SSE and session_id_from_query(found.query):
            # The SDK's SSE client ignores a refused POST: the answer goes out on the stream
            # instead, carried by a ping whose id holds the signed errors (sse_answers.py).
            ping_id = self.codec().ping_id(errors)
            flow.request.content = json.dumps({"jsonrpc": "2.0", "id": ping_id, "method": "ping"}).encode()
            return refuse_on_stream(flow, decision)
        if errors and decide_mcp_connect(held, found.server).allowed:
            return refuse_with_jsonrpc_errors(flow, decision, errors, batch)
        if errors and not batch:
            # No access at all: still a 403, but shaped as the request's JSON-RPC error too, so SDK
            # clients (which parse a non-2xx JSON body as JSON-RPC) show the message naming the scope.
            return refuse(flow, 403, decision.reason, decided=decision, jsonrpc="2.0", id=errors[0]["id"],
                          error=errors[0]["error"], scope=decision.scope)
        refuse(flow, 403, decision.reason, decided=decision, scope=decision.scope)

    @staticmethod
    def _groups_allow(held: frozenset[str], server: str, messages: list[RpcMessage] | None) -> bool:
        decision = decide_mcp(held, server, messages) if messages else decide_mcp_connect(held, server)
        return decision.allowed

    def codec(self) -> RefusalCodec:
        config = self.runtime.config
        assert config is not None and config.auth.secret_key
        if self._codec is None or self._codec[0] != config.auth.secret_key:
            self._codec = (config.auth.secret_key, RefusalCodec(config.auth.secret_key))
        return self._codec[1]

    def _watch_sse_stream(self, flow: http.HTTPFlow, found: Route) -> None:
        identity = state_of(flow).identity
        assert identity is not None
        codec = self.codec()

        def message_filter(event):
            # The policy in force now, for the stream's owner (its MCP session is bound to them).
            return rewrite_answer(event, codec, lambda: tool_filter(self.usable_scopes(identity), found.server))

        flow.metadata[SSE_MESSAGE_FILTER] = message_filter

    # -- answers ----------------------------------------------------------------------------

    @refuse_on_error
    def responseheaders(self, flow: http.HTTPFlow) -> None:
        wanted = flow.metadata.get(TOOLS_LIST_FILTER)
        if wanted is None or flow.response is None:
            return
        if media_type(flow.response) == "text/event-stream":
            _, allowed = wanted

            def message_filter(event):
                return rewrite_answer(event, None, allowed)

            flow.metadata[SSE_MESSAGE_FILTER] = message_filter

    @refuse_on_error
    def response(self, flow: http.HTTPFlow) -> None:
        wanted = flow.metadata.get(TOOLS_LIST_FILTER)
        if wanted is None or flow.response is None or flow.response.stream:
            return
        ids, allowed = wanted
        answered = 200 <= flow.response.status_code < 300 and bool(flow.response.raw_content)
        try:
            if media_type(flow.response) != "application/json":
                raise ValueError("neither JSON nor an event stream")
            document = json.loads(flow.response.content or b"null")
        except ValueError as e:
            if answered:  # an answer that cannot be read cannot be narrowed: it does not pass
                server = state_of(flow).server
                log.warning("server %s: its answer to tools/list cannot be read (%s); refused",
                            server.name if server else "-", e)
                refuse(flow, 502, "the upstream's answer to tools/list could not be read, so it could not be "
                                  "narrowed to the tools you may call", after_answer=True)
            return
        if isinstance(document, list):
            document = [filter_tools_list_result(m, allowed) if isinstance(m, dict) and m.get("id") in ids else m
                        for m in document]
        elif isinstance(document, dict) and document.get("id") in ids:
            document = filter_tools_list_result(document, allowed)
        flow.response.content = json.dumps(document).encode()
