"""The registry pages' form posts: toggle, edit, register, delete, revoke a client.

Each runs the same checks as the registry API — a same-origin `Origin` or the session's CSRF
token (login_app/origin.py), then mcp_gateway.authz.decide_registry — and answers a person
with a 303 back to the page (the result in the query) and a script with JSON."""

from __future__ import annotations

import asyncio
import logging
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from mcp_gateway.authz import decide_registry
from mcp_gateway.registry_fields import decide_edit, origin_of
from mcp_gateway.grant_index import GrantIndex
from mcp_gateway.oauth_grants import Grants
from mcp_gateway.registry import RegistryError
from mcp_gateway.scopes import is_server_name
from mcp_gateway.sessions import StoreUnavailable

from ..context import client_address
from ..origin import same_origin_or_token
from ..session_api import json_error
from .viewer import Viewer, unavailable, viewer_or_answer
from .views import editable_fields

log = logging.getLogger(__name__)

MAX_FIELD = 2000


def _back(to: str, *, done: str | None = None, error: str | None = None) -> Response:
    query = f"done={done}" if done else f"error={quote(error or '', safe='')}"
    return RedirectResponse(f"{to}?{query}", status_code=303)


def action(name: str):
    def wrap(perform):
        async def endpoint(request: Request) -> Response:
            seen = await viewer_or_answer(request)
            if not isinstance(seen, Viewer):
                return json_error(401, "unauthenticated", "sign in first") if request.method == "POST" else seen
            form = await request.form()
            if not same_origin_or_token(request, seen.ctx.config, seen.session.id, str(form.get("csrf_token") or "")):
                log.warning("auth: registry page %s refused: cross-site request (client %s)", name,
                            client_address(request))
                return json_error(403, "forbidden", "cross-site request refused: send a same-origin Origin or the "
                                                    "csrf_token of the page")
            try:
                return await perform(request, seen, form)
            except StoreUnavailable:
                return unavailable(request)
        return endpoint
    return wrap


def _allowed(viewer: Viewer, what: str, server: str | None) -> str | None:
    """None when allowed, else the missing scope (logged like the API's refusals)."""
    decision = decide_registry(viewer.scopes, what, server)  # type: ignore[arg-type]
    if decision.allowed:
        return None
    log.warning("access refused: registry page %s %s by %s: missing %s", what, server or "",
                viewer.session.username, decision.scope)
    return decision.scope


def _refused(scope: str) -> Response:
    return json_error(403, "forbidden", f"this needs {scope}")


def _server_name(request: Request) -> str:
    """The server named in the path, or "" for a name no server can have (upper case, dots, ...)."""
    name = request.path_params["name"]
    return name if is_server_name(name) else ""


def _no_such_server() -> Response:
    # No server can have this name: nothing to enumerate, so 404 before any scope check.
    return json_error(404, "not_found", "no server has that name (1-64 characters of a-z, 0-9, _ and -)")


def _target(request: Request, viewer: Viewer, what: str) -> tuple[str, Response | None]:
    """The server a form post names, or the answer refusing the post: 404 for a name no server
    can have (before any scope check: nothing to enumerate), 403 without the scope for `what`."""
    name = _server_name(request)
    if not name:
        return name, _no_such_server()
    if missing := _allowed(viewer, what, name):
        return name, _refused(missing)
    return name, None


@action("toggle")
async def toggle(request: Request, viewer: Viewer, form) -> Response:
    name, refusal = _target(request, viewer, "toggle")
    if refusal is not None:
        return refusal
    server = viewer.ctx.registry.get(name)
    if server is None:
        return json_error(404, "not_found", f"unknown server {name!r}")
    wanted = form.getlist("enabled")
    if wanted and wanted not in (["true"], ["false"]):
        # Absent means flip; anything else but one "true" or "false" is refused, never guessed at.
        return json_error(400, "bad_request", 'enabled: send "true" or "false" once (or leave it out to flip)')
    enabled = (wanted[0] == "true") if wanted else not server.enabled
    await asyncio.to_thread(viewer.ctx.registry.set_enabled, name, enabled)
    log.info("registry: server %s %s by %s (page)", name, "enabled" if enabled else "disabled", viewer.session.username)
    return _back(_return_to(form), done="toggled")


@action("edit")
async def edit(request: Request, viewer: Viewer, form) -> Response:
    name, refusal = _target(request, viewer, "edit")
    if refusal is not None:
        return refusal
    allowed = editable_fields(viewer, name)
    if problem := _ambiguous(form):
        return json_error(400, "bad_request", problem)
    sent = {key: str(form[key]).strip() for key in form if key not in ("csrf_token", "return_to")}
    if extra := sorted(set(sent) - set(allowed)):
        return json_error(403, "forbidden", f"your scopes do not let you change: {', '.join(extra)}")
    if any(len(value) > MAX_FIELD for value in sent.values()):
        return json_error(400, "bad_request", f"a field is longer than {MAX_FIELD} characters")
    # The same field-by-scope rule as the registry API (mcp_gateway/registry_fields.py, docs/registry.md).
    others = [o for s in viewer.ctx.registry.all() if s.name != name and (o := origin_of(s.url))]
    decision = decide_edit(viewer.scopes, name, sent, viewer.ctx.config.editor_upstream_hosts, others)
    if not decision.allowed:
        return _refused(decision.scope)
    to = f"/registry/servers/{name}"
    try:
        await asyncio.to_thread(viewer.ctx.registry.edit, name, sent)
    except RegistryError as e:
        return _back(to, error=e.message) if e.status == 400 else json_error(e.status, "refused", e.message)
    log.info("registry: server %s edited by %s (page: %s)", name, viewer.session.username, ", ".join(sorted(sent)))
    return _back(to, done="saved")


@action("delete")
async def delete(request: Request, viewer: Viewer, form) -> Response:
    name, refusal = _target(request, viewer, "delete")
    if refusal is not None:
        return refusal
    try:
        await asyncio.to_thread(viewer.ctx.registry.delete, name)
    except RegistryError as e:
        return json_error(e.status, "refused", e.message)
    log.info("registry: server %s deleted by %s (page)", name, viewer.session.username)
    return _back("/", done="deleted")


@action("register")
async def register(request: Request, viewer: Viewer, form) -> Response:
    if missing := _allowed(viewer, "register", None):
        return _refused(missing)
    if problem := _ambiguous(form):
        return json_error(400, "bad_request", problem)
    fields = {key: str(form.get(key) or "").strip() for key in ("name", "url", "description")}
    fields = {k: v for k, v in fields.items() if v}
    try:
        server = await asyncio.to_thread(viewer.ctx.registry.register, fields)
    except RegistryError as e:
        return _back("/", error=e.message) if e.status in (400, 409) else json_error(e.status, "refused", e.message)
    log.info("registry: server %s registered by %s (page)", server.name, viewer.session.username)
    return _back("/", done="registered")


@action("revoke")
async def revoke_client(request: Request, viewer: Viewer, form) -> Response:
    family = request.path_params["grant"]
    session = viewer.session
    # Only a grant listed under this person is found: another person's id changes nothing.
    if not await GrantIndex(viewer.ctx.store).forget(session.subject, session.provider, family):
        return json_error(404, "not_found", "no such authorized client")
    await Grants(viewer.ctx.store).revoke_family(family)
    log.info("auth: OAuth client access revoked by %s (grant %.8s)", session.username, family)
    return _back("/registry/clients", done="revoked")


def _ambiguous(form) -> str | None:
    """Like the registry API's JSON (no duplicate keys, strict types): a field sent twice or as a
    file upload is refused, never resolved by picking one."""
    keys = [key for key, _ in form.multi_items()]
    if twice := sorted({key for key in keys if keys.count(key) > 1}):
        return f"each field once: {', '.join(twice)[:200]} sent more than once"
    if any(not isinstance(value, str) for _, value in form.multi_items()):
        return "fields are text, not files"
    return None


def _return_to(form) -> str:
    target = str(form.get("return_to") or "/")
    return target if target == "/" or (target.startswith("/registry/servers/") and is_server_name(target[18:])) else "/"
