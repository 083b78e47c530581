"""Unknown and disabled servers, told apart only for callers allowed to know about them.

With authentication on, the router does not answer an unknown (404) or disabled (503)
server at once: anyone could enumerate server names that way. It leaves the answer here,
after Identify — so an unauthenticated caller gets the same 401 for every name — and here
it is given to callers who may know the server exists (any scope on it, or a registry
scope: they can list the servers anyway). A caller with no scope at all on the name goes on
to the authorizer, which refuses them the way it refuses them on a server that exists; the
forwarder never forwards a flow without a server (docs/data-plane.md).
"""

from __future__ import annotations

from typing import Callable

from mitmproxy import http

from mcp_gateway.identity import Identity
from mcp_gateway.scopes import REGISTRY_ADMIN, REGISTRY_READ

from .failclosed import refuse_on_error
from .flow_state import identified, state_of
from .refusals import refuse
from .runtime import Runtime


def may_know_of(scopes: frozenset[str], server: str) -> bool:
    prefix = f"mcp:server:{server}:"
    return REGISTRY_ADMIN in scopes or REGISTRY_READ in scopes or any(s.startswith(prefix) for s in scopes)


class ServerGate:
    def __init__(self, runtime: Runtime, scopes_of: Callable[[Identity], frozenset[str]]):
        self.runtime = runtime
        self.scopes_of = scopes_of

    @refuse_on_error
    def request(self, flow: http.HTTPFlow) -> None:
        if (seen := identified(flow)) is None or (problem := state_of(flow).server_problem) is None:
            return
        found, identity = seen
        if identity.kind == "anonymous" or may_know_of(self.scopes_of(identity), found.server or ""):
            refuse(flow, *problem)
