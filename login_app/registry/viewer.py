"""Who is looking: the signed-in session, their scopes by the policy in force, and the CSRF
token their forms carry. Every registry page and action starts here."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from mcp_gateway.health import HealthBoard
from mcp_gateway.sessions import Session, StoreUnavailable

from ..context import LoginContext, context
from ..cookies import current_session
from ..origin import csrf_token
from ..pages import render


@dataclass(frozen=True)
class Viewer:
    ctx: LoginContext
    session: Session
    scopes: frozenset[str]

    @property
    def csrf(self) -> str:
        return csrf_token(self.ctx.config, self.session.id)

    @property
    def health(self) -> HealthBoard:
        return HealthBoard(self.ctx.store)


async def viewer_or_answer(request: Request) -> Viewer | Response:
    """The viewer, or the answer to give instead: a 302 to the login page, or a designed 503."""
    ctx = context(request)
    try:
        session = await current_session(request, ctx.store)
    except StoreUnavailable:
        return unavailable(request)
    if session is None or session.kind != "browser":
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/oauth/login?next={quote(target, safe='/')}", status_code=302)
    scopes = frozenset(ctx.scopes_for(session.groups, session.scopes))
    return Viewer(ctx, session, scopes)


def unavailable(request: Request) -> Response:
    return render(request, "registry/problem.html", 503, heading="Temporarily unavailable",
                  message="The session store did not answer, so we cannot tell who you are. "
                          "Nothing was changed. Try again in a moment.", title="Unavailable · MCP Gateway")
