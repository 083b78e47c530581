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
from typing import Any

from mitmproxy import http

from mcp_gateway.authz import (
    Decision,
    decide_mcp,
    decide_mcp_connect,
    filter_tools_list_result,
    granting_groups,
    refused_unreadable,
    tool_filter,
)
from mcp_gateway.identity import Identity
from mcp_gateway.jsonrpc import JsonRpcRejected, RpcMessage, error_responses, parse_mcp_payload
from mcp_gateway.routing import Area, Route
from mcp_gateway.upstream import session_id_from_query

from .failclosed import refuse_on_error
from .identify import IDENTITY, identified, resource_metadata_url
from .router import refuse
from .runtime import Runtime
from .sse_answers import RefusalCodec, jsonrpc_errors_answer, rewrite_answer
from .sse_stream import SSE_MESSAGE_FILTER

log = logging.getLogger(__name__)

DECISION = "gateway.decision"
SHADOW = "gateway.shadow"  # the shadow policy's would-be decision (docs/policies.md, "Shadow mode")
SCOPES = "gateway.scopes"
TOOLS_LIST_FILTER = "gateway.tools_list_filter"
FORBIDDEN = -32003  # JSON-RPC error code for a call the caller's scopes do not allow
POLICY_POLL_INTERVAL = 1.0


def record(flow: http.HTTPFlow, decision: Decision, arguments: Any = None) -> None:
    flow.metadata[DECISION] = {
        "decision": "allowed" if decision.allowed else "refused",
        "status": decision.status, "scope": decision.scope, "reason": decision.reason,
        "method": decision.method, "tool": decision.tool,
        **({"arguments": arguments} if arguments is not None else {}),
    }


def record_shadow(flow: http.HTTPFlow, shadow: Decision, enforced: Decision) -> None:
    """Report what the shadow policy would have decided; the enforced decision stands."""
    flow.metadata[SHADOW] = {"decision": "allowed" if shadow.allowed else "refused",
                             "scope": shadow.scope, "reason": shadow.reason}
    if shadow.allowed != enforced.allowed:
        identity = flow.metadata.get(IDENTITY)
        log.warning("access shadow %s (enforced: %s) user=%s method=%s tool=%s scope=%s reason=%s",
                    flow.metadata[SHADOW]["decision"], "allowed" if enforced.allowed else "refused",
                    *(_one_line(value) for value in (getattr(identity, "username", "-"), shadow.method or "-",
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
            policies = self.runtime.services.get("policies")
            try:
                if policies is not None and policies.changed():
                    await asyncio.to_thread(policies.reload_if_changed)
            except Exception:
                log.exception("policy: reload check failed; the last good policy stays in force")

    def scopes_of(self, identity: Identity) -> frozenset[str]:
        """What the person's groups (and allowed direct scopes) grant, by the policy in force now."""
        policy = self.runtime.services["policies"].current()
        assert self.runtime.registry is not None
        granted = policy.scopes_for(identity.groups, self.runtime.registry.names()).scopes
        return frozenset(granted | policy.direct_scopes(identity.direct_scopes))

    def usable_scopes(self, identity: Identity, held: frozenset[str] | None = None) -> frozenset[str]:
        """What this credential may use: the groups' scopes, within a facade token's granted scope."""
        held = self.scopes_of(identity) if held is None else held
        if identity.granted_scopes is None:
            return held
        return held & frozenset(identity.granted_scopes)

    def shadow(self, flow: http.HTTPFlow, enforced: Decision, decide) -> None:
        """Beside the enforced decision: what the shadow view of the policy would decide."""
        shadow = self.runtime.services["policies"].current().shadow
        if shadow is None:
            return
        identity: Identity = flow.metadata[IDENTITY]
        assert self.runtime.registry is not None
        scopes = shadow.scopes_for(identity.groups, self.runtime.registry.names()).scopes
        scopes |= shadow.direct_scopes(identity.direct_scopes)
        if identity.granted_scopes is not None:
            scopes &= frozenset(identity.granted_scopes)
        record_shadow(flow, decide(scopes), enforced)

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
        flow.metadata[SCOPES] = scopes
        method = flow.request.method
        if method == "POST":
            self._authorize_post(flow, found, scopes, held)
        elif method in ("GET", "DELETE"):
            decision = decide_mcp_connect(scopes, found.server)
            record(flow, decision)
            self.shadow(flow, decision, lambda shadow_scopes: decide_mcp_connect(shadow_scopes, found.server))
            if not decision.allowed:
                return self._refuse(flow, found, decision, held)
            if method == "GET" and found.area is Area.SSE:
                self._watch_sse_stream(flow, found)
        else:
            refuse(flow, 405, f"{method} is not an MCP method; use POST, GET or DELETE")

    def _authorize_post(self, flow: http.HTTPFlow, found: Route, scopes: frozenset[str],
                        held: frozenset[str]) -> None:
        assert self.runtime.config is not None
        try:
            payload = parse_mcp_payload(flow.request.raw_content or b"", self.runtime.config.max_body_bytes)
        except JsonRpcRejected as e:
            decision = refused_unreadable(e.reason, e.status)
            record(flow, decision)
            log.warning("access refused: unreadable MCP body for %s: %s", found.server, e.reason)
            return refuse(flow, e.status, decision.reason)
        messages = payload.messages
        decision = decide_mcp(scopes, found.server, messages)
        record(flow, decision, self._arguments(messages))
        self.shadow(flow, decision, lambda shadow_scopes: decide_mcp(shadow_scopes, found.server, messages))
        if not decision.allowed:
            return self._refuse(flow, found, decision, held, messages, payload.batch)
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

    def _refuse(self, flow: http.HTTPFlow, found: Route, decision: Decision, held: frozenset[str],
                messages: list[RpcMessage] | None = None, batch: bool = False) -> None:
        assert self.runtime.config is not None
        log.warning("access refused: server=%s method=%s tool=%s missing scope %s", found.server,
                    decision.method or flow.request.method, decision.tool or "-", decision.scope)
        identity: Identity = flow.metadata[IDENTITY]
        if identity.granted_scopes is not None and self._groups_allow(held, found.server, messages):
            # The person's groups allow it, the token was granted less: authorizing again helps.
            challenge = (f'Bearer error="insufficient_scope", scope="{decision.scope}", '
                         f'resource_metadata="{resource_metadata_url(self.runtime.config.public_url, found)}"')
            message = (f"this token was granted less than your groups allow: {decision.reason}; "
                       "authorize the client again")
            return refuse(flow, 403, message, {"www-authenticate": challenge}, scope=decision.scope)
        errors = error_responses(messages or [], FORBIDDEN, f"forbidden: {decision.reason}",
                                 {"scope": decision.scope, "groups": granting_groups(decision.scope)})
        if errors and found.area is Area.SSE and session_id_from_query(found.query):
            # The SDK's SSE client ignores a refused POST: the answer goes out on the stream
            # instead, carried by a ping whose id holds the signed errors (sse_answers.py).
            ping_id = self.codec().ping_id(errors)
            flow.request.content = json.dumps({"jsonrpc": "2.0", "id": ping_id, "method": "ping"}).encode()
            return
        if errors and decide_mcp_connect(held, found.server).allowed:
            flow.response = jsonrpc_errors_answer(flow.request.headers.get("accept", ""), errors, batch)
            return
        if errors and not batch:
            # No access at all: still a 403, but shaped as the request's JSON-RPC error too, so SDK
            # clients (which parse a non-2xx JSON body as JSON-RPC) show the message naming the scope.
            return refuse(flow, 403, decision.reason, jsonrpc="2.0", id=errors[0]["id"], error=errors[0]["error"],
                          scope=decision.scope)
        refuse(flow, 403, decision.reason, scope=decision.scope)

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
        identity: Identity = flow.metadata[IDENTITY]
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
        content_type = flow.response.headers.get("content-type", "")
        if content_type.startswith("text/event-stream"):
            _, allowed = wanted

            def message_filter(event):
                return rewrite_answer(event, None, allowed)

            flow.metadata[SSE_MESSAGE_FILTER] = message_filter

    @refuse_on_error
    def response(self, flow: http.HTTPFlow) -> None:
        wanted = flow.metadata.get(TOOLS_LIST_FILTER)
        if wanted is None or flow.response is None or flow.response.stream:
            return
        if not flow.response.headers.get("content-type", "").startswith("application/json"):
            return
        ids, allowed = wanted
        try:
            document = json.loads(flow.response.content or b"null")
        except ValueError:
            return
        if isinstance(document, list):
            document = [filter_tools_list_result(m, allowed) if isinstance(m, dict) and m.get("id") in ids else m
                        for m in document]
        elif isinstance(document, dict) and document.get("id") in ids:
            document = filter_tools_list_result(document, allowed)
        flow.response.content = json.dumps(document).encode()
