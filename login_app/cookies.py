"""The session cookie `mcp_gateway_session`, as docs/architecture.md, "Identity", describes it."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from mcp_gateway.config import GatewayConfig
from mcp_gateway.identity import SESSION_COOKIE, session_cookie_values
from mcp_gateway.sessions import Session, SessionStore


def set_session_cookie(response: Response, config: GatewayConfig, token: str) -> None:
    response.set_cookie(
        SESSION_COOKIE, token, max_age=int(config.session.lifetime), path="/",
        httponly=True, samesite="lax", secure=config.secure_cookies,
    )


def clear_session_cookie(response: Response, config: GatewayConfig) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax", secure=config.secure_cookies)


def session_token(request: Request) -> str | None:
    """The cookie's token; None when absent or sent more than once (ambiguous: refuse)."""
    values = session_cookie_values(request.headers.getlist("cookie"))
    return values[0] if len(values) == 1 and values[0] else None


async def current_session(request: Request, store: SessionStore) -> Session | None:
    """The caller's live browser session, or None. Raises StoreUnavailable when the store cannot answer.

    An access token the facade issued is a session of the same store, but only for the resource(s)
    it names: sent as this cookie it is nobody's browser session (no identity page, no consent, no
    upstream account linking, no logout of anyone)."""
    token = session_token(request)
    session = await store.get(token) if token else None
    return session if session is not None and session.kind == "browser" else None
