"""The one small interface every identity provider implements, and what it hands back.

The login flow (login_app/oauth_flow.py) and the group refresh (mcp_gateway/group_refresh.py)
know only this: a provider builds the authorization URL, redeems a code into an
`IdpIdentity` (ID token validated), refreshes that identity with a refresh token, and revokes.
Failures are `ProviderError`s whose `reason` is safe to log and to show.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # endpoints.py raises these errors, so it imports this module
    from .endpoints import IdpEndpoints


@dataclass(frozen=True)
class IdpIdentity:
    """Who the IdP says signed in, normalized across providers."""

    subject: str
    username: str
    email: str | None
    groups: tuple[str, ...]
    refresh_token: str | None = field(default=None, repr=False)


class ProviderError(Exception):
    """Talking to the IdP did not give an identity. `reason` is safe to log and to show."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class IdpUnavailable(ProviderError):
    """The IdP could not be reached, failed (5xx) or answered something unreadable."""


class IdpRefused(ProviderError):
    """The IdP answered with an OAuth error (`error`, e.g. invalid_grant)."""

    def __init__(self, error: str, description: str | None = None) -> None:
        super().__init__(f"the identity provider refused: {error}" + (f" ({description})" if description else ""))
        self.error = error
        self.description = description


class RefreshRefused(IdpRefused):
    """The IdP refused the refresh token (invalid_grant): the person's session must end."""


class IdentityInvalid(ProviderError):
    """The IdP's answer failed validation (ID token signature, issuer, audience, expiry, nonce...)."""


class Provider(ABC):
    name: str  # "cognito" | "okta" | "generic": the {provider} in paths and Session.provider
    display_name: str  # shown on the login page: "Sign in with ..."
    callback_path: str  # e.g. /oauth/callback/cognito
    redirect_uri: str  # the full callback URI registered at the IdP

    @abstractmethod
    async def endpoints(self) -> IdpEndpoints:
        """The IdP's endpoints (discovered and cached on first use); raises IdpUnavailable."""

    @abstractmethod
    async def authorization_url(self, *, state: str, nonce: str, code_verifier: str) -> str:
        """Where to send the browser: code flow with PKCE (S256), `state` and `nonce`."""

    @abstractmethod
    async def redeem(self, code: str, *, code_verifier: str, nonce: str) -> IdpIdentity:
        """Exchange the authorization code and validate the ID token (with `nonce`)."""

    @abstractmethod
    async def refresh(self, refresh_token: str) -> IdpIdentity:
        """The identity as the IdP sees it now; RefreshRefused when it refuses the token."""

    @abstractmethod
    async def revoke(self, token: str) -> None:
        """Revoke a refresh token where the IdP offers revocation; otherwise do nothing."""

    @abstractmethod
    async def aclose(self) -> None: ...
