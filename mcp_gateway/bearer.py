"""Bearer JWTs issued by the configured identity provider (agents: e.g. Cognito client-credentials
tokens), validated as docs/architecture.md ("Identity") says and turned into an Identity.

The issuer, JWKS and default audience come from the provider's endpoints; the accepted
audiences can be set per provider (`bearer_audiences`, MCP_AUTH_BEARER_AUDIENCES). Cognito
access tokens carry no `aud`: their app client is in `client_id`, and `token_use` must be
"access". Groups come from the provider's groups claim (`cognito:groups` for Cognito);
`scope`/`scp` values count as direct scopes only where the policy's [direct_scopes] allow
(checked when scopes are computed, like every other direct scope).
"""

from __future__ import annotations

import logging
from typing import Any

from .config import GatewayConfig
from .identity import Identity
from .providers.endpoints import EndpointsUnavailable, IdpEndpoints, idp_endpoints
from .tokens import JwksCache, JwksUnavailable, TokenInvalid, TokenPolicy, TokenValidator, claims_groups, claims_scopes

log = logging.getLogger(__name__)

IDP_PROVIDERS = ("cognito", "okta", "generic")
_USERNAME_CLAIMS = ("username", "cognito:username", "preferred_username", "email", "client_id")


class BearerUnavailable(Exception):
    """The provider's endpoints or keys cannot be had right now: refuse with 503, not 401."""


def bearer_policy(config: GatewayConfig, endpoints: IdpEndpoints) -> TokenPolicy:
    audiences = tuple(config.auth.provider.get("bearer_audiences") or ()) or endpoints.audiences
    cognito = endpoints.provider_type == "cognito"
    return TokenPolicy(issuer=endpoints.issuer, audiences=audiences, leeway=config.auth.leeway,
                       audience_claim="client_id" if cognito else "aud", token_use="access" if cognito else None)


def identity_from_claims(claims: dict[str, Any], endpoints: IdpEndpoints) -> Identity:
    username = next((claims[name] for name in _USERNAME_CLAIMS if isinstance(claims.get(name), str) and claims[name]),
                    claims["sub"])
    client_id = claims.get("client_id") or claims.get("azp")
    return Identity(
        subject=str(claims["sub"]), username=username, provider=endpoints.provider_type,
        groups=claims_groups(claims, endpoints.groups_claim),
        direct_scopes=tuple(scope for scope in claims_scopes(claims) if scope.startswith("mcp:")),
        kind="bearer", client_id=client_id if isinstance(client_id, str) else None,
    )


class BearerJwts:
    """Validates IdP bearer JWTs for one configuration; built lazily, on the first token."""

    def __init__(self, config: GatewayConfig) -> None:
        self.config = config
        self._endpoints: IdpEndpoints | None = None
        self._validator: TokenValidator | None = None

    async def identify(self, token: str) -> Identity:
        """The caller a valid token names; TokenInvalid (401) or BearerUnavailable (503) otherwise."""
        validator = await self._ready()
        try:
            claims = await validator.validate(token)
        except JwksUnavailable as e:
            raise BearerUnavailable(e.reason) from None
        assert self._endpoints is not None
        return identity_from_claims(claims, self._endpoints)

    async def _ready(self) -> TokenValidator:
        if self._validator is not None:
            return self._validator
        if not self.config.auth.enabled or self.config.auth.provider_type not in IDP_PROVIDERS:
            raise TokenInvalid("bearer JWTs are not accepted: no identity provider is configured")
        try:
            endpoints = await idp_endpoints(self.config)
            policy = bearer_policy(self.config, endpoints)
        except EndpointsUnavailable as e:
            raise BearerUnavailable(e.reason) from None
        except ValueError as e:  # an unusable policy (no issuer, no audience)
            raise TokenInvalid(f"bearer JWTs are not accepted: {e}") from None
        if self._validator is None:  # another caller may have built it meanwhile
            self._endpoints = endpoints
            self._validator = TokenValidator(policy, JwksCache(endpoints.jwks_url))
            log.info("auth: bearer JWTs from %s accepted for audience(s) %s", endpoints.issuer,
                     ", ".join(policy.audiences))
        return self._validator

    async def aclose(self) -> None:
        if self._validator is not None:
            await self._validator.jwks.aclose()
