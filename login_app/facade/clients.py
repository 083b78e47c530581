"""Who is calling the token and revocation endpoints: a registered client, authenticated the way
it registered — `none` (public: its client_id only, PKCE protects the code), `client_secret_basic`
or `client_secret_post` (RFC 6749 §2.3.1)."""

from __future__ import annotations

import base64
import binascii
from urllib.parse import unquote

from starlette.datastructures import FormData
from starlette.requests import Request

from mcp_gateway.oauth_clients import AUTH_METHODS, ClientRegistry, OAuthClient
from mcp_gateway.oauth_errors import OAuthError

from ..context import context
from .oauth_http import single

__all__ = ["AUTH_METHODS", "authenticate_client", "client_registry"]


def client_registry(request: Request) -> ClientRegistry:
    return ClientRegistry(context(request).store)


def _refused(description: str, basic: bool) -> OAuthError:
    # RFC 6749 §5.2: 401, with a Basic challenge when the client tried Basic.
    challenge = {"www-authenticate": 'Basic realm="mcp-gateway"'} if basic else {}
    return OAuthError("invalid_client", description, 401, challenge)


def _basic_credentials(header: str) -> tuple[str, str]:
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise _refused("malformed Basic credentials", True) from None
    client_id, colon, secret = decoded.partition(":")
    if not colon:
        raise _refused("malformed Basic credentials", True)
    return unquote(client_id), unquote(secret)


async def authenticate_client(request: Request, form: FormData) -> OAuthClient:
    header = request.headers.get("authorization", "")
    basic = header[:6].lower() == "basic "
    form_id, form_secret = single(form, "client_id"), single(form, "client_secret")
    if basic:
        client_id, secret = _basic_credentials(header)
        if form_secret is not None or (form_id is not None and form_id != client_id):
            raise _refused("use one client authentication method", True)
        method = "client_secret_basic"
    elif header:
        raise _refused("unsupported Authorization scheme; use Basic or client_secret_post", False)
    else:
        if form_id is None:
            raise _refused("client_id is required", False)
        client_id, secret = form_id, form_secret
        method = "none" if form_secret is None else "client_secret_post"
    client = await client_registry(request).get(client_id)
    if client is None:
        raise _refused("unknown client_id; register the client again", basic)
    if client.token_endpoint_auth_method != method:
        raise _refused(f"this client authenticates with {client.token_endpoint_auth_method}", basic)
    if method != "none" and not client.secret_matches(secret or ""):
        raise _refused("wrong client secret", basic)
    return client
