"""The registry's pages (GET): servers, a server's tools, my access, my OAuth clients.
Each is a context builder (views.py) rendered by one template, or JSON with ?format=json."""

from __future__ import annotations

import time
from typing import Any, Awaitable, Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from mcp_gateway.registry_views import may
from mcp_gateway.sessions import StoreUnavailable

from ..context import TEMPLATES
from ..pages import render
from . import views
from .viewer import Viewer, unavailable, viewer_or_answer

SCRIPT_CSP = ("default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; form-action 'self'; "
              "frame-ancestors 'none'; base-uri 'none'")


def page(request: Request, viewer: Viewer, template: str, data: dict[str, Any], *, title: str,
         status: int = 200, notice: str | None = None) -> Response:
    if request.query_params.get("format") == "json":
        return JSONResponse(data, status_code=status, headers={"cache-control": "no-store"})
    response = render(request, template, status, title=f"{title} · MCP Gateway", csrf_token=viewer.csrf,
                      notice=notice or _notice(request), error=request.query_params.get("error"),
                      current=request.url.path, **data)
    response.headers["content-security-policy"] = SCRIPT_CSP
    return response


def ago(epoch: float | None) -> str:
    """A server-rendered relative time, so the page reads right without script."""
    if not epoch:
        return "never"
    seconds = max(0, int(time.time() - float(epoch)))
    for size, unit in ((86400, "day"), (3600, "hour"), (60, "minute")):
        if seconds >= size:
            count = seconds // size
            return f"{count} {unit}{'' if count == 1 else 's'} ago"
    return "just now" if seconds < 5 else f"{seconds} seconds ago"


TEMPLATES.env.filters["ago"] = ago

_NOTICES = {"toggled": "The server's state was changed.", "saved": "The changes were saved.",
            "registered": "The server was registered.", "deleted": "The server was deleted.",
            "revoked": "The client's access was revoked; its tokens no longer work."}


def _notice(request: Request) -> str | None:
    return _NOTICES.get(request.query_params.get("done", ""))


def handler(build: Callable[[Request, Viewer], Awaitable[Response]]):
    async def endpoint(request: Request) -> Response:
        seen = await viewer_or_answer(request)
        if not isinstance(seen, Viewer):
            return seen
        try:
            return await build(request, seen)
        except StoreUnavailable:
            return unavailable(request)
    return endpoint


async def _servers(request: Request, viewer: Viewer) -> Response:
    return page(request, viewer, "registry/servers.html", await views.servers_page(viewer), title="Servers")


async def _server(request: Request, viewer: Viewer) -> Response:
    name = request.path_params["name"]
    server = viewer.ctx.registry.get(name)
    if server is None or not may(viewer.scopes, "read", name):
        # The same answer for unknown and unreadable: no enumeration of servers one may not read.
        return page(request, viewer, "registry/problem.html", {"heading": "No such server",
                    "message": f"There is no server named “{name}” that you may see."}, title="Not found", status=404)
    return page(request, viewer, "registry/server.html", await views.server_page(viewer, server), title=name)


async def _access(request: Request, viewer: Viewer) -> Response:
    return page(request, viewer, "registry/access.html", await views.access_page(viewer), title="My access")


async def _clients(request: Request, viewer: Viewer) -> Response:
    return page(request, viewer, "registry/clients.html", await views.clients_page(viewer), title="My OAuth clients")


servers_page = handler(_servers)
server_page = handler(_server)
access_page = handler(_access)
clients_page = handler(_clients)
