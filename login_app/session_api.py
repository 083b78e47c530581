"""GET /oauth/me and POST /oauth/logout.

Logout ends the browser session and every OAuth grant made through consent in it: the
access and refresh tokens the facade issued to MCP clients that way stop working at once
(mcp_gateway/oauth_grants.py). Grants made in other browser sessions are untouched.
"""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from mcp_gateway.oauth_grants import Grants
from mcp_gateway.redirects import safe_next
from mcp_gateway.sessions import StoreUnavailable

from .context import client_address, context, identity_of
from .cookies import clear_session_cookie, current_session, session_token
from .origin import same_origin_or_token

log = logging.getLogger(__name__)


def json_error(status: int, error: str, message: str) -> JSONResponse:
    return JSONResponse({"error": error, "message": message, "status": status}, status_code=status,
                        headers={"cache-control": "no-store"})


async def me(request: Request) -> Response:
    ctx = context(request)
    try:
        session = await current_session(request, ctx.store)
    except StoreUnavailable:
        return json_error(503, "unavailable", "the session store is unavailable")
    if session is None:
        return json_error(401, "unauthenticated", "not signed in")
    identity = identity_of(session)
    return JSONResponse({
        "user": identity.username,
        "subject": identity.subject,
        "email": session.email,
        "provider": identity.provider,
        "groups": list(identity.groups),
        "scopes": ctx.scopes_for(identity.groups, identity.direct_scopes),
        "expires_at": int(session.expires_at),
    }, headers={"cache-control": "no-store"})


async def logout(request: Request) -> Response:
    ctx = context(request)
    token = session_token(request)
    form = await request.form() if "form" in request.headers.get("content-type", "") else {}
    try:
        session = await current_session(request, ctx.store)
        if not same_origin_or_token(request, ctx.config, session.id if session else None,
                                    str(form.get("csrf_token") or "") or None):
            log.warning("auth: logout refused: cross-site request (client %s)", client_address(request))
            return json_error(403, "forbidden", "cross-site logout refused: send a same-origin Origin or the "
                                                "csrf_token of the signed-in page")
        if session is not None and token is not None:
            await ctx.store.delete(token)
            revoked = await Grants(ctx.store).revoke_browser_session(session.id)
            log.info("auth: logout user=%s session=%s, %d OAuth grant(s) revoked", session.username,
                     session.id[:12], revoked)
            await _revoke_at_idp(request, session)
    except StoreUnavailable:
        return json_error(503, "unavailable", "the session store is unavailable; you are not signed out")
    wants_page = "text/html" in request.headers.get("accept", "")
    response: Response
    if wants_page:
        response = RedirectResponse(safe_next(str(form.get("next") or ""), "/oauth/login"), status_code=303)
    else:
        response = JSONResponse({"signed_out": True}, headers={"cache-control": "no-store"})
    clear_session_cookie(response, ctx.config)
    return response


async def _revoke_at_idp(request: Request, session) -> None:
    provider = context(request).providers.get(session.provider)
    revoke = getattr(provider, "revoke", None)
    if revoke is not None and session.refresh_token:
        try:
            await revoke(session.refresh_token)
        except Exception as e:  # revocation is best effort: the session is already gone
            log.warning("auth: refresh token revocation at %s failed: %s", session.provider, type(e).__name__)
