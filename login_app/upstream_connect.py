"""Connecting a user's account at the service behind a server (per-user upstream tokens).

| path | what |
| --- | --- |
| `GET /oauth/upstream/{server}/connect` | the "connect {server}" page (signed in; otherwise to the login page) |
| `POST /oauth/upstream/{server}/connect` | start: state + PKCE kept single-use in the store, bound to this browser session; 302 to the service's consent |
| `GET /oauth/upstream/{server}/callback` | check state (single-use, same browser session, same server) and `iss`, redeem the code, store the tokens, 303 to `next` |
| `GET /oauth/connections` | the signed-in user's connections, each with a disconnect button |
| `POST /oauth/upstream/{server}/disconnect` | forget (and revoke where possible) the user's tokens for that server |

The tokens go from the service's token endpoint straight into the vault
(mcp_gateway/upstream_tokens.py); no page and no log line shows them.
"""

from __future__ import annotations

import json
import logging
import secrets
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from mcp_gateway.authz import decide_mcp_connect
from mcp_gateway.config import ServerConfig
from mcp_gateway.redirects import safe_next
from mcp_gateway.sessions import Session, StoreUnavailable
from mcp_gateway.upstream_connections import UpstreamConnections
from mcp_gateway.upstream_oauth import UpstreamOAuthError

from .context import LoginContext, context, identity_of
from .cookies import current_session
from .origin import csrf_token, same_origin_or_token
from .pages import render

log = logging.getLogger(__name__)

STATE_TTL = 600.0
CONNECTIONS_PAGE = "/oauth/connections"


def connections(request: Request) -> UpstreamConnections:
    current = getattr(request.app.state, "upstream_connections", None)
    if current is None:
        ctx = context(request)
        current = request.app.state.upstream_connections = UpstreamConnections(ctx.config, ctx.store)
    return current


def _state_key(state: str) -> str:
    return f"upstream-connect:{state}"


def _message(request: Request, status: int, heading: str, message: str) -> Response:
    return render(request, "message.html", status, heading=heading, message=message, error=status >= 400,
                  back_url=CONNECTIONS_PAGE, back_label="Your connected services")


async def _signed_in(request: Request) -> tuple[LoginContext, Session | None]:
    ctx = context(request)
    return ctx, await current_session(request, ctx.store)


def _to_login(request: Request) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/oauth/login?next={quote(safe_next(target, CONNECTIONS_PAGE), safe='/')}",
                            status_code=302)


def _server(ctx: LoginContext, session: Session, name: str) -> ServerConfig | None:
    """The server, if it has per-user tokens and the person may use it."""
    server = ctx.registry.get(name)
    if server is None or server.upstream_oauth is None:
        return None
    identity = identity_of(session)
    scopes = frozenset(ctx.scopes_for(identity.groups, identity.direct_scopes))
    return server if decide_mcp_connect(scopes, name).allowed else None


async def connect_page(request: Request) -> Response:
    try:
        ctx, session = await _signed_in(request)
    except StoreUnavailable:
        return _message(request, 503, "Unavailable", "The session store is unavailable. Try again shortly.")
    if session is None:
        return _to_login(request)
    name = request.path_params["server"]
    server = _server(ctx, session, name)
    if server is None:
        return _message(request, 404, "Nothing to connect", f"There is no server {name!r} you can connect.")
    if request.method == "GET":
        return render(request, "upstream_connect.html", server=server.name, description=server.description,
                      user=session.username, next_path=safe_next(request.query_params.get("next"), CONNECTIONS_PAGE),
                      csrf_token=csrf_token(ctx.config, session.id))
    form = await request.form()
    if not same_origin_or_token(request, ctx.config, session.id, str(form.get("csrf_token") or "") or None):
        log.warning("upstream oauth: cross-site connect to %s refused for %s", name, session.username)
        return _message(request, 403, "Refused", "This request did not come from the gateway's own page.")
    state = secrets.token_urlsafe(32)
    oauth = connections(request).oauth_for(server)
    try:
        url, verifier = await oauth.authorization_request(state)
    except UpstreamOAuthError as e:
        log.error("upstream oauth: %s", e)
        return _message(request, 502, "Service unavailable", f"The sign-in service of {name} cannot be reached "
                                                               "or is misconfigured. Try again later.")
    record = {"session_id": session.id, "owner": identity_of(session).owner, "server": name, "verifier": verifier,
              "next": safe_next(str(form.get("next") or ""), CONNECTIONS_PAGE)}
    await ctx.store.put_once(_state_key(state), json.dumps(record), STATE_TTL)
    log.info("upstream oauth: %s is connecting %s", session.username, name)
    return RedirectResponse(url, status_code=302, headers={"cache-control": "no-store"})


async def callback(request: Request) -> Response:
    name = request.path_params["server"]
    state = request.query_params.get("state") or ""
    try:
        ctx, session = await _signed_in(request)
        raw = await ctx.store.take_once(_state_key(state)) if 16 <= len(state) <= 256 else None
    except StoreUnavailable:
        return _message(request, 503, "Unavailable", "The session store is unavailable. Try again shortly.")
    record = json.loads(raw) if raw else None
    if record is None or record.get("server") != name:
        log.warning("upstream oauth: callback for %s with an unknown, used or expired state", name)
        return _message(request, 400, "Connection not completed",
                        "This connection attempt is unknown, already used or expired. Start again.")
    if session is None or session.id != record["session_id"]:
        log.warning("upstream oauth: callback for %s in another browser session than the one that started it", name)
        return _message(request, 400, "Connection not completed",
                        "This connection was started in another browser session. Start again here.")
    if request.query_params.get("error"):
        log.info("upstream oauth: %s declined or failed at %s: %s", session.username, name,
                 request.query_params.get("error", "")[:64].encode("unicode_escape").decode())
        return _message(request, 400, "Not connected", f"The sign-in service of {name} did not grant access.")
    server = _server(ctx, session, name)
    code = request.query_params.get("code") or ""
    if server is None or not code:
        return _message(request, 400, "Connection not completed", "The answer carries no authorization code.")
    oauth = connections(request).oauth_for(server)
    try:
        endpoints = await oauth.endpoints()
        issuer = request.query_params.get("iss")
        if issuer is not None and endpoints.issuer and issuer != endpoints.issuer:  # RFC 9207 mix-up defence
            log.warning("upstream oauth: callback for %s from issuer %r, expected %r", name, issuer, endpoints.issuer)
            return _message(request, 400, "Connection not completed", "The answer came from another issuer.")
        tokens = await oauth.redeem(code, record["verifier"])
        await connections(request).vault.save(record["owner"], name, tokens)
    except UpstreamOAuthError as e:
        log.error("upstream oauth: %s", e)
        return _message(request, 502, "Connection not completed", f"The sign-in service of {name} refused or "
                                                                   "failed to complete the connection. Start again.")
    log.info("upstream oauth: %s connected %s", session.username, name)
    return RedirectResponse(record["next"], status_code=303, headers={"cache-control": "no-store"})


async def connections_page(request: Request) -> Response:
    try:
        ctx, session = await _signed_in(request)
        if session is None:
            return _to_login(request)
        identity = identity_of(session)
        scopes = frozenset(ctx.scopes_for(identity.groups, identity.direct_scopes))
        servers = [s for s in ctx.registry.all() if s.upstream_oauth is not None]
        connected = await connections(request).vault.connected(identity.owner, [s.name for s in servers])
    except StoreUnavailable:
        return _message(request, 503, "Unavailable", "The session store is unavailable. Try again shortly.")
    rows = [{"server": s.name, "description": s.description, "connected": s.name in connected}
            for s in servers if s.name in connected or decide_mcp_connect(scopes, s.name).allowed]
    return render(request, "connections.html", user=session.username, rows=rows,
                  csrf_token=csrf_token(ctx.config, session.id))


async def disconnect(request: Request) -> Response:
    name = request.path_params["server"]
    try:
        ctx, session = await _signed_in(request)
        if session is None:
            return _to_login(request)
        form = await request.form()
        if not same_origin_or_token(request, ctx.config, session.id, str(form.get("csrf_token") or "") or None):
            return _message(request, 403, "Refused", "This request did not come from the gateway's own page.")
        server = ctx.registry.get(name)
        tokens = await connections(request).vault.forget(identity_of(session).owner, name)
    except StoreUnavailable:
        return _message(request, 503, "Unavailable", "The session store is unavailable. Try again shortly.")
    if tokens is not None and tokens.access_token and server is not None and server.upstream_oauth is not None:
        try:
            await connections(request).oauth_for(server).revoke(tokens)
        except UpstreamOAuthError as e:
            log.warning("upstream oauth: revocation at %s failed: %s", name, e)
    log.info("upstream oauth: %s disconnected %s", session.username, name)
    return RedirectResponse(CONNECTIONS_PAGE, status_code=303)


UPSTREAM_CONNECT_ROUTES = [
    Route("/oauth/upstream/{server}/connect", connect_page, methods=["GET", "POST"]),
    Route("/oauth/upstream/{server}/callback", callback, methods=["GET"]),
    Route("/oauth/upstream/{server}/disconnect", disconnect, methods=["POST"]),
    Route(CONNECTIONS_PAGE, connections_page, methods=["GET"]),
]
