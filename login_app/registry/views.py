"""One context builder per registry page: a plain dict, rendered by a template or, with
`?format=json`, returned as JSON — the same data behind both (docs/registry-ui.md)."""

from __future__ import annotations

from typing import Any

from mcp_gateway.authz import decide_mcp_connect
from mcp_gateway.config import ServerConfig
from mcp_gateway.grant_index import GrantIndex
from mcp_gateway.oauth_clients import ClientRegistry
from mcp_gateway.registry_views import allowed_actions, endpoints, health_summary, may, tools_view, visible
from mcp_gateway.scopes import REGISTRY_ADMIN

from .viewer import Viewer

EDIT_FIELDS = ("description", "sse_path", "streamable_path")  # with mcp:server:{s}:edit
URL_FIELDS = ("url",)  # the admin; an editor where [gateway] editor_upstream_hosts lists hosts


def editable_fields(viewer: Viewer, server: str) -> tuple[str, ...]:
    """The fields the edit form offers. For an editor's `url` the value decides, as in the
    registry API (mcp_gateway/registry_fields.py): a host not on the list is refused on save."""
    if not may(viewer.scopes, "edit", server):
        return ()
    url_editable = REGISTRY_ADMIN in viewer.scopes or bool(viewer.ctx.config.editor_upstream_hosts)
    return EDIT_FIELDS + (URL_FIELDS if url_editable else ())


def _user(viewer: Viewer) -> dict[str, Any]:
    session = viewer.session
    return {"name": session.username, "email": session.email, "provider": session.provider}


async def _card(viewer: Viewer, server: ServerConfig) -> dict[str, Any]:
    health = await viewer.health.read(server.name)
    return {
        "name": server.name, "description": server.description, "enabled": server.enabled,
        "endpoints": endpoints(viewer.ctx.config.public_url, server.name),
        "health": health_summary(health),
        "may": allowed_actions(viewer.scopes, server.name),
        "editable": list(editable_fields(viewer, server.name)),
        "values": {"description": server.description, "sse_path": server.sse_path,
                   "streamable_path": server.streamable_path, "url": server.url},
    }


async def servers_page(viewer: Viewer) -> dict[str, Any]:
    servers = visible(viewer.scopes, viewer.ctx.registry.all())
    return {"user": _user(viewer), "servers": [await _card(viewer, s) for s in servers],
            "may_register": may(viewer.scopes, "register", None)}


async def server_page(viewer: Viewer, server: ServerConfig) -> dict[str, Any]:
    health = await viewer.health.read(server.name)
    return {"user": _user(viewer), "server": await _card(viewer, server),
            "tools": tools_view(viewer.scopes, server.name, health)}


async def access_page(viewer: Viewer) -> dict[str, Any]:
    """The same answer as `scripts/policy explain`: groups → scopes (with the rule that granted
    each) → what they allow on each server."""
    ctx, session = viewer.ctx, viewer.session
    ctx.policies.poll()
    grant = ctx.policies.current().scopes_for(session.groups, ctx.registry.names())
    sources = grant.sources
    scopes = [{"scope": scope, "granted_by": [str(source) for source in sources.get(scope, ())]
               or ["a scope of the session itself"]} for scope in sorted(viewer.scopes)]
    servers = []
    for server in ctx.registry.all():
        connect = decide_mcp_connect(viewer.scopes, server.name)
        health = await viewer.health.read(server.name)
        tools = tools_view(viewer.scopes, server.name, health)
        allowed = {"read entry": may(viewer.scopes, "read", server.name), "connect": connect.allowed,
                   **{k: v for k, v in allowed_actions(viewer.scopes, server.name).items() if k != "edit_url"}}
        if not any(allowed.values()):
            continue
        servers.append({"name": server.name, "allows": allowed,
                        "tools": [t["name"] for t in tools if t["may_call"]],
                        "tools_known": health is not None and health.ok})
    return {"user": _user(viewer), "groups": list(session.groups), "scopes": scopes,
            "unresolved": grant.unresolved, "servers": servers}


async def clients_page(viewer: Viewer) -> dict[str, Any]:
    session = viewer.session
    entries = await GrantIndex(viewer.ctx.store).entries(session.subject, session.provider)
    clients = ClientRegistry(viewer.ctx.store)
    shown = []
    for family, entry in sorted(entries.items(), key=lambda item: -item[1]["last_used"]):
        client = await clients.get(entry["client_id"])
        shown.append({"id": family, "client_id": entry["client_id"],
                      "name": client.display_name if client else entry["client_id"],
                      "scope": entry.get("scope") or "", "resources": entry.get("resources", []),
                      "granted_at": entry["granted_at"], "last_used": entry["last_used"],
                      "expires_at": entry["expires_at"]})
    return {"user": _user(viewer), "clients": shown}
