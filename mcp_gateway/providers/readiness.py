"""Can a browser sign-in start? Checked when the gateway starts, without blocking it.

    endpoints = await sign_in_endpoints(config)   # or EndpointsMissing / EndpointsUnavailable

- EndpointsMissing: the IdP answered (or nothing was to be asked) and no authorization or token
  endpoint is known. No retry fixes that: start-up stops with the reason, which says what to set.
- EndpointsUnavailable (or a timeout): the IdP's discovery document could not be read yet. The
  gateway starts, sign-ins answer 503 until it can be read, and the check is retried with
  `RETRY_DELAYS` between attempts (docs/providers.md, "Discovery at start-up").
"""

from __future__ import annotations

import httpx

from mcp_gateway.config import GatewayConfig

from .endpoints import IdpEndpoints, idp_endpoints, require_login_endpoints

FIRST_CHECK_TIMEOUT = 10.0  # seconds start-up waits for the IdP before going on without it
RETRY_DELAYS = (2.0, 5.0, 10.0, 30.0, 60.0)  # then every 60 s
SIGN_IN_PROVIDERS = ("cognito", "okta", "generic")


def needs_sign_in_endpoints(config: GatewayConfig) -> bool:
    return config.auth.enabled and config.auth.provider_type in SIGN_IN_PROVIDERS


async def sign_in_endpoints(config: GatewayConfig, *, http: httpx.AsyncClient | None = None) -> IdpEndpoints:
    endpoints = await idp_endpoints(config, http=http)
    require_login_endpoints(endpoints)
    return endpoints


def retry_delay(attempt: int) -> float:
    return RETRY_DELAYS[min(attempt, len(RETRY_DELAYS) - 1)]
