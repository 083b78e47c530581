"""Mapping between the gateway's public paths and a server's upstream paths."""

from __future__ import annotations

from urllib.parse import urlsplit

from .config import ServerConfig
from .routing import Area, Route, RouteError, check_path


def upstream_target(server: ServerConfig, route: Route) -> str:
    """The path (and query) to request on the upstream for a routed MCP request."""
    if route.area is Area.STREAMABLE:
        path = server.streamable_path
    elif route.rest in ("", "/", "/sse"):
        path = server.sse_path
    else:
        path = route.rest
    target = server.base_path + path
    return f"{target}?{route.query}" if route.query else target


def public_endpoint(server: ServerConfig, endpoint: str) -> str:
    """Rewrite the SSE `endpoint` event's URL so clients keep posting through the gateway.

    The upstream names a path on itself (`/messages/?session_id=…`), possibly as an
    absolute URL. Anything that points outside the upstream is refused: passing it on
    would send the client's messages around the gateway.
    """
    parts = urlsplit(endpoint.strip())
    if parts.scheme or parts.netloc:
        if (parts.scheme, parts.netloc) != (server.scheme, server.host_header):
            raise RouteError(502, "upstream endpoint event points to another origin")
    path = parts.path
    if not path.startswith("/"):
        raise RouteError(502, "upstream endpoint event is not an absolute path")
    if server.base_path and not path.startswith(server.base_path + "/"):
        raise RouteError(502, "upstream endpoint event is outside the server's base path")
    relative = path[len(server.base_path):]
    check_path(relative + (f"?{parts.query}" if parts.query else ""))
    public = f"/api/execute/{server.name}{relative}"
    return f"{public}?{parts.query}" if parts.query else public


def session_id_from_query(query: str) -> str | None:
    for pair in query.split("&"):
        name, _, value = pair.partition("=")
        if name == "session_id" and value:
            return value
    return None
