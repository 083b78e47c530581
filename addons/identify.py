"""Who is calling? Reads the session cookie (later also bearer tokens) on every /api/* request.

No or bad credentials: 401 with a JSON body and `WWW-Authenticate` for API callers, a
302 to the login page for a browser navigation. Nothing the client authenticated with
travels further: the forwarder strips the cookie and any Authorization header.
"""

from __future__ import annotations

import logging
from urllib.parse import quote

from mitmproxy import http

from mcp_gateway.identity import ANONYMOUS, SESSION_COOKIE, Identity
from mcp_gateway.routing import Area, Route
from mcp_gateway.sessions import StoreUnavailable

from .failclosed import refuse_on_error
from .router import ROUTE, refuse
from .runtime import Runtime

log = logging.getLogger(__name__)

IDENTITY = "gateway.identity"
IDENTIFIED_AREAS = (Area.SSE, Area.STREAMABLE, Area.REGISTRY, Area.API_OTHER)
QUERY_CREDENTIALS = ("access_token", "token", "id_token", "api_key", "apikey", "session", SESSION_COOKIE)


class Identify:
    def __init__(self, runtime: Runtime):
        self.runtime = runtime

    @refuse_on_error
    async def request(self, flow: http.HTTPFlow) -> None:
        if flow.response or flow.error or not flow.live:
            return
        found: Route | None = flow.metadata.get(ROUTE)
        config = self.runtime.config
        if found is None or config is None or found.area not in IDENTIFIED_AREAS:
            return
        if not config.auth.enabled:
            flow.metadata[IDENTITY] = ANONYMOUS
            return
        if _credential_in_query(found.query):
            return self._unauthenticated(flow, found, "credentials in the query string are not accepted; "
                                                      "send a cookie or an Authorization header")
        tokens = session_cookies(flow.request)
        if len(tokens) > 1:
            return self._unauthenticated(flow, found, f"more than one {SESSION_COOKIE} cookie")
        if not tokens:
            return self._unauthenticated(flow, found, "sign in first: no session")
        try:
            session = await self.runtime.services["store"].get(tokens[0])
        except StoreUnavailable:
            log.error("auth: session store unavailable; refusing %s", flow.request.path.split("?")[0])
            return refuse(flow, 503, "the session store is unavailable; try again shortly")
        if session is None:
            return self._unauthenticated(flow, found, "the session is unknown, expired or ended")
        flow.metadata[IDENTITY] = Identity(
            subject=session.subject, username=session.username, provider=session.provider, groups=session.groups,
            direct_scopes=session.scopes, kind="access" if session.kind == "access" else "session",
            session_id=session.id, client_id=session.client_id, resources=session.resources)

    def _unauthenticated(self, flow: http.HTTPFlow, found: Route, reason: str) -> None:
        config = self.runtime.config
        assert config is not None
        log.info("auth: unauthenticated %s %s: %s", flow.request.method, flow.request.path.split("?")[0], reason)
        accept = flow.request.headers.get("accept", "")
        if flow.request.method == "GET" and "text/html" in accept:
            flow.metadata["gateway.decision"] = {"decision": "refused", "status": 302, "reason": reason}
            target = flow.metadata.get("gateway.public_path", flow.request.path)
            flow.response = http.Response.make(302, b"", {"location": f"/oauth/login?next={quote(target, safe='/')}",
                                                          "cache-control": "no-store"})
            return
        refuse(flow, 401, reason, {"www-authenticate": f'Bearer resource_metadata="{resource_metadata_url(config.public_url, found)}"'})


def resource_metadata_url(public_url: str, found: Route) -> str:
    base = public_url.rstrip("/") + "/.well-known/oauth-protected-resource"
    if found.server and found.area in (Area.SSE, Area.STREAMABLE):
        return f"{base}/api/{found.area.value}/{found.server}"
    return base


def session_cookies(request: http.Request) -> list[str]:
    values = []
    for header in request.headers.get_all("cookie"):
        for part in header.split(";"):
            name, _, value = part.strip().partition("=")
            if name == SESSION_COOKIE:
                values.append(value.strip())
    return values


def _credential_in_query(query: str) -> bool:
    for pair in query.split("&"):
        name = pair.split("=", 1)[0].lower()
        if name in QUERY_CREDENTIALS:
            return True
    return False
