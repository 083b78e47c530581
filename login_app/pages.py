"""The HTML pages: login (provider choice and local form) and the signed-in page."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from mcp_gateway.redirects import safe_next
from mcp_gateway.sessions import StoreUnavailable

from .context import TEMPLATES, context, identity_of
from .cookies import current_session
from .origin import csrf_token

DEFAULT_LANDING = "/"  # the registry's servers page (login_app/registry)


def render(request: Request, template: str, status: int = 200, headers: dict[str, str] | None = None,
           **values) -> Response:
    values.setdefault("title", "MCP Gateway")
    response = TEMPLATES.TemplateResponse(request, template, values, status_code=status, headers=headers)
    response.headers["cache-control"] = "no-store"
    response.headers["x-frame-options"] = "DENY"
    response.headers["content-security-policy"] = (
        "default-src 'none'; style-src 'self' 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'")
    # "same-origin", not "no-referrer": under no-referrer Chromium posts forms with
    # `Origin: null`, which the cross-site check must refuse.
    response.headers["referrer-policy"] = "same-origin"
    return response


def render_login(request: Request, status: int = 200, *, error: str | None = None, next_path: str = DEFAULT_LANDING,
                 headers: dict[str, str] | None = None) -> Response:
    ctx = context(request)
    return render(request, "login.html", status, headers, error=error, next_path=next_path,
                  providers=list(ctx.providers.values()), local_enabled=bool(ctx.accounts))


async def login_page(request: Request) -> Response:
    ctx = context(request)
    next_path = safe_next(request.query_params.get("next"), DEFAULT_LANDING)
    if len(ctx.providers) == 1 and not ctx.accounts:
        provider = next(iter(ctx.providers.values()))
        return RedirectResponse(f"/oauth/login/{provider.name}?next={_quote(next_path)}", status_code=302)
    return render_login(request, next_path=next_path)


async def signed_in_page(request: Request) -> Response:
    ctx = context(request)
    try:
        session = await current_session(request, ctx.store)
    except StoreUnavailable:
        return render(request, "message.html", 503, heading="Unavailable",
                      message="The session store is unavailable. Try again shortly.")
    if session is None:
        return RedirectResponse("/oauth/login?next=/oauth/session", status_code=302)
    identity = identity_of(session)
    return render(request, "signed_in.html", user=identity.username, email=session.email,
                  provider=identity.provider, groups=identity.groups,
                  scopes=ctx.scopes_for(identity.groups, identity.direct_scopes),
                  csrf_token=csrf_token(ctx.config, session.id))


def _quote(path: str) -> str:
    from urllib.parse import quote
    return quote(path, safe="/")
