"""POST /oauth/register — dynamic client registration (RFC 7591) for MCP clients.

Open to anyone (that is how stock MCP clients start), so it is bounded: a small JSON body,
a limit of registrations per client address and hour, and a record that expires unless used.
"""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import Response

from mcp_gateway.oauth_clients import OAuthClient, parse_registration
from mcp_gateway.oauth_errors import OAuthError
from mcp_gateway.sessions import StoreUnavailable
from mcp_gateway.strict_json import BodyRejected, load_strict_json

from ..context import client_address, context, throttled_address
from .clients import client_registry
from .oauth_http import oauth_error, oauth_json

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 16 * 1024
MAX_DEPTH = 8  # client metadata is flat: lists of strings at most
WINDOW = 3600.0
MAX_REGISTRATIONS_PER_ADDRESS = 200


async def register(request: Request) -> Response:
    try:
        client, secret = await _registration(request)
    except OAuthError as e:  # ClientMetadataError included
        return oauth_error(e)
    address = client_address(request)
    log.info("auth: registered MCP client %s name=%r auth=%s redirect_uris=%s (client %s)", client.client_id[:8],
             client.client_name, client.token_endpoint_auth_method, ",".join(client.redirect_uris), address)
    return oauth_json(client.registration_response(secret), 201)


async def _registration(request: Request) -> tuple[OAuthClient, str | None]:
    store = context(request).store
    address = client_address(request)
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
        raise OAuthError("invalid_client_metadata", "send the client metadata as application/json")
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        raise OAuthError("invalid_client_metadata", f"client metadata larger than {MAX_BODY_BYTES} bytes", 413)
    try:
        metadata = load_strict_json(body, MAX_BODY_BYTES, MAX_DEPTH)
    except BodyRejected as problem:
        raise OAuthError("invalid_client_metadata", f"the body is not JSON read one way only: {problem.reason}") from None
    client, secret = parse_registration(metadata)
    try:
        if await store.hit(f"oauth-register:{throttled_address(address)}", WINDOW) > MAX_REGISTRATIONS_PER_ADDRESS:
            log.warning("auth: client registration throttled for client %s", address)
            raise OAuthError("too_many_requests", "too many registrations; wait and retry", 429,
                             {"retry-after": str(int(WINDOW))})
        await client_registry(request).save(client)
    except StoreUnavailable:
        raise OAuthError("temporarily_unavailable", "the session store is unavailable", 503) from None
    return client, secret
