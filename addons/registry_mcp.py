"""The built-in registry MCP server: /api/streamable/registry answered inside the proxy, and
/api/execute/registry (SSE) relayed to the login app like any upstream.

Streamable HTTP speaks the Streamable HTTP subset a stateless server needs — POST of initialize, ping,
notifications, tools/list and tools/call, answered as application/json — so the caller's
identity, the connect/method/tool decision (made by the Authorizer like for any server named
`registry`) and the tools/list filtering all apply unchanged. The tools themselves
(mcp_gateway.registry_tools) apply the registry API's decisions on their target.

The SSE transport needs a long-lived stream and POSTs that may reach another worker; a
mitmproxy addon can only answer with a whole body, and workers share no memory. So the stream
lives in the login app (one process behind all workers, `login_app/registry_sse.py`), and the
proxy treats it as the upstream of server `registry`: the Forwarder relays it, SessionBinding
binds its session id to the caller in the store, the Authorizer decides connect and each POST
and narrows tools/list on the stream. `RegistryMcpCaller`, after the Forwarder, adds the caller
(owner, name, scopes) in a header signed with SECRET_KEY (mcp_gateway.registry_caller), which
the login app requires. Without the login app (authentication off) /api/execute/registry is 404.
docs/registry-ui.md."""

from __future__ import annotations

import asyncio
import logging
from mitmproxy import http

from mcp_gateway.config import ServerConfig
from mcp_gateway.jsonrpc import JsonRpcRejected, parse_mcp_payload
from mcp_gateway.registry_caller import CALLER_HEADER, Caller, sign_caller
from mcp_gateway.registry_tools import NAME, RegistryTools, answer
from mcp_gateway.routing import Area

from .failclosed import refuse_on_error
from .flow_state import identified, state_of
from .health import health_board
from .refusals import refuse
from .responses import json_ok
from .runtime import Runtime

log = logging.getLogger(__name__)

# Nothing listens on port 1: if this addon were missing, a request would fail, never leak.
VIRTUAL = ServerConfig(name=NAME, url="http://127.0.0.1:1", description="The registry itself, as an MCP server")
SSE_BASE_PATH = "/_gateway/registry-mcp"  # on the login app; not a path the proxy routes from outside


def sse_upstream(login_app_url: str) -> ServerConfig:
    return ServerConfig(name=NAME, url=f"{login_app_url.rstrip('/')}{SSE_BASE_PATH}", sse_path="/sse",
                        description=VIRTUAL.description)


class RegistryMcp:
    def __init__(self, runtime: Runtime):
        self.runtime = runtime
        runtime.builtin_servers[NAME] = VIRTUAL

    @refuse_on_error
    async def request(self, flow: http.HTTPFlow) -> None:
        if flow.response or (seen := identified(flow)) is None:
            return
        found, identity = seen
        if found.server != NAME or not found.is_mcp or self.runtime.registry.get(NAME) is not None:
            return  # a configured server named "registry" wins over the built-in one
        if found.area is Area.SSE:
            return self._relay_sse(flow, identity.kind == "anonymous")
        if flow.request.method == "DELETE":
            flow.response = json_ok({})
            return
        if flow.request.method != "POST":
            return refuse(flow, 405, "the registry server opens no stream; POST JSON-RPC requests", {"allow": "POST"})
        assert self.runtime.config is not None
        try:
            payload = parse_mcp_payload(flow.request.raw_content or b"", self.runtime.config.max_body_bytes)
        except JsonRpcRejected as e:
            return refuse(flow, e.status, f"unreadable MCP body: {e.reason}")
        scopes = None if identity.kind == "anonymous" else state_of(flow).scopes
        board = health_board(self.runtime)
        tools = RegistryTools(self.runtime.registry, board.latest if board else {}, self.runtime.config.public_url,
                              scopes)
        # toggle_server takes the registry's file lock and fsyncs: never on the proxy's event loop.
        answers = await asyncio.to_thread(
            lambda: [a for a in (answer(m, tools, identity.username) for m in payload.messages) if a is not None])
        if not answers:
            flow.response = http.Response.make(202, b"", {"cache-control": "no-store"})
            return
        flow.response = json_ok(answers if payload.batch else answers[0])

    def _relay_sse(self, flow: http.HTTPFlow, anonymous: bool) -> None:
        config = self.runtime.config
        login_app = self.runtime.login_app_url
        if anonymous or login_app is None or config is None or not config.auth.secret_key:
            return refuse(flow, 404, "the built-in registry server's SSE transport needs authentication on "
                                     "(it runs in the login app): use /api/streamable/registry")
        state_of(flow).server = sse_upstream(login_app)  # the Forwarder relays it like any SSE upstream


class RegistryMcpCaller:
    """After the Forwarder (which strips every X-MCP-Gateway-* header a client sent): tells the
    login app who is calling the registry's SSE transport."""

    def __init__(self, runtime: Runtime):
        self.runtime = runtime

    @refuse_on_error
    def request(self, flow: http.HTTPFlow) -> None:
        state = state_of(flow)
        if flow.response or not state.approved or state.forwarded_to != NAME or state.identity is None:
            return
        login_app = self.runtime.login_app_url
        if login_app is None or state.server != sse_upstream(login_app):
            return  # a configured server named "registry": an ordinary upstream, told nothing
        config = self.runtime.config
        assert config is not None and config.auth.secret_key  # checked when the flow was routed here
        identity = state.identity
        caller = Caller(identity.owner, identity.username, state.scopes or frozenset())
        flow.request.headers[CALLER_HEADER] = sign_caller(
            config.auth.secret_key, caller, flow.request.method, flow.request.path, flow.request.raw_content or b"")
