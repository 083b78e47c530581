"""Mapping between the gateway's public paths and a server's upstream paths."""

from __future__ import annotations

import re
import uuid
from urllib.parse import unquote_plus, urlsplit

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


# The SSE session parameter of the Python SDK (`session_id`) and of the TypeScript SDK (`sessionId`).
SESSION_PARAMETERS = ("session_id", "sessionId")
_SESSION_VALUE = re.compile(r"[A-Za-z0-9-]{1,128}")


def session_id_from_query(query: str) -> str | None:
    """The SSE session a messages URL names, canonical; None when it names none.

    Upstreams read the query their own way: percent-decoded names, the last of repeated
    parameters (Starlette), `name[]` as an array (Express), and the Python SDK parses the
    value with `UUID(hex=...)`, which ignores case, dashes, braces and a `urn:uuid:` prefix.
    A query two readers could take for different sessions raises RouteError (400); the value
    is canonicalised, so every spelling of one session binds to one owner.
    """
    values = []
    for pair in query.split("&"):
        raw_name, _, value = pair.partition("=")
        name = unquote_plus(raw_name)
        if name.split("[", 1)[0] not in SESSION_PARAMETERS:
            continue
        if name != raw_name or name not in SESSION_PARAMETERS:
            raise RouteError(400, "the session id parameter must not be encoded or indexed")
        values.append(value)
    if not values:
        return None
    if len(values) > 1:
        raise RouteError(400, "more than one session id parameter")
    if not _SESSION_VALUE.fullmatch(values[0]):
        raise RouteError(400, "a session id is 1-128 letters, digits or dashes")
    return canonical_session_id(values[0])


def canonical_session_id(value: str) -> str:
    try:
        return uuid.UUID(hex=value).hex
    except ValueError:
        return value
