"""POST /oauth/revoke — token revocation (RFC 7009).

An access token ends at once; a refresh token ends its whole authorization (every access
token issued under it too). A token that is unknown or already ended gets the same 200: the
client's goal is reached either way. A token of another client is refused.
"""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import Response

from mcp_gateway.oauth_errors import OAuthError
from mcp_gateway.oauth_grants import Grants
from mcp_gateway.sessions import StoreUnavailable

from ..context import client_address, context
from .clients import authenticate_client
from .oauth_http import NO_STORE, oauth_error, read_form, single

log = logging.getLogger(__name__)


async def revoke(request: Request) -> Response:
    try:
        form = await read_form(request)
        client = await authenticate_client(request, form)
        await Grants(context(request).store).revoke(single(form, "token", required=True), client.client_id)
    except OAuthError as e:
        log.info("auth: revocation refused (client %s): %s", client_address(request), e.description)
        return oauth_error(e)
    except StoreUnavailable:
        return oauth_error(OAuthError("temporarily_unavailable", "the session store is unavailable", 503))
    log.info("auth: token revoked by MCP client %s", client.client_id[:8])
    return Response(status_code=200, headers=NO_STORE)
