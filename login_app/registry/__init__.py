"""The registry in a browser: pages and their form posts, served by the login app under the
gateway's origin (the proxy forwards `/` and `/registry/*` to it). docs/registry-ui.md."""

from __future__ import annotations

from pathlib import Path

from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from . import actions, pages

STATIC = Path(__file__).resolve().parent.parent / "static"

REGISTRY_ROUTES = [
    Route("/", pages.servers_page, methods=["GET"]),
    Route("/registry/servers", actions.register, methods=["POST"]),
    Route("/registry/servers/{name}", pages.server_page, methods=["GET"]),
    Route("/registry/servers/{name}/toggle", actions.toggle, methods=["POST"]),
    Route("/registry/servers/{name}/edit", actions.edit, methods=["POST"]),
    Route("/registry/servers/{name}/delete", actions.delete, methods=["POST"]),
    Route("/registry/access", pages.access_page, methods=["GET"]),
    Route("/registry/clients", pages.clients_page, methods=["GET"]),
    Route("/registry/clients/{grant}/revoke", actions.revoke_client, methods=["POST"]),
    Mount("/registry/static", StaticFiles(directory=str(STATIC)), name="registry-static"),
]
