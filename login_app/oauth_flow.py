"""Logging in at the identity provider: the OAuth 2.1 authorization-code flow with PKCE.

    GET /oauth/login/{provider}       start: transaction cookie (state, nonce, PKCE verifier), redirect to the IdP
    GET /oauth/callback[/{provider}]  finish: state and iss checked first, then the code redeemed,
                                      the ID token validated, the session created (/oauth/callback is "generic")

Every failure is a page saying what went wrong (the IdP's `error` shown escaped) with a way
back to the login page: 400 for an answer that does not fit this browser's sign-in, 401 for
an identity that failed validation, 502 when the IdP cannot be reached, 503 when the session
store cannot. Codes, tokens and state values are never logged.
"""

from __future__ import annotations

import logging
from urllib.parse import quote

from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from mcp_gateway.providers import (
    EndpointsMissing,
    EndpointsUnavailable,
    IdentityInvalid,
    IdpIdentity,
    IdpRefused,
    Provider,
    ProviderError,
)
from mcp_gateway.redirects import safe_next
from mcp_gateway.sessions import StoreUnavailable

from .context import LoginContext, client_address, context
from .cookies import set_session_cookie
from .pages import DEFAULT_LANDING, render
from .transaction import (
    LoginTransaction,
    TransactionCodec,
    TransactionError,
    claim,
    clear_transaction_cookie,
    remember,
    set_transaction_cookie,
    transaction_cookie,
)

log = logging.getLogger(__name__)

GENERIC = "generic"
NOT_VERIFIED = "Sign-in could not be verified"
UNREACHABLE = "The identity provider cannot be reached"
NOT_AVAILABLE = "Sign-in is not available yet"
MAX_IDP_ERROR = 64
MAX_IDP_DESCRIPTION = 300


class LoginFailed(Exception):
    """A sign-in that ends on an error page; the message is safe to show and to log."""

    def __init__(self, status: int, heading: str, message: str, *, idp_error: str | None = None,
                 idp_description: str | None = None) -> None:
        super().__init__(message)
        self.status, self.heading, self.message = status, heading, message
        self.idp_error, self.idp_description = idp_error, idp_description


async def start_login(request: Request) -> Response:
    ctx = context(request)
    name = request.path_params["provider"]
    next_path = safe_next(request.query_params.get("next"), DEFAULT_LANDING)
    transaction = LoginTransaction.start(name, next_path)
    try:
        provider = _provider(ctx, name)
        url = await _authorization_url(provider, transaction)
        await remember(ctx.store, transaction)
    except LoginFailed as failure:
        return _failure_page(request, name, failure, next_path)
    except StoreUnavailable:
        return _store_down_page(request, name, next_path)
    response = RedirectResponse(url, status_code=302, headers={"cache-control": "no-store"})
    set_transaction_cookie(response, ctx.config, _codec(ctx).dumps(transaction))
    return response


async def finish_login(request: Request) -> Response:
    ctx = context(request)
    name = request.path_params.get("provider", GENERIC)
    next_path = DEFAULT_LANDING
    try:
        provider = _provider(ctx, name)
        transaction = await _claimed_transaction(request, ctx, name)
        next_path = transaction.next_path
        identity = await _identity(provider, request.query_params, transaction)
        token, session = await ctx.store.create(
            subject=identity.subject, username=identity.username, email=identity.email, provider=name,
            groups=identity.groups, refresh_token=identity.refresh_token,
        )
    except LoginFailed as failure:
        return _failure_page(request, name, failure, next_path)
    except StoreUnavailable:
        return _store_down_page(request, name, next_path)
    log.info("auth: login user=%s provider=%s groups=%s session=%s client=%s", session.username, name,
             ",".join(session.groups), session.id[:12], client_address(request))
    if identity.refresh_token is None:
        log.warning("auth: %s issued no refresh token for user=%s: groups cannot be refreshed until the next "
                    "login (allow the refresh_token grant / offline_access for the gateway's client)",
                    name, session.username)
    response = RedirectResponse(next_path, status_code=303, headers={"cache-control": "no-store"})
    set_session_cookie(response, ctx.config, token)
    clear_transaction_cookie(response, ctx.config)
    return response


def _provider(ctx: LoginContext, name: str) -> Provider:
    provider = ctx.providers.get(name)
    if provider is None:
        raise LoginFailed(404, "Unknown sign-in method", f"No identity provider named {name!r} is configured here.")
    return provider  # type: ignore[return-value]


async def _authorization_url(provider: Provider, transaction: LoginTransaction) -> str:
    try:
        return await provider.authorization_url(state=transaction.state, nonce=transaction.nonce,
                                                code_verifier=transaction.code_verifier)
    except (EndpointsUnavailable, EndpointsMissing) as error:  # discovery has not succeeded (yet)
        raise LoginFailed(503, NOT_AVAILABLE, error.reason) from None
    except ProviderError as error:
        raise LoginFailed(502, UNREACHABLE, error.reason) from None


async def _claimed_transaction(request: Request, ctx: LoginContext, name: str) -> LoginTransaction:
    try:
        transaction = _codec(ctx).loads(transaction_cookie(request))
        await claim(ctx.store, transaction, name, request.query_params.get("state"))
    except TransactionError as error:
        raise LoginFailed(400, NOT_VERIFIED, error.reason) from None
    return transaction


async def _identity(provider: Provider, params: QueryParams, transaction: LoginTransaction) -> IdpIdentity:
    """Checks the rest of the IdP's answer (iss, error, code) before redeeming the code."""
    try:
        endpoints = await provider.endpoints()
    except ProviderError as error:
        raise LoginFailed(502, UNREACHABLE, error.reason) from None
    issuer = params.get("iss")
    if issuer is not None and issuer != endpoints.issuer:  # RFC 9207: a mix-up attack
        raise LoginFailed(400, NOT_VERIFIED, "the answer comes from another issuer than this provider (iss)")
    if issuer is None and endpoints.iss_parameter_supported:
        raise LoginFailed(400, NOT_VERIFIED, "the answer lacks the issuer (iss) this provider always sends")
    if "error" in params:
        raise LoginFailed(400, "The identity provider did not sign you in", "The sign-in was refused or cancelled.",
                          idp_error=_clipped(params["error"], MAX_IDP_ERROR) or "error",
                          idp_description=_clipped(params.get("error_description"), MAX_IDP_DESCRIPTION))
    code = params.get("code")
    if not code:
        raise LoginFailed(400, NOT_VERIFIED, "the identity provider's answer has no authorization code")
    try:
        return await provider.redeem(code, code_verifier=transaction.code_verifier, nonce=transaction.nonce)
    except IdpRefused as refused:
        raise LoginFailed(400, "The identity provider did not accept the sign-in",
                          "The authorization code was refused; start again.",
                          idp_error=refused.error, idp_description=refused.description) from None
    except IdentityInvalid as invalid:
        raise LoginFailed(401, NOT_VERIFIED, invalid.reason) from None
    except ProviderError as error:
        raise LoginFailed(502, UNREACHABLE, error.reason) from None
    except Exception:  # an IdP answer nobody anticipated: a page, never a traceback
        log.exception("auth: unexpected failure redeeming a %s authorization code", provider.name)
        raise LoginFailed(502, UNREACHABLE, "the identity provider's answer could not be used") from None


def _codec(ctx: LoginContext) -> TransactionCodec:
    return TransactionCodec(ctx.config.auth.secret_key or "")


def _clipped(text: str | None, limit: int) -> str | None:
    if not text:
        return None
    return text if len(text) <= limit else text[:limit] + "…"


def _failure_page(request: Request, name: str, failure: LoginFailed, next_path: str) -> Response:
    # %r: the provider name and the IdP's error come from the URL, keep them on one log line
    log.warning("auth: login via %r refused (%d): %s%s (client %s)", name[:32], failure.status, failure.message,
                f" [idp error {failure.idp_error!r}]" if failure.idp_error else "", client_address(request))
    response = render(request, "idp_error.html", failure.status, heading=failure.heading, message=failure.message,
                      idp_error=failure.idp_error, idp_description=failure.idp_description,
                      retry_url=f"/oauth/login?next={quote(next_path, safe='/')}")
    clear_transaction_cookie(response, context(request).config)
    return response


def _store_down_page(request: Request, name: str, next_path: str) -> Response:
    log.error("auth: session store unavailable during a %r login", name[:32])
    return _failure_page(request, name, LoginFailed(503, "Sign-in is unavailable",
                                                    "The session store is unavailable. Try again shortly."), next_path)
