"""Identity providers behind one small interface (base.Provider), one module each.

    providers = await build_providers(config)      # {"generic": GenericProvider(...)} or {}
    url = await provider.authorization_url(state=..., nonce=..., code_verifier=...)
    identity = await provider.redeem(code, code_verifier=..., nonce=...)   # IdpIdentity
    identity = await provider.refresh(refresh_token)                       # or RefreshRefused

`endpoints.idp_endpoints(config)` says where the configured IdP's endpoints are and what its
tokens must carry (issuer, audiences, groups claim); the proxy's bearer-token check uses it too.
"""

from __future__ import annotations

import asyncio
import importlib
import logging

from mcp_gateway.config import GatewayConfig

from .base import (
    IdentityInvalid,
    IdpIdentity,
    IdpRefused,
    IdpUnavailable,
    Provider,
    ProviderError,
    RefreshRefused,
)
from .endpoints import (
    EndpointsMissing,
    EndpointsUnavailable,
    IdpEndpoints,
    clear_discovery_cache,
    idp_endpoints,
    require_login_endpoints,
)

__all__ = [
    "EndpointsMissing", "EndpointsUnavailable", "IdentityInvalid", "IdpEndpoints", "IdpIdentity",
    "IdpRefused", "IdpUnavailable", "Provider", "ProviderError", "RefreshRefused",
    "build_providers", "clear_discovery_cache", "idp_endpoints", "provider_class",
]

log = logging.getLogger(__name__)

# provider_type → (module, class). A provider module is imported when a gateway is configured
# with it: they bring in the OAuth client library (authlib), which a gateway with local accounts
# or auth off never needs, and every worker and login app would otherwise load at start-up.
PROVIDER_TYPES: dict[str, tuple[str, str]] = {
    "cognito": (".cognito", "CognitoProvider"),
    "okta": (".okta", "OktaProvider"),
    "generic": (".generic", "GenericProvider"),
}


def provider_class(provider_type: str) -> type[Provider] | None:
    if provider_type not in PROVIDER_TYPES:
        return None
    module, name = PROVIDER_TYPES[provider_type]
    return getattr(importlib.import_module(module, __name__), name)


async def build_providers(config: GatewayConfig) -> dict[str, Provider]:
    """The configured provider by name ({} for local accounts only or auth off).

    The IdP's endpoints are looked up now so a misconfiguration shows in the log at start-up;
    an IdP that does not answer yet is retried on first use, never fatal here (the proxy's
    start-up check, addons/idp_startup.py, is what stops a gateway that cannot sign anyone in).
    """
    if not config.auth.enabled:
        return {}
    # Off the loop: the proxy builds its providers on first use, possibly inside a request.
    kind = await asyncio.to_thread(provider_class, config.auth.provider_type)
    if kind is None:
        return {}
    provider = kind(config)
    try:
        endpoints = await provider.endpoints()
        require_login_endpoints(endpoints)
    except EndpointsMissing as error:
        log.error("auth: %s sign-in cannot work: %s", provider.name, error.reason)
    except ProviderError as error:
        log.warning("auth: %s provider not ready yet: %s (retried on first login)", provider.name, error.reason)
    else:
        log.info("auth: %s provider, issuer %s", provider.name, endpoints.issuer)
    return {provider.name: provider}
