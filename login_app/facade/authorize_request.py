"""Reading an authorization request (`GET /oauth/authorize?...`) before anything is shown.

Until the client and its redirect URI are known to be registered, a problem is shown on a
page, never sent to the redirect URI (RFC 6749 §4.1.2.1: no open redirector). After that,
problems go back to the client as `error=` on its redirect URI, with `state` and `iss`.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from urllib.parse import urlencode

from starlette.datastructures import QueryParams

from mcp_gateway.oauth_clients import ClientRegistry, OAuthClient
from mcp_gateway.oauth_errors import OAuthError
from mcp_gateway.oauth_grants import is_code_challenge
from mcp_gateway.resources import issuer_of, parse_resource

from .oauth_http import single

MAX_STATE_LENGTH = 1024
MAX_SCOPE_LENGTH = 1000
MAX_RESOURCES = 8


class RefusedOnPage(Exception):
    """The request cannot be answered at the redirect URI: tell the person instead."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class RefusedToClient(Exception):
    def __init__(self, redirect_uri: str, state: str | None, error: str, description: str) -> None:
        super().__init__(description)
        self.redirect_uri = redirect_uri
        self.state = state
        self.error = error
        self.description = description


@dataclass(frozen=True)
class AuthorizationRequest:
    client: OAuthClient
    redirect_uri: str  # the one the code goes to (a registered one, or a loopback one on another port)
    state: str | None
    code_challenge: str
    resources: tuple[str, ...]
    scope: str | None
    redirect_uri_sent: bool  # named in the request (else the only registered one): the token request must name it too


def redirect_with(redirect_uri: str, public_url: str, state: str | None, **params: str) -> str:
    """The client's redirect URI with the answer's parameters, `state` and `iss` (RFC 9207) added."""
    values = {**params, **({"state": state} if state is not None else {}), "iss": issuer_of(public_url)}
    return redirect_uri + ("&" if "?" in redirect_uri else "?") + urlencode(values)


async def read_authorization_request(params: QueryParams, clients: ClientRegistry, public_url: str,
                                     known_servers: Collection[str]) -> AuthorizationRequest:
    try:
        client_id, requested_uri = single(params, "client_id"), single(params, "redirect_uri")
    except OAuthError as e:
        raise RefusedOnPage(e.description) from None
    client = await clients.get(client_id) if client_id else None
    if client is None:
        raise RefusedOnPage("This application is not registered with the gateway (unknown or expired client_id). "
                            "Connect it again so that it registers.")
    redirect_uri = client.registered_redirect_uri(requested_uri)
    if redirect_uri is None:
        raise RefusedOnPage("The redirect URI of this request is not one the application registered, so the "
                            "gateway will not send anything there.")
    state = None
    try:
        state = single(params, "state")
        if state is not None and (len(state) > MAX_STATE_LENGTH or not state.isprintable()):
            raise OAuthError("invalid_request", "state is too long or not printable")
        return AuthorizationRequest(client, redirect_uri, state, _code_challenge(params),
                                    _resources(params, public_url, known_servers), _scope(params),
                                    redirect_uri_sent=requested_uri is not None)
    except OAuthError as e:
        raise RefusedToClient(redirect_uri, state, e.error, e.description) from None


def _code_challenge(params: QueryParams) -> str:
    if single(params, "response_type") != "code":
        raise OAuthError("unsupported_response_type", "only response_type=code is supported")
    if single(params, "code_challenge_method") != "S256":
        raise OAuthError("invalid_request", "PKCE is required: send code_challenge with code_challenge_method=S256")
    challenge = single(params, "code_challenge") or ""
    if not is_code_challenge(challenge):
        raise OAuthError("invalid_request", "code_challenge must be a base64url SHA-256 (43 characters)")
    return challenge


def _resources(params: QueryParams, public_url: str, known_servers: Collection[str]) -> tuple[str, ...]:
    resources = tuple(dict.fromkeys(params.getlist("resource")))
    if not resources:
        raise OAuthError("invalid_target", "a resource parameter (RFC 8707) naming an MCP server of this gateway "
                                           "is required, e.g. " + f"{issuer_of(public_url)}/api/streamable/NAME")
    if len(resources) > MAX_RESOURCES:
        raise OAuthError("invalid_target", f"at most {MAX_RESOURCES} resources per request")
    for resource in resources:
        parsed = parse_resource(public_url, resource)
        if parsed is None or parsed[1] not in known_servers:
            raise OAuthError("invalid_target", f"{resource} is not an MCP server of this gateway")
    return resources


def _scope(params: QueryParams) -> str | None:
    scope = single(params, "scope")
    if scope is not None and (len(scope) > MAX_SCOPE_LENGTH or not scope.isprintable()):
        raise OAuthError("invalid_scope", "scope is too long or not printable")
    return scope
