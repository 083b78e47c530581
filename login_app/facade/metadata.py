"""GET /.well-known/oauth-authorization-server — the facade's metadata (RFC 8414).

The issuer is the gateway's public URL exactly as configured: the same string appears in
every server's protected-resource metadata and as `iss` in each authorization response
(RFC 9207), and clients compare them character for character.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from mcp_gateway.resources import issuer_of

from ..context import context
from .clients import AUTH_METHODS

AUTHORIZE_PATH = "/oauth/authorize"
TOKEN_PATH = "/oauth/token"
REGISTER_PATH = "/oauth/register"
REVOKE_PATH = "/oauth/revoke"


def authorization_server_metadata(public_url: str) -> dict[str, object]:
    issuer = issuer_of(public_url)
    return {
        "issuer": issuer,
        "authorization_endpoint": issuer + AUTHORIZE_PATH,
        "token_endpoint": issuer + TOKEN_PATH,
        "registration_endpoint": issuer + REGISTER_PATH,
        "revocation_endpoint": issuer + REVOKE_PATH,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": list(AUTH_METHODS),
        "revocation_endpoint_auth_methods_supported": list(AUTH_METHODS),
        "authorization_response_iss_parameter_supported": True,
    }


async def authorization_server_metadata_endpoint(request: Request) -> Response:
    return JSONResponse(authorization_server_metadata(context(request).config.public_url),
                        headers={"cache-control": "public, max-age=300"})
