"""POST /oauth/token — an authorization code (with its PKCE verifier) or a refresh token, for tokens.

Access tokens are opaque sessions of kind "access" in the shared store, bound to the client
and to the resource(s) of the grant (RFC 8707); a `resource` parameter here may only narrow
them. Refresh tokens are single use: each refresh returns a new one (rotation).

The token's `scope` is what the person's groups allow for its resources at issue time; a
refresh computes it again (groups re-read from the browser session while it lives, the
policy in force), so a refreshed token follows group and policy changes both ways; when the
groups no longer give any access to the resource, the refresh is refused (`invalid_grant`).
"""

from __future__ import annotations

import logging

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from mcp_gateway.authz import decide_mcp_connect
from mcp_gateway.oauth_clients import OAuthClient
from mcp_gateway.oauth_errors import OAuthError
from mcp_gateway.oauth_grants import Grant, GrantError, Grants, verifier_matches
from mcp_gateway.resources import scopes_for_servers, servers_of
from mcp_gateway.sessions import StoreUnavailable

from ..context import client_address, context
from .clients import authenticate_client
from .oauth_http import oauth_error, oauth_json, read_form, single

log = logging.getLogger(__name__)


async def token(request: Request) -> Response:
    ctx = context(request)
    grants = Grants(ctx.store)
    try:
        form = await read_form(request)
        client = await authenticate_client(request, form)
        grant_type = single(form, "grant_type", required=True)
        if grant_type == "authorization_code":
            grant = await _from_code(grants, client, form)
        elif grant_type == "refresh_token":
            grant = await _from_refresh_token(grants, client, form)
        else:
            raise OAuthError("unsupported_grant_type", "use authorization_code or refresh_token")
        resources = _narrowed(grant, form)
        granted = _granted_scopes(request, grant, resources)
        issued = await grants.issue_tokens(grant, access_resources=resources, granted_scopes=tuple(granted),
                                           with_refresh_token=client.may_refresh)
    except OAuthError as e:  # GrantError included
        log.info("auth: token request refused (client %s): %s: %s", client_address(request), e.error, e.description)
        return oauth_error(e)
    except StoreUnavailable:
        return oauth_error(OAuthError("temporarily_unavailable", "the session store is unavailable", 503))
    body: dict[str, object] = {
        "access_token": issued.access_token, "token_type": "Bearer", "expires_in": issued.expires_in,
        "scope": " ".join(granted),
    }
    if issued.refresh_token is not None:
        body["refresh_token"] = issued.refresh_token
    log.info("auth: %s: access token for user=%s client=%s (%s) resource=%s session=%.12s", grant_type,
             grant.username, client.client_id[:8], client.display_name, ",".join(issued.session.resources),
             issued.session.id)
    return oauth_json(body)


async def _from_code(grants: Grants, client: OAuthClient, form: FormData) -> Grant:
    code = single(form, "code", required=True)
    redirect_uri = single(form, "redirect_uri")
    verifier = single(form, "code_verifier")
    grant = await grants.redeem_code(code)  # spent now, whatever follows: a wrong verifier cannot be retried
    if grant.client_id != client.client_id:
        raise GrantError("invalid_grant", "the authorization code was issued to another client")
    # RFC 6749 §4.1.3: required, and identical, when the authorization request named it; when that
    # request relied on the client's only registered URI, it may be left out here too.
    if redirect_uri is None and grant.redirect_uri_sent:
        raise GrantError("invalid_grant", "redirect_uri is required: the authorization request named one")
    if redirect_uri is not None and redirect_uri != grant.redirect_uri:
        raise GrantError("invalid_grant", "redirect_uri differs from the one of the authorization request")
    if verifier is None or not verifier_matches(verifier, grant.code_challenge):
        raise GrantError("invalid_grant", "PKCE verification failed: code_verifier does not match code_challenge")
    return grant


async def _from_refresh_token(grants: Grants, client: OAuthClient, form: FormData) -> Grant:
    if not client.may_refresh:
        raise OAuthError("unauthorized_client", "this client did not register the refresh_token grant")
    grant = await grants.redeem_refresh_token(single(form, "refresh_token", required=True))
    if grant.client_id != client.client_id:
        await grants.revoke_family(grant.family)  # a stolen refresh token: end the whole authorization
        raise GrantError("invalid_grant", "the refresh token was issued to another client")
    return grant


def _granted_scopes(request: Request, grant: Grant, resources: tuple[str, ...]) -> list[str]:
    """What the person's groups allow for `resources` now, by the policy in force (also on refresh).
    Groups that no longer give any access to one of the servers end the grant: there is nothing to issue."""
    ctx = context(request)
    held = ctx.scopes_for(grant.groups, grant.direct_scopes)
    servers = servers_of(ctx.config.public_url, resources)
    without = [server for server in servers if not decide_mcp_connect(frozenset(held), server).allowed]
    if without:
        raise GrantError("invalid_grant", f"your groups no longer give access to server {without[0]!r}; "
                                          "authorize the client again once they do")
    return scopes_for_servers(held, servers)


def _narrowed(grant: Grant, form: FormData) -> tuple[str, ...]:
    requested = tuple(dict.fromkeys(form.getlist("resource")))
    if not requested:
        return grant.resources
    outside = [r for r in requested if r not in grant.resources]
    if outside:
        raise OAuthError("invalid_target", f"{outside[0]} was not part of this authorization")
    return requested
