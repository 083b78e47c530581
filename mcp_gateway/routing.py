"""Which part of the gateway a request path belongs to, decided on the raw path.

The path is checked before anything else looks at it. Rather than decode and hope every
hop decodes alike, anything that could be read two ways — encoded separators or dots,
backslashes, empty or dot segments, parameters, control or non-ASCII characters — is
refused, so a decision made for server `a` can never be applied to a request that some
upstream reads as server `b`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

from .config_schema import SERVER_NAME


# The SSE stream's public paths: /api/execute/{s}, /api/execute/{s}/ and /api/execute/{s}/sse.
SSE_STREAM_RESTS = ("", "/", "/sse")
STREAMABLE_METHODS = ("POST", "GET", "DELETE")


class Area(Enum):
    SSE = "execute"            # /api/execute/{s}[/...]
    STREAMABLE = "streamable"  # /api/streamable/{s}
    REGISTRY = "registry"      # /api/servers[/{s}[/toggle]]
    LOGIN = "login"            # /oauth/*, authorization-server metadata, / and /registry/* pages: the login app
    RESOURCE_METADATA = "resource-metadata"  # /.well-known/oauth-protected-resource/api/{transport}/{s}
    HEALTH = "health"          # /healthz
    API_OTHER = "api-other"    # any other /api/* path: authenticated like the rest, then 404


@dataclass(frozen=True)
class Route:
    area: Area
    server: str | None = None
    rest: str = ""     # the path after /api/{transport}/{s}, "" when none
    query: str = ""    # the raw query string, without "?"
    action: str = ""   # registry: "collection", "entry", "toggle" or "tools"

    @property
    def is_mcp(self) -> bool:
        return self.area in (Area.SSE, Area.STREAMABLE)

    @property
    def is_sse_stream(self) -> bool:
        return self.area is Area.SSE and self.rest in SSE_STREAM_RESTS


def method_problem(found: Route, method: str) -> tuple[int, str] | None:
    """The routes each MCP transport has (docs/data-plane.md, "Routes under each transport").

    Under /api/execute/{s} only two things are routed: GET of the SSE stream (other methods
    there: 405), and POST to a path below it, which must further be the message endpoint the
    stream announced (checked against the session's record in addons/session_binding.py). Any
    other method on any other path there is 404, so no other endpoint of the upstream is
    reachable around the checks.
    """
    if found.area is Area.SSE:
        if found.is_sse_stream and method != "GET":
            return 405, f"{method} is not accepted on the SSE stream; open it with GET"
        if not found.is_sse_stream and method != "POST":
            return 404, (f"no such path on this gateway: under /api/execute/{found.server} only GET of the SSE "
                         "stream and POST to the message endpoint it announced are routed")
    elif found.area is Area.STREAMABLE and method not in STREAMABLE_METHODS:
        return 405, f"{method} is not an MCP method; use POST, GET or DELETE"
    return None


class RouteError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


_ALLOWED_PATH = re.compile(r"^[A-Za-z0-9\-._~!$&'()*+,=:@/%]*$")
_ENCODED_TRICK = re.compile(r"%(2e|2f|5c|25|00|3b|23|3f)", re.IGNORECASE)
_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
MAX_PATH_LENGTH = 4096


def check_path(path: str) -> tuple[str, str]:
    """Split a raw request target into (path, query) after refusing ambiguous forms."""
    if len(path) > MAX_PATH_LENGTH:
        raise RouteError(414, "request path too long")
    raw_path, _, query = path.partition("?")
    if not raw_path.startswith("/"):
        raise RouteError(400, "request target must be an absolute path")
    if not _ALLOWED_PATH.match(raw_path):
        raise RouteError(400, "request path contains characters that are not allowed (\\, ;, spaces, controls or non-ASCII)")
    if _PERCENT.search(raw_path) or _ENCODED_TRICK.search(raw_path):
        raise RouteError(400, "request path contains an encoded separator, dot or percent sign")
    segments = raw_path.split("/")[1:]
    if any(s in (".", "..") for s in segments):
        raise RouteError(400, "request path contains a dot segment")
    if any(s == "" for s in segments[:-1]):
        raise RouteError(400, "request path contains an empty segment (//)")
    if any(c in query for c in "\r\n\t \\#") or any(ord(c) < 0x20 or ord(c) > 0x7e for c in query):
        raise RouteError(400, "query string contains characters that are not allowed")
    return raw_path, query


def route(target: str) -> Route | None:
    """The route for a raw request target, None when nothing in the gateway serves it."""
    path, query = check_path(target)
    segments = path.split("/")[1:]
    head = segments[0]
    if head == "api":
        return _api_route(segments[1:], query)
    if head == "oauth" or path == "/.well-known/oauth-authorization-server" or path.startswith(
        "/.well-known/oauth-authorization-server/"
    ) or path == "/.well-known/openid-configuration" or path == "/" or head == "registry":
        return Route(Area.LOGIN, query=query)
    if path.startswith("/.well-known/oauth-protected-resource"):
        return _resource_metadata_route(segments[2:], query)
    if path == "/healthz":
        return Route(Area.HEALTH)
    return None


def _server_name(segment: str) -> str:
    if not SERVER_NAME.fullmatch(segment):
        raise RouteError(400, "server name must be 1-64 characters of [a-z0-9_-]")
    return segment


def _api_route(segments: list[str], query: str) -> Route:
    if not segments or segments == [""]:
        return Route(Area.API_OTHER, query=query)
    kind, rest_segments = segments[0], segments[1:]
    if kind in ("execute", "streamable"):
        if not rest_segments or rest_segments[0] == "":
            raise RouteError(404, f"no server named in /api/{kind}/{{server}}")
        server = _server_name(rest_segments[0])
        rest = "/" + "/".join(rest_segments[1:]) if len(rest_segments) > 1 else ""
        area = Area.SSE if kind == "execute" else Area.STREAMABLE
        if area is Area.STREAMABLE and rest not in ("", "/"):
            raise RouteError(404, f"/api/streamable/{server} has no sub-paths")
        return Route(area, server=server, rest=rest, query=query)
    if kind == "servers":
        if not rest_segments or rest_segments == [""]:
            return Route(Area.REGISTRY, query=query, action="collection")
        server = _server_name(rest_segments[0])
        tail = rest_segments[1:]
        if not tail or tail == [""]:
            return Route(Area.REGISTRY, server=server, query=query, action="entry")
        if tail in (["toggle"], ["toggle", ""]):
            return Route(Area.REGISTRY, server=server, query=query, action="toggle")
        if tail in (["tools"], ["tools", ""]):
            return Route(Area.REGISTRY, server=server, query=query, action="tools")
        raise RouteError(404, "no such registry path")
    if kind == "connections" and len(rest_segments) <= 1:
        # Per-user upstream connections (addons/upstream_connections_api.py): identified like all of /api/*.
        server = _server_name(rest_segments[0]) if rest_segments and rest_segments[0] else None
        return Route(Area.API_OTHER, server=server, query=query, action="connections")
    return Route(Area.API_OTHER, query=query)


def _resource_metadata_route(segments: list[str], query: str) -> Route:
    # /.well-known/oauth-protected-resource/api/{execute|streamable}/{s}
    if len(segments) >= 3 and segments[0] == "api" and segments[1] in ("execute", "streamable"):
        return Route(Area.RESOURCE_METADATA, server=_server_name(segments[2]),
                     rest=segments[1], query=query)
    return Route(Area.RESOURCE_METADATA, query=query)
