"""The gateway's protected resources (RFC 8707, RFC 9728) and its issuer.

Each server is two resources, one per transport: `<public_url>/api/execute/{s}` (SSE) and
`<public_url>/api/streamable/{s}`. Their metadata lives at
`<public_url>/.well-known/oauth-protected-resource/api/{transport}/{s}`. The authorization
server facade's issuer is the public URL itself, spelled exactly as configured: clients
compare issuer strings character for character.

The rest of `/api` (the registry API) belongs to the gateway as a whole: the resource
`<public_url>` (the origin), whose metadata lives at the root
`<public_url>/.well-known/oauth-protected-resource`. The facade issues no token for it (a
token is bound to one server's resources), so that metadata names no authorization server:
the registry API takes a browser session or a bearer JWT of the configured IdP.
"""

from __future__ import annotations

from collections.abc import Iterable

from .config_schema import SERVER_NAME
from .scopes import REGISTRY_ADMIN, REGISTRY_READ, server_scope

TRANSPORTS = ("execute", "streamable")
METADATA_PREFIX = "/.well-known/oauth-protected-resource"


def issuer_of(public_url: str) -> str:
    return public_url.rstrip("/")


def resource_url(public_url: str, transport: str, server: str) -> str:
    return f"{issuer_of(public_url)}/api/{transport}/{server}"


def resource_metadata_url(public_url: str, transport: str, server: str) -> str:
    return f"{issuer_of(public_url)}{METADATA_PREFIX}/api/{transport}/{server}"


def parse_resource(public_url: str, resource: str) -> tuple[str, str] | None:
    """`(transport, server)` when `resource` is exactly one of this gateway's resource URLs."""
    prefix = f"{issuer_of(public_url)}/api/"
    if not resource.startswith(prefix):
        return None
    transport, _, server = resource[len(prefix):].partition("/")
    if transport not in TRANSPORTS or not SERVER_NAME.fullmatch(server):
        return None
    return transport, server


def servers_of(public_url: str, resources: Iterable[str]) -> list[str]:
    """The servers some resource URLs name, sorted; URLs that are not resources here are skipped."""
    return sorted({parsed[1] for resource in resources if (parsed := parse_resource(public_url, resource))})


def resource_scopes(server: str) -> list[str]:
    """The scopes that let a client use a server's resource (advertised in its metadata)."""
    return [server_scope(server, "read"), server_scope(server, "execute")]


def protected_resource_metadata(public_url: str, transport: str, server: str) -> dict[str, object]:
    """RFC 9728 metadata of one server's resource; the facade is its authorization server."""
    return {
        "resource": resource_url(public_url, transport, server),
        "authorization_servers": [issuer_of(public_url)],
        "scopes_supported": resource_scopes(server),
        "bearer_methods_supported": ["header"],
        "resource_name": f"MCP server {server} ({'SSE' if transport == 'execute' else 'Streamable HTTP'})",
    }


def gateway_resource_metadata(public_url: str) -> dict[str, object]:
    """RFC 9728 metadata of the gateway's origin, the resource of every /api path that is not a server's."""
    return {
        "resource": issuer_of(public_url),
        "scopes_supported": [REGISTRY_READ, REGISTRY_ADMIN],
        "bearer_methods_supported": ["header"],
        "resource_name": "MCP Gateway registry API",
    }


def scopes_for_servers(scopes: Iterable[str], servers: Iterable[str]) -> list[str]:
    """Of the scopes a person holds, those that concern `servers` (what a token for them can use)."""
    prefixes = tuple(f"mcp:server:{server}:" for server in servers)
    return sorted(scope for scope in scopes if scope == REGISTRY_ADMIN or scope.startswith(prefixes))
