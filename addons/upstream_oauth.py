"""Per-user upstream tokens: puts the caller's own token for a server on what is forwarded there.

For a server with `[servers.upstream_oauth]` (docs/end-to-end-tokens.md), after the caller is
identified and authorized:

- connected (a token in the vault, refreshed first when due): the forwarder sends it in the
  configured header (`inject_user_token`); the token never enters `flow.metadata` (flow files
  and mitmweb keep metadata), and the header is masked in the stored flow once forwarded;
- not connected, a browser navigation: 302 to the login app's "connect {server}" page;
- not connected, an MCP call that needs the service (`tools/call` and every method that is not
  read-only): a JSON-RPC error `-32042` (URLElicitationRequiredError, MCP 2025-11-25) carrying
  the connect URL, in a 200 answer — on SSE delivered on the stream like other refusals
  (sse_answers.py);
- not connected, `initialize`, `ping`, `*/list`, notifications and stream GETs: forwarded
  without a token; if the upstream answers 401/403 the answer becomes the same connect error
  (its own `WWW-Authenticate` never reaches the client, which would otherwise start an OAuth
  flow against the service's authorization server).

An upstream 401 to a request that carried the user's token marks the token for refresh.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import weakref
from typing import Any, Callable
from urllib.parse import quote

from mitmproxy import http

from mcp_gateway.argument_masking import MASK
from mcp_gateway.authz import is_read_only_method
from mcp_gateway.config import ServerConfig
from mcp_gateway.identity import Identity
from mcp_gateway.jsonrpc import JsonRpcRejected, RpcMessage, error_responses, parse_mcp_payload
from mcp_gateway.routing import Area, Route
from mcp_gateway.sessions import StoreUnavailable
from mcp_gateway.upstream import session_id_from_query
from mcp_gateway.upstream_connections import UpstreamConnections
from mcp_gateway.upstream_oauth import UpstreamOAuthError, connect_url

from .failclosed import refuse_on_error
from .identify import identified
from .flow_state import state_of
from .refusals import jsonrpc_errors_answer, refuse
from .runtime import Runtime, close_later
from .sse_answers import RefusalCodec
from .upstream_connections_api import ConnectionsApi

log = logging.getLogger(__name__)

URL_ELICITATION_REQUIRED = -32042
CONNECTION_REQUIRED = "upstream_connection_required"
TOKEN_HEADER = "gateway.user_token_header"     # the header's name only, never its value
UNCONNECTED = "gateway.upstream_unconnected"   # forwarded without a user token
CONVERT = "gateway.upstream_refused_unconnected"
OWNER = "gateway.upstream_token_owner"

# The token to inject, per flow, outside flow.metadata (which flow files and mitmweb keep).
_pending: weakref.WeakKeyDictionary[http.HTTPFlow, tuple[str, str]] = weakref.WeakKeyDictionary()


def inject_user_token(flow: http.HTTPFlow, server: ServerConfig, headers: http.Headers) -> None:
    """The forwarder's hook: drop any client-sent value of the token header, add the user's token."""
    if server.upstream_oauth is None:
        return
    name = server.upstream_oauth.token_header
    if name in headers:
        del headers[name]
    pending = _pending.pop(flow, None)
    if pending is not None:
        headers[pending[0]] = pending[1]


def connections_of(runtime: Runtime) -> UpstreamConnections:
    config = runtime.config
    assert config is not None
    store = runtime.store
    if store is None:
        raise StoreUnavailable("per-user upstream tokens need the session store (authentication is off)")
    current = runtime.upstream_connections
    if current is None or current[0] is not config or current[1] is not store:
        if current is not None:
            close_later(current[2].aclose)
        current = runtime.upstream_connections = (config, store, UpstreamConnections(config, store))
    return current[2]


class UpstreamOAuthTokens:
    def __init__(self, runtime: Runtime, scopes_of: Callable[[Identity], frozenset[str]],
                 codec: Callable[[], RefusalCodec]):
        self.runtime = runtime
        self.api = ConnectionsApi(runtime, scopes_of, lambda: connections_of(runtime))
        self.codec = codec  # the authorizer's: SSE refusals share one signed format (sse_answers.py)

    def done(self) -> None:
        # Sync, like Settings.done: mitmproxy calls it synchronously on a hot reload.
        current, self.runtime.upstream_connections = self.runtime.upstream_connections, None
        if current is not None:
            try:
                asyncio.get_running_loop().create_task(current[2].aclose())
            except RuntimeError:
                pass

    @refuse_on_error
    async def request(self, flow: http.HTTPFlow) -> None:
        if (seen := identified(flow)) is None:
            return
        found, identity = seen
        if found.area is Area.API_OTHER and found.action == "connections":
            return await self.api.answer(flow, found, identity)
        server: ServerConfig | None = state_of(flow).server
        if not found.is_mcp or server is None or server.upstream_oauth is None:
            return
        if identity.kind == "anonymous":
            return refuse(flow, 403, f"server {server.name!r} sends each user's own token upstream: sign in first")
        connections = connections_of(self.runtime)
        try:
            tokens = await connections.vault.usable(identity.owner, connections.oauth_for(server))
        except StoreUnavailable:
            return refuse(flow, 503, "the session store is unavailable; try again shortly")
        except UpstreamOAuthError as e:
            log.error("upstream oauth: %s", e)
            return refuse(flow, 502, f"the authorization server of {server.name!r} is unavailable; try again shortly")
        flow.metadata[TOKEN_HEADER] = server.upstream_oauth.token_header
        flow.metadata[OWNER] = identity.owner
        if tokens is not None:
            settings = server.upstream_oauth
            _pending[flow] = (settings.token_header, settings.header_value(tokens.access_token))
            return
        self._unconnected(flow, found, server, identity)

    def _unconnected(self, flow: http.HTTPFlow, found: Route, server: ServerConfig, identity: Identity) -> None:
        request = flow.request
        if request.method == "GET" and "text/html" in request.headers.get("accept", ""):
            target = state_of(flow).public_path or request.path
            _decision(flow, 302, "upstream connection required")
            flow.response = http.Response.make(302, b"", {
                "location": f"/oauth/upstream/{server.name}/connect?next={quote(target, safe='/')}",
                "cache-control": "no-store"})
            return
        messages, batch = self._messages(flow) if request.method == "POST" else ([], False)
        if messages is None:
            return  # refused as unreadable
        if any(m.kind == "request" and not is_read_only_method(m.method or "") for m in messages):
            log.info("upstream oauth: user %s is not connected to %s; asked to connect", identity.username,
                     server.name)
            return self._answer_connect(flow, found, server, messages, batch, delivered_on_stream=True)
        flow.metadata[UNCONNECTED] = True

    def _messages(self, flow: http.HTTPFlow) -> tuple[list[RpcMessage] | None, bool]:
        assert self.runtime.config is not None
        try:
            payload = parse_mcp_payload(flow.request.raw_content or b"", self.runtime.config.max_body_bytes)
        except JsonRpcRejected as e:
            refuse(flow, e.status, f"unreadable MCP body: {e.reason}")
            return None, False
        return payload.messages, payload.batch

    def _answer_connect(self, flow: http.HTTPFlow, found: Route, server: ServerConfig, messages: list[RpcMessage],
                        batch: bool, *, delivered_on_stream: bool, reason: str = "") -> None:
        assert self.runtime.config is not None
        url = connect_url(self.runtime.config.public_url, server.name)
        message = reason or (f"connect your {server.name} account first: open {url} in a browser, "
                             "then call again")
        errors = error_responses(messages, URL_ELICITATION_REQUIRED, message, _elicitation(url, message, server))
        _decision(flow, 200, "upstream connection required")
        if errors and found.area is Area.STREAMABLE:
            flow.response = jsonrpc_errors_answer(flow.request.headers.get("accept", ""), errors, batch)
            return
        if errors and delivered_on_stream and found.area is Area.SSE and session_id_from_query(found.query):
            # The SDK's SSE client ignores the POST's answer: carry the errors on the stream (sse_answers.py).
            ping_id = self.codec().ping_id(errors)
            flow.request.content = json.dumps({"jsonrpc": "2.0", "id": ping_id, "method": "ping"}).encode()
            return
        refuse(flow, 403, message, code=CONNECTION_REQUIRED, connect_url=url, server=server.name)

    # -- answers ----------------------------------------------------------------------------

    @refuse_on_error
    async def responseheaders(self, flow: http.HTTPFlow) -> None:
        self._mask(flow)
        response = flow.response
        if response is None or OWNER not in flow.metadata or response.status_code not in (401, 403):
            return
        if not flow.metadata.get(UNCONNECTED):
            if response.status_code != 401:
                return
            server = state_of(flow).server
            assert server is not None
            try:
                await connections_of(self.runtime).vault.mark_stale(flow.metadata[OWNER], server.name)
            except StoreUnavailable:
                log.error("upstream oauth: cannot mark the token of %s for %s stale: store unavailable",
                          flow.metadata[OWNER], server.name)
        flow.metadata[CONVERT] = True
        flow.metadata["gateway.buffer_response"] = True  # replaced whole in `response`

    @refuse_on_error
    def response(self, flow: http.HTTPFlow) -> None:
        self._mask(flow)
        if not flow.metadata.pop(CONVERT, False) or flow.response is None:
            return
        server, found = state_of(flow).server, state_of(flow).route
        assert server is not None and found is not None
        log.info("upstream oauth: %s refused %s %s (%d); the caller is asked to connect", server.name,
                 flow.request.method, found.area.value, flow.response.status_code)
        reason = "" if flow.metadata.get(UNCONNECTED) else (
            f"{server.name} refused your connection; call again (the gateway renews it) or connect again at "
            f"{connect_url(self.runtime.config.public_url, server.name)}")
        messages, batch = self._messages(flow) if flow.request.method == "POST" else ([], False)
        self._answer_connect(flow, found, server, messages or [], batch, delivered_on_stream=False, reason=reason)

    def error(self, flow: http.HTTPFlow) -> None:
        self._mask(flow)
        _pending.pop(flow, None)

    @staticmethod
    def _mask(flow: http.HTTPFlow) -> None:
        name = flow.metadata.get(TOKEN_HEADER)
        if name and name in flow.request.headers and flow.request.headers[name] != MASK:
            flow.request.headers[name] = MASK


def _decision(flow: http.HTTPFlow, status: int, reason: str) -> None:
    state_of(flow).amend(verdict="refused", status=status, reason=reason)


def _elicitation(url: str, message: str, server: ServerConfig) -> dict[str, Any]:
    return {"elicitations": [{"mode": "url", "elicitationId": secrets.token_urlsafe(16), "url": url,
                              "message": message}],
            "code": CONNECTION_REQUIRED, "connect_url": url, "server": server.name}
