"""GET/POST /oauth/authorize — the person signs in, then consents for this one MCP client.

The gateway reaches the IdP with a single client of its own, so an IdP login alone says
nothing about which MCP client will get the code. The consent page therefore names the
client and, above all, the redirect URI the code will go to, and nothing is issued until
the person allows it (the confused-deputy defence of the MCP security best practices).
Nobody signed in: the browser goes to `/oauth/login?next=<this request>` and comes back.

The validated request waits in the store (single use, ten minutes) under a random
transaction id; the consent form carries that id and a CSRF token bound to the browser
session, and is accepted only from the session that was shown the page.

When the person's groups give no access to a server the client asks for, there is nothing
to consent to: the page says so and which group would give access, offers no Allow, and an
"allow" posted anyway is answered like a denial — the client gets `error=access_denied`.
"""

from __future__ import annotations

import hmac
import json
import logging
import secrets
import time
from urllib.parse import quote, urlsplit

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from mcp_gateway.authz import decide_mcp_connect
from mcp_gateway.oauth_grants import Grant, Grants, new_family
from mcp_gateway.redirects import MAX_NEXT_LENGTH
from mcp_gateway.resources import scopes_for_servers, servers_of
from mcp_gateway.sessions import Session, StoreUnavailable

from ..context import client_address, context
from ..cookies import current_session
from ..origin import csrf_token, foreign_origin
from ..pages import render
from .authorize_request import (
    AuthorizationRequest,
    RefusedOnPage,
    RefusedToClient,
    read_authorization_request,
    redirect_with,
)
from .clients import client_registry

log = logging.getLogger(__name__)

CONSENT_TTL = 600.0


def _page(request: Request, status: int, message: str, heading: str = "Authorization refused") -> Response:
    return render(request, "message.html", status, heading=heading, message=message, error=True)


def _to_client(request: Request, redirect_uri: str, state: str | None, **params: str) -> Response:
    target = redirect_with(redirect_uri, context(request).config.public_url, state, **params)
    return RedirectResponse(target, status_code=303 if request.method == "POST" else 302,
                            headers={"cache-control": "no-store"})


async def authorize(request: Request) -> Response:
    ctx = context(request)
    try:
        auth_request = await read_authorization_request(request.query_params, client_registry(request),
                                                        ctx.config.public_url, ctx.registry.names())
        session = await current_session(request, ctx.store)
    except RefusedOnPage as e:
        log.warning("auth: authorization request refused: %s (client %s)", e.message, client_address(request))
        return _page(request, 400, e.message)
    except RefusedToClient as e:
        log.info("auth: authorization request refused: %s: %s", e.error, e.description)
        return _to_client(request, e.redirect_uri, e.state, error=e.error, error_description=e.description)
    except StoreUnavailable:
        return _page(request, 503, "The session store is unavailable. Try again shortly.", "Unavailable")
    if session is None or session.kind != "browser":
        here = f"{request.url.path}?{request.url.query}"
        if len(here) > MAX_NEXT_LENGTH:
            return _to_client(request, auth_request.redirect_uri, auth_request.state, error="invalid_request",
                              error_description="authorization request too long")
        return RedirectResponse(f"/oauth/login?next={quote(here, safe='/')}", status_code=302,
                                headers={"cache-control": "no-store"})
    try:
        transaction = await _hold(request, auth_request, session)
    except StoreUnavailable:
        return _page(request, 503, "The session store is unavailable. Try again shortly.", "Unavailable")
    return _consent_page(request, auth_request, session, transaction)


async def _hold(request: Request, auth_request: AuthorizationRequest, session: Session) -> str:
    transaction = secrets.token_urlsafe(32)
    pending = {"client_id": auth_request.client.client_id, "redirect_uri": auth_request.redirect_uri,
               "redirect_uri_sent": auth_request.redirect_uri_sent,
               "state": auth_request.state, "code_challenge": auth_request.code_challenge,
               "resources": list(auth_request.resources), "scope": auth_request.scope, "browser_session": session.id}
    await context(request).store.put_once(f"oauth-consent:{transaction}", json.dumps(pending), CONSENT_TTL)
    return transaction


def _servers_without_access(request: Request, session: Session, resources: list[str] | tuple[str, ...]) -> list[str]:
    """The servers among `resources` that the person's groups give no access to (not even connect)."""
    ctx = context(request)
    held = frozenset(ctx.scopes_for(session.groups, session.scopes))
    return [server for server in servers_of(ctx.config.public_url, resources)
            if not decide_mcp_connect(held, server).allowed]


def _no_access_description(servers: list[str]) -> str:
    return "; ".join(f"your groups give no access to server {server!r} (group mcp-server-{server} "
                     f"or mcp-server-{server}-tool-<tool> would)" for server in servers)


def _consent_page(request: Request, auth_request: AuthorizationRequest, session: Session, transaction: str) -> Response:
    ctx = context(request)
    servers = servers_of(ctx.config.public_url, auth_request.resources)
    response = render(
        request, "consent.html", client_name=auth_request.client.display_name,
        named=auth_request.client.client_name is not None, redirect_uri=auth_request.redirect_uri,
        resources=auth_request.resources, servers=servers, user=session.username,
        scopes=scopes_for_servers(ctx.scopes_for(session.groups, session.scopes), servers),
        no_access=_servers_without_access(request, session, auth_request.resources),
        transaction=transaction, csrf_token=csrf_token(ctx.config, session.id))
    # The form's answer redirects to the client: the page's form-action must allow its origin,
    # or browsers stop the redirect.
    target = urlsplit(auth_request.redirect_uri)
    response.headers["content-security-policy"] = response.headers["content-security-policy"].replace(
        "form-action 'self'", f"form-action 'self' {target.scheme}://{target.netloc}")
    return response


async def decide(request: Request) -> Response:
    """POST /oauth/authorize: the answer of the consent form."""
    ctx = context(request)
    form = await request.form()
    address = client_address(request)
    if foreign_origin(request, ctx.config):
        log.warning("auth: consent refused: cross-site form post (client %s)", address)
        return _page(request, 403, "This consent form was posted from another site.")
    try:
        session = await current_session(request, ctx.store)
        if session is None or session.kind != "browser":
            return _page(request, 401, "Your sign-in ended. Start again from your MCP client.")
        if not hmac.compare_digest(str(form.get("csrf_token") or ""), csrf_token(ctx.config, session.id)):
            log.warning("auth: consent refused: bad CSRF token (client %s)", address)
            return _page(request, 403, "This consent form is not valid for your session. Start again from your "
                                       "MCP client.")
        raw = await ctx.store.take_once(f"oauth-consent:{str(form.get('transaction') or '')[:100]}")
        pending = json.loads(raw) if raw else None
        if pending is None or pending["browser_session"] != session.id:
            return _page(request, 400, "This consent request expired or was already answered. Start again from "
                                       "your MCP client.")
        client = await client_registry(request).get(pending["client_id"])
        if client is None:
            return _page(request, 400, "This application is no longer registered. Connect it again.")
        if form.get("decision") != "allow":
            log.info("auth: consent denied by user=%s for MCP client %s (%s)", session.username,
                     client.client_id[:8], client.display_name)
            return _to_client(request, pending["redirect_uri"], pending["state"], error="access_denied",
                              error_description="the user denied the request")
        if without := _servers_without_access(request, session, pending["resources"]):
            log.warning("auth: consent refused: user=%s has no access to %s (MCP client %s)", session.username,
                        ",".join(without), client.client_id[:8])
            return _to_client(request, pending["redirect_uri"], pending["state"], error="access_denied",
                              error_description=_no_access_description(without))
        code = await _issue_code(request, session, pending)
        await client_registry(request).save(client)  # in use: keep the registration
    except StoreUnavailable:
        return _page(request, 503, "The session store is unavailable. Try again shortly.", "Unavailable")
    log.info("auth: consent given by user=%s to MCP client %s (%s) for %s", session.username, client.client_id[:8],
             client.display_name, ",".join(pending["resources"]))
    return _to_client(request, pending["redirect_uri"], pending["state"], code=code)


async def _issue_code(request: Request, session: Session, pending: dict) -> str:
    ctx = context(request)
    grant = Grant(
        client_id=pending["client_id"], resources=tuple(pending["resources"]), subject=session.subject,
        username=session.username, provider=session.provider, groups=session.groups,
        direct_scopes=session.scopes, email=session.email, browser_session=session.id, family=new_family(),
        expires_at=time.time() + ctx.config.session.lifetime, scope=pending["scope"],
        redirect_uri=pending["redirect_uri"], redirect_uri_sent=pending.get("redirect_uri_sent", True),
        code_challenge=pending["code_challenge"])
    return await Grants(ctx.store).issue_code(grant)
