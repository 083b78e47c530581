"""Protected-resource metadata (RFC 9728): how an MCP client finds where to get a token.

`GET /.well-known/oauth-protected-resource/api/{execute|streamable}/{s}` answers, for any
well-formed server name, its resource (`<public_url>/api/{transport}/{s}`, the exact URL
clients use), the gateway's authorization-server facade as the only authorization server,
and the scopes that server takes. The 401 of every /api/{transport}/{s} request points here;
unknown and disabled names get the same answer as real ones, as their 401 is the same (no
enumeration before sign-in). `GET /.well-known/oauth-protected-resource` answers for the
gateway's origin, the resource the 401 of the registry API names (see mcp_gateway/resources.py).
Answered at `requestheaders`: public, static, nothing to forward.
"""

from __future__ import annotations

import json
import logging

from mitmproxy import http

from mcp_gateway.resources import METADATA_PREFIX, gateway_resource_metadata, protected_resource_metadata
from mcp_gateway.routing import Area

from .failclosed import refuse_on_error
from .flow_state import Outcome, state_of
from .refusals import refuse
from .runtime import Runtime

log = logging.getLogger(__name__)


class ResourceMetadata:
    def __init__(self, runtime: Runtime):
        self.runtime = runtime

    @refuse_on_error
    def requestheaders(self, flow: http.HTTPFlow) -> None:
        if flow.response or flow.error or not flow.live:
            return
        found = state_of(flow).route
        if found is None or found.area is not Area.RESOURCE_METADATA:
            return
        config = self.runtime.config
        assert config is not None  # the Router refuses otherwise
        if flow.request.method not in ("GET", "HEAD"):
            return refuse(flow, 405, "protected-resource metadata is read with GET", {"allow": "GET, HEAD"})
        if not config.auth.enabled:
            return refuse(flow, 404, "authentication is off: no protected resources")
        if found.server is not None:
            metadata = protected_resource_metadata(config.public_url, found.rest, found.server)
        elif flow.request.path.split("?")[0] == METADATA_PREFIX:
            metadata = gateway_resource_metadata(config.public_url)
        else:
            return refuse(flow, 404, "no protected resource here; metadata lives at /.well-known/oauth-protected-"
                                     "resource and /.well-known/oauth-protected-resource/api/{execute|streamable}/{server}")
        state_of(flow).decide(Outcome("allowed", 200, reason="protected-resource metadata"))
        flow.response = http.Response.make(200, json.dumps(metadata).encode(), {
            "content-type": "application/json", "cache-control": "public, max-age=300"})
