"""The authorization-server facade for MCP clients (docs/mcp-clients.md): metadata (RFC 8414), dynamic
client registration (RFC 7591), authorization with per-client consent, the token endpoint
(authorization code + PKCE, refresh with rotation) and revocation (RFC 7009).

`FACADE_ROUTES` goes into the login app's routing table.
"""

from __future__ import annotations

from starlette.routing import Route

from .authorize import authorize, decide
from .metadata import (
    AUTHORIZE_PATH,
    REGISTER_PATH,
    REVOKE_PATH,
    TOKEN_PATH,
    authorization_server_metadata_endpoint,
)
from .registration import register
from .revoke import revoke
from .token import token

FACADE_ROUTES = [
    Route("/.well-known/oauth-authorization-server", authorization_server_metadata_endpoint, methods=["GET"]),
    Route(AUTHORIZE_PATH, authorize, methods=["GET"]),
    Route(AUTHORIZE_PATH, decide, methods=["POST"]),
    Route(REGISTER_PATH, register, methods=["POST"]),
    Route(TOKEN_PATH, token, methods=["POST"]),
    Route(REVOKE_PATH, revoke, methods=["POST"]),
]
