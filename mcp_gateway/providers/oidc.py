"""The OpenID Connect authorization-code flow with PKCE, shared by every provider.

authlib's AsyncOAuth2Client builds the authorization URL (S256 code challenge only) and talks
to the token and revocation endpoints; mcp_gateway.tokens validates the ID token (signature
from the provider's JWKS, issuer, audience, expiry, nonce). A provider module supplies only
what differs: its name, scopes, and which claims hold the username and the groups.
"""

from __future__ import annotations

import functools
import logging
import ssl
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit

import httpx
from authlib.integrations.base_client import OAuthError
from authlib.integrations.httpx_client import AsyncOAuth2Client

from mcp_gateway.config import GatewayConfig
from mcp_gateway.tokens import JwksCache, JwksUnavailable, TokenInvalid, TokenPolicy, TokenValidator, claims_groups

from .base import IdentityInvalid, IdpIdentity, IdpRefused, IdpUnavailable, Provider, RefreshRefused
from .endpoints import IdpEndpoints, idp_endpoints, require_login_endpoints

try:  # authlib's httpx integration runs on httpx2 where it is installed, else on httpx
    import httpx2 as _authlib_http
except ImportError:  # pragma: no cover - depends on the environment
    _authlib_http = httpx

log = logging.getLogger(__name__)

_STATUS_ERRORS = (httpx.HTTPStatusError, _authlib_http.HTTPStatusError)
_TRANSPORT_ERRORS = (httpx.HTTPError, _authlib_http.HTTPError, httpx.InvalidURL, _authlib_http.InvalidURL)
MAX_REASON = 200


@dataclass(frozen=True)
class _Resolved:
    endpoints: IdpEndpoints
    client: AsyncOAuth2Client  # token, userinfo and revocation requests
    validator: TokenValidator


class OidcProvider(Provider):
    name = "generic"
    display_name = "single sign-on"
    username_claims: tuple[str, ...] = ("preferred_username", "email", "sub")
    token_use: str | None = None  # Cognito marks ID tokens token_use=id
    groups_from_userinfo = True  # the groups claim missing from the ID token: ask userinfo (Okta's org server)
    timeout = 10.0

    def __init__(self, config: GatewayConfig, *, scopes: Sequence[str], display_name: str | None = None) -> None:
        self._config = config
        self._settings = config.auth.provider
        self.scopes = tuple(dict.fromkeys(("openid", *scopes)))  # an ID token needs openid
        self.redirect_uri = self._settings["callback_uri"]
        self.callback_path = urlsplit(self.redirect_uri).path
        if display_name:
            self.display_name = display_name
        self._resolved: _Resolved | None = None
        self._http: httpx.AsyncClient | None = None  # discovery and JWKS

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"

    async def endpoints(self) -> IdpEndpoints:
        return (await self._ready()).endpoints

    async def authorization_url(self, *, state: str, nonce: str, code_verifier: str) -> str:
        ready = await self._ready()
        require_login_endpoints(ready.endpoints)
        url, _ = ready.client.create_authorization_url(
            ready.endpoints.authorize_url, state=state, code_verifier=code_verifier, nonce=nonce,
            scope=" ".join(self.scopes),
        )
        return url

    async def redeem(self, code: str, *, code_verifier: str, nonce: str) -> IdpIdentity:
        ready = await self._ready()
        async with _talking_to_idp("the code exchange"):
            token = await ready.client.fetch_token(
                ready.endpoints.token_url, grant_type="authorization_code", code=code,
                code_verifier=code_verifier, redirect_uri=self.redirect_uri,
            )
        return await self._identity(ready, token, nonce=nonce)

    async def refresh(self, refresh_token: str) -> IdpIdentity:
        ready = await self._ready()
        if not ready.endpoints.token_url:
            require_login_endpoints(ready.endpoints)
        try:
            async with _talking_to_idp("the refresh"):
                token = await ready.client.refresh_token(ready.endpoints.token_url, refresh_token=refresh_token)
        except IdpRefused as refused:
            if refused.error == "invalid_grant":
                raise RefreshRefused(refused.error, refused.description) from None
            raise
        identity = await self._identity(ready, token, nonce=None)
        # Providers that do not rotate refresh tokens send none back: keep using the old one.
        return replace(identity, refresh_token=identity.refresh_token or refresh_token)

    async def revoke(self, token: str) -> None:
        ready = await self._ready()
        if not ready.endpoints.revocation_url:
            return
        async with _talking_to_idp("the revocation"):
            response = await ready.client.revoke_token(ready.endpoints.revocation_url, token=token,
                                                       token_type_hint="refresh_token")
        _raise_for_status(response.status_code, "the revocation")

    async def aclose(self) -> None:
        if self._resolved is not None:
            resolved, self._resolved = self._resolved, None
            await resolved.client.aclose()
        if self._http is not None:
            http, self._http = self._http, None
            await http.aclose()

    async def validate_id_token(self, id_token: str, *, nonce: str | None = None) -> dict[str, Any]:
        """The verified claims of an ID token from this provider, or IdentityInvalid."""
        ready = await self._ready()
        try:
            claims = await ready.validator.validate(id_token, nonce=nonce)
        except JwksUnavailable as error:
            raise IdpUnavailable(error.reason) from None
        except TokenInvalid as error:
            raise IdentityInvalid(f"ID token refused: {error.reason}") from None
        audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        if len(audiences) > 1 and claims.get("azp") != ready.endpoints.client_id:
            raise IdentityInvalid("ID token refused: issued to another party (azp)")
        return claims

    async def _ready(self) -> _Resolved:
        stale = self._resolved is not None and self._resolved.endpoints.discovery_error is not None
        if self._resolved is None or stale:
            if self._http is None:
                self._http = httpx.AsyncClient(timeout=self.timeout, verify=_tls_context())
            endpoints = await idp_endpoints(self._config, http=self._http)
            if self._resolved is None or self._resolved.endpoints.discovery_error is not None:
                # (another task may have finished first while we awaited)
                previous, self._resolved = self._resolved, self._resolve(endpoints)
                if previous is not None:  # the sign-in endpoints were not found then: try again now
                    await previous.client.aclose()
        return self._resolved

    def _resolve(self, endpoints: IdpEndpoints) -> _Resolved:
        client = AsyncOAuth2Client(
            client_id=endpoints.client_id, client_secret=self._settings.get("client_secret"),
            token_endpoint_auth_method=endpoints.token_endpoint_auth_method,
            revocation_endpoint_auth_method=endpoints.token_endpoint_auth_method,
            redirect_uri=self.redirect_uri, code_challenge_method="S256", timeout=self.timeout,
            verify=_tls_context(),
        )
        policy = TokenPolicy(issuer=endpoints.issuer, audiences=(endpoints.client_id,),
                             leeway=self._config.auth.leeway, token_use=self.token_use)
        return _Resolved(endpoints, client, TokenValidator(policy, JwksCache(endpoints.jwks_url, http=self._http)))

    async def _identity(self, ready: _Resolved, token: dict[str, Any], *, nonce: str | None) -> IdpIdentity:
        claims: dict[str, Any] = {}
        id_token = token.get("id_token")
        if isinstance(id_token, str):
            claims = await self.validate_id_token(id_token, nonce=nonce)
        elif nonce is not None:  # a login without an ID token proves nothing about the person
            raise IdentityInvalid("the identity provider returned no ID token (is the openid scope allowed?)")
        groups_claim = ready.endpoints.groups_claim
        access_token = token.get("access_token")
        if (groups_claim not in claims and self.groups_from_userinfo and ready.endpoints.userinfo_url
                and isinstance(access_token, str)):
            info = await self._userinfo(ready, access_token)
            if claims and info.get("sub") != claims["sub"]:
                raise IdentityInvalid("userinfo describes another subject than the ID token")
            claims = {**info, **claims}
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject:
            raise IdpUnavailable("the identity provider returned neither an ID token nor userinfo")
        email = claims.get("email")
        refresh_token = token.get("refresh_token")
        return IdpIdentity(
            subject=subject, username=self._username(claims), email=email if isinstance(email, str) else None,
            groups=claims_groups(claims, groups_claim),
            refresh_token=refresh_token if isinstance(refresh_token, str) and refresh_token else None,
        )

    async def _userinfo(self, ready: _Resolved, access_token: str) -> dict[str, Any]:
        async with _talking_to_idp("the userinfo request"):
            response = await ready.client.request(
                "GET", ready.endpoints.userinfo_url, withhold_token=True,
                headers={"Authorization": f"Bearer {access_token}", "Accept": "application/json"},
            )
            _raise_for_status(response.status_code, "the userinfo request")
            info = response.json()
        if not isinstance(info, dict):
            raise IdpUnavailable("the userinfo answer is not a JSON object")
        return info

    def _username(self, claims: dict[str, Any]) -> str:
        for name in self.username_claims:
            value = claims.get(name)
            if isinstance(value, str) and value:
                return value
        return claims["sub"]


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """One TLS context for every IdP request of the process (loading the CA bundle is slow), the
    same for authlib's client and ours: both trust the same CAs (SSL_CERT_FILE, else certifi)."""
    return httpx.create_ssl_context()


def _raise_for_status(status: int, action: str) -> None:
    if status >= 500:
        raise IdpUnavailable(f"{action} failed at the identity provider: HTTP status {status}")
    if status >= 400:
        raise IdpRefused(f"http_{status}")


@asynccontextmanager
async def _talking_to_idp(action: str) -> AsyncIterator[None]:
    """Translates what authlib and httpx raise into ProviderErrors with short, safe reasons."""
    try:
        yield
    except OAuthError as error:
        raise IdpRefused(_short(error.error) or "error", _short(error.description)) from None
    except _STATUS_ERRORS as error:
        _raise_for_status(error.response.status_code, action)
        raise IdpUnavailable(f"{action}: unexpected HTTP status {error.response.status_code}") from None
    except _TRANSPORT_ERRORS as error:
        raise IdpUnavailable(f"{action} failed: the identity provider cannot be reached ({type(error).__name__})") \
            from None
    except ValueError:  # a body that is not the JSON object OAuth promises
        raise IdpUnavailable(f"{action} failed: the identity provider's answer is unreadable") from None


def _short(text: object) -> str | None:
    if not isinstance(text, str) or not text:
        return None
    return text if len(text) <= MAX_REASON else text[:MAX_REASON] + "…"
