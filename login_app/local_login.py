"""POST /oauth/login/local — username and password of a local account."""

from __future__ import annotations

import asyncio
import logging

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from mcp_gateway.redirects import safe_next
from mcp_gateway.sessions import StoreUnavailable

from .context import client_address, context, throttled_address
from .cookies import set_session_cookie
from .origin import foreign_origin
from .pages import DEFAULT_LANDING, render_login

log = logging.getLogger(__name__)

FAILURE_WINDOW = 300.0
MAX_FAILURES_PER_USER = 5
MAX_FAILURES_PER_ADDRESS = 20


async def local_login(request: Request) -> Response:
    ctx = context(request)
    form = await request.form()
    username = str(form.get("username") or "")[:256]
    password = str(form.get("password") or "")[:1024]
    next_path = safe_next(str(form.get("next") or ""), DEFAULT_LANDING)
    address = client_address(request)
    if foreign_origin(request, ctx.config):
        log.warning("auth: local login refused: cross-site form post (client %s)", address)
        return render_login(request, 403, error="This login form was posted from another site.", next_path=next_path)
    if not ctx.accounts:
        return render_login(request, 404, error="Local accounts are not enabled on this gateway.", next_path=next_path)
    if not username or not password:
        return render_login(request, 400, error="Enter a username and a password.", next_path=next_path)

    # Every attempt is counted before its password is checked, per username and per client
    # address, in one atomic step of the store: concurrent guesses cannot all pass the check
    # before the first failure is counted. A success takes its attempt back (the username's
    # count starts over, the address keeps only its failures). Past a limit, that username
    # (or address) waits out the window.
    user_key, address_key = f"login-fail:user:{username}", f"login-fail:addr:{throttled_address(address)}"
    try:
        limits = {user_key: MAX_FAILURES_PER_USER, address_key: MAX_FAILURES_PER_ADDRESS}
        if not await ctx.store.admit(limits, FAILURE_WINDOW):
            log.warning("auth: local login throttled for user=%s client=%s", username, address)
            return render_login(request, 429, error="Too many failed logins. Wait a few minutes and try again.",
                                next_path=next_path, headers={"retry-after": str(int(FAILURE_WINDOW))})
        user = await asyncio.to_thread(ctx.accounts.verify, username, password)  # scrypt: keep the loop free
        if user is None:
            log.warning("auth: local login failed for user=%s client=%s", username, address)
            return render_login(request, 401, error="Wrong username or password.", next_path=next_path)
        await ctx.store.reset_hits(user_key)
        await ctx.store.release(address_key)
        token, session = await ctx.store.create(subject=user.username, username=user.username, provider="local",
                                                groups=user.groups)
    except StoreUnavailable:
        log.error("auth: session store unavailable during local login")
        return render_login(request, 503, error="Sign-in is unavailable right now. Try again shortly.",
                            next_path=next_path)
    log.info("auth: local login user=%s groups=%s session=%s client=%s", user.username, ",".join(user.groups),
             session.id[:12], address)
    response = RedirectResponse(next_path, status_code=303)
    set_session_cookie(response, ctx.config, token)
    return response

