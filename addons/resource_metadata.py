"""Protected-resource metadata (RFC 9728): how an MCP client finds where to get a token.

`GET /.well-known/oauth-protected-resource/api/{execute|streamable}/{s}` answers, for any
well-formed server name (registered or not: names are not told apart before sign-in), its resource (`<public_url>/api/{transport}/{s}`, the exact URL clients
use), the gateway's authorization-server facade as the only authorization server, and the
scopes that server takes. The 401 of every /api/{transport}/{s} request points here.
Answered at `requestheaders`: public, static, nothing to forward.
"""

from __future__ import annotations

import json
import logging

from mitmproxy import http

from mcp_gateway.resources import protected_resource_metadata
from mcp_gateway.routing import Area, Route

from .failclosed import refuse_on_error
from .router import ROUTE, refuse
from .runtime import Runtime

log = logging.getLogger(__name__)


class ResourceMetadata:
    def __init__(self, runtime: Runtime):
        self.runtime = runtime

    @refuse_on_error
    def requestheaders(self, flow: http.HTTPFlow) -> None:
        if flow.response or flow.error or not flow.live:
            return
        found: Route | None = flow.metadata.get(ROUTE)
        if found is None or found.area is not Area.RESOURCE_METADATA:
            return
        config = self.runtime.config
        assert config is not None  # the Router refuses otherwise
        if flow.request.method not in ("GET", "HEAD"):
            return refuse(flow, 405, "protected-resource metadata is read with GET", {"allow": "GET, HEAD"})
        if not config.auth.enabled:
            return refuse(flow, 404, "authentication is off: no protected resources")
        # Any well-formed name: the metadata derives from the name alone, and a 404 for unknown
        # names would tell them apart before sign-in (docs/data-plane.md, "Unknown and disabled servers").
        if found.server is None:
            return refuse(flow, 404, "no protected resource here; metadata lives at "
                                     "/.well-known/oauth-protected-resource/api/{execute|streamable}/{server}")
        metadata = protected_resource_metadata(config.public_url, found.rest, found.server)
        flow.metadata["gateway.decision"] = {"decision": "allowed", "status": 200,
                                             "reason": "protected-resource metadata"}
        flow.response = http.Response.make(200, json.dumps(metadata).encode(), {
            "content-type": "application/json", "cache-control": "public, max-age=300"})
