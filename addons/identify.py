"""Who is calling? Reads the bearer token or the session cookie on every /api/* request.

- `Authorization: Bearer <token>`: a token the gateway's authorization-server facade issued
  (an opaque "access" session, valid only for the resource(s) it was issued for — RFC 8707),
  or a JWT from the configured identity provider (agents). A browser session's token is not
  a bearer token. More than one Authorization header is refused.
- Otherwise the cookie `mcp_gateway_session` (exactly one).
- Both present: the bearer token decides and the cookie is ignored — it is the credential
  the client chose to send; a browser attaches its cookie to every request by itself.

No or bad credentials: 401 with a JSON body and `WWW-Authenticate` (`resource_metadata`, and
`error="invalid_token"` for a bad token) for API callers, a 302 to the login page for a
browser navigation without any. Credentials in the query string are refused. Nothing the
client authenticated with travels further: the forwarder strips the cookie and any
Authorization header.
"""

from __future__ import annotations

import asyncio
import logging
from urllib.parse import unquote_plus

from mitmproxy import http

from mcp_gateway.bearer import BearerJwts, BearerUnavailable
from mcp_gateway.group_refresh import refresh_if_due
from mcp_gateway.identity import ANONYMOUS, SESSION_COOKIE, Identity, identity_of, session_cookie_values
from mcp_gateway.resources import resource_url
from mcp_gateway.routing import Area, Route
from mcp_gateway.sessions import Session, StoreUnavailable
from mcp_gateway.tokens import TokenInvalid

from .failclosed import refuse_on_error
from .flow_state import LEGACY_IDENTITY, identified, set_identity, state_of
from .refusals import redirect_to_login, refuse, refuse_unauthenticated
from .runtime import Runtime

log = logging.getLogger(__name__)

# IDENTITY and `identified` lived here; re-exported for addons written against them (one
# release; docs/architecture.md §5): read flow_state.state_of(flow).identity instead.
IDENTITY = LEGACY_IDENTITY
__all__ = ["IDENTITY", "Identify", "identified", "request_resource", "session_cookies"]
IDENTIFIED_AREAS = (Area.SSE, Area.STREAMABLE, Area.REGISTRY, Area.API_OTHER)
QUERY_CREDENTIALS = ("access_token", "token", "id_token", "api_key", "apikey", "session", SESSION_COOKIE)


class Identify:
    def __init__(self, runtime: Runtime):
        self.runtime = runtime
        self._bearer_jwts: BearerJwts | None = None

    @refuse_on_error
    async def request(self, flow: http.HTTPFlow) -> None:
        if flow.response or flow.error or not flow.live:
            return
        found = state_of(flow).route
        config = self.runtime.config
        if found is None or config is None or found.area not in IDENTIFIED_AREAS:
            return
        if not config.auth.enabled:
            return set_identity(flow, ANONYMOUS)
        if _credential_in_query(found.query):
            return self._unauthenticated(flow, found, "credentials in the query string are not accepted; "
                                                      "send a cookie or an Authorization header", "invalid_request")
        authorizations = flow.request.headers.get_all("authorization")
        try:
            if len(authorizations) > 1:
                return self._unauthenticated(flow, found, "more than one Authorization header", "invalid_request")
            if authorizations:
                identity = await self._from_authorization(flow, found, authorizations[0])
            else:
                identity = await self._from_cookie(flow, found)
        except StoreUnavailable:
            log.error("auth: session store unavailable; refusing %s", flow.request.path.split("?")[0])
            return refuse(flow, 503, "the session store is unavailable; try again shortly")
        except BearerUnavailable as e:
            log.error("auth: identity provider unavailable, bearer JWT refused: %s", e)
            return refuse(flow, 503, "the identity provider's keys are unavailable; try again shortly")
        if identity is not None:
            set_identity(flow, identity)

    async def _from_cookie(self, flow: http.HTTPFlow, found: Route) -> Identity | None:
        tokens = session_cookies(flow.request)
        if len(tokens) > 1:
            return self._unauthenticated(flow, found, f"more than one {SESSION_COOKIE} cookie")
        if not tokens:
            return self._unauthenticated(flow, found, "sign in first: no session")
        session = await self._store().get(tokens[0])
        if session is None or session.kind != "browser":
            return self._unauthenticated(flow, found, "the session is unknown, expired or ended")
        session = await self._with_current_groups(session)
        if session is None:
            return self._unauthenticated(flow, found, "the session ended: the identity provider refused to renew it")
        return identity_of(session)

    def _store(self):
        assert self.runtime.store is not None  # auth on: Settings built one
        return self.runtime.store

    async def _with_current_groups(self, session: Session) -> Session | None:
        """Re-read the session's groups from its IdP every refresh_interval (None: the IdP refused)."""
        config = self.runtime.config
        assert config is not None
        if session.provider == "local" or not session.refresh_token:
            return session
        providers = await self.runtime.providers.get(config)
        return await refresh_if_due(self._store(), session, providers.get(session.provider),
                                    config.session.refresh_interval)

    async def _from_authorization(self, flow: http.HTTPFlow, found: Route, header: str) -> Identity | None:
        scheme, _, token = header.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token or " " in token:
            return self._unauthenticated(flow, found, "send Authorization: Bearer <token>", "invalid_request")
        try:
            if token.count(".") == 2:
                return await self._bearer_jwt(token)
            return await self._access_token(token, found)
        except TokenInvalid as e:
            return self._unauthenticated(flow, found, f"bearer token refused: {e.reason}", "invalid_token")

    async def _access_token(self, token: str, found: Route) -> Identity:
        config = self.runtime.config
        assert config is not None
        session = await self._store().get(token)
        if session is None:
            raise TokenInvalid("unknown, expired or revoked")
        if session.kind != "access":
            raise TokenInvalid("a browser session is not a bearer token")
        resource = request_resource(config.public_url, found)
        if resource is None or resource not in session.resources:
            raise TokenInvalid(f"issued for {', '.join(session.resources) or 'no resource'}, "
                               f"not for {resource or 'this path'}")
        return identity_of(session)

    async def _bearer_jwt(self, token: str) -> Identity:
        config = self.runtime.config
        assert config is not None
        if self._bearer_jwts is None or self._bearer_jwts.config is not config:
            if self._bearer_jwts is not None:
                await self._bearer_jwts.aclose()
            self._bearer_jwts = BearerJwts(config)
        return await self._bearer_jwts.identify(token)

    def done(self) -> None:
        # Sync, like Settings.done: mitmproxy calls it synchronously on a hot reload.
        bearer, self._bearer_jwts = self._bearer_jwts, None
        if bearer is not None:
            try:
                asyncio.get_running_loop().create_task(bearer.aclose())
            except RuntimeError:
                pass

    def _unauthenticated(self, flow: http.HTTPFlow, found: Route, reason: str, error: str | None = None) -> None:
        config = self.runtime.config
        assert config is not None
        log.info("auth: unauthenticated %s %s: %s", flow.request.method, flow.request.path.split("?")[0], reason)
        accept = flow.request.headers.get("accept", "")
        if error is None and flow.request.method == "GET" and "text/html" in accept:
            return redirect_to_login(flow, reason)
        refuse_unauthenticated(flow, config.public_url, found, reason, error)


def request_resource(public_url: str, found: Route) -> str | None:
    """The RFC 8707 resource a request is for: one server over one transport (None outside /api/{transport}/{s})."""
    if found.server and found.area in (Area.SSE, Area.STREAMABLE):
        return resource_url(public_url, found.area.value, found.server)
    return None


def session_cookies(request: http.Request) -> list[str]:
    """Every value of the session cookie the request carries (more than one: ambiguous, refused)."""
    return session_cookie_values(request.headers.get_all("cookie"))


def _credential_in_query(query: str) -> bool:
    # Names are compared decoded: an upstream decodes `access%5Ftoken` to `access_token`.
    for pair in query.split("&"):
        name = unquote_plus(pair.split("=", 1)[0]).strip().lower()
        if name in QUERY_CREDENTIALS:
            return True
    return False
