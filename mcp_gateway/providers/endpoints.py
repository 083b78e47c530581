"""Where the configured identity provider's endpoints are, and what its tokens must say.

    endpoints = await idp_endpoints(config)   # IdpEndpoints, or EndpointsUnavailable
    endpoints.issuer, endpoints.jwks_url, endpoints.audiences, endpoints.groups_claim, ...

- Cognito: the issuer is `https://cognito-idp.{region}.amazonaws.com/{pool}` (region: the
  configured one, else the pool id's prefix) and the JWKS sits under it. With `endpoint_url`
  (an emulator or a private endpoint) the pool's discovery document is read there instead,
  but the expected issuer stays the AWS one. The hosted-UI endpoints (authorize, token,
  userInfo, revoke) come from `domain` when it is set, else from the pool's discovery document
  (Cognito lists them there once the pool has a domain). A discovery that fails leaves them
  unknown with `discovery_error` set, so bearer JWTs (issuer + JWKS only) still work.
- Okta: derived from the tenant URL, for the org authorization server or a custom one.
- generic: the configured URLs; whatever is missing comes from OIDC discovery at the issuer.

`require_login_endpoints` says whether a browser sign-in can start: EndpointsMissing (the
configuration cannot work: stop start-up, say what to set) or EndpointsUnavailable (the IdP
is not reachable yet: retry).

Discovery documents are fetched with httpx (asynchronously: the proxy calls this too) and
cached; a failed fetch is remembered for a short while so a burst of callers costs the IdP
one request, not one each.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from typing import Any, Mapping
from urllib.parse import urlsplit

import httpx

from mcp_gateway.config import GatewayConfig

from .base import IdpUnavailable, ProviderError

log = logging.getLogger(__name__)

COGNITO_GROUPS_CLAIM = "cognito:groups"
DISCOVERY_PATH = "/.well-known/openid-configuration"
DISCOVERY_TTL = 3600.0
DISCOVERY_RETRY_AFTER = 30.0
DISCOVERY_TIMEOUT = 5.0
MAX_DISCOVERY_BYTES = 256 * 1024


class EndpointsUnavailable(IdpUnavailable):
    """The provider's endpoints are not known (discovery failed, or the config lacks them).
    `reason` is safe to log and to show."""


class EndpointsMissing(ProviderError):
    """The IdP answered, but neither it nor the configuration names the sign-in endpoints:
    a configuration problem that no retry fixes. `reason` says what to set."""


@dataclass(frozen=True)
class IdpEndpoints:
    provider_type: str  # "cognito" | "okta" | "generic"
    issuer: str  # exactly as the tokens' `iss` carries it
    jwks_url: str
    client_id: str
    audiences: tuple[str, ...]  # accepted `aud` (or, for Cognito access tokens, `client_id`) values
    groups_claim: str
    authorize_url: str | None = None
    token_url: str | None = None
    userinfo_url: str | None = None
    revocation_url: str | None = None
    iss_parameter_supported: bool = False  # RFC 9207: the IdP puts `iss` in every authorization response
    token_endpoint_auth_method: str = "client_secret_basic"
    discovery_url: str | None = None  # where the sign-in endpoints were looked up, if anywhere
    discovery_error: str | None = None  # that lookup failed (unreachable, unreadable): retry later


async def idp_endpoints(config: GatewayConfig, *, http: httpx.AsyncClient | None = None) -> IdpEndpoints:
    """The endpoints of the configured provider (auth.provider_type cognito, okta or generic)."""
    kind = config.auth.provider_type
    settings = config.auth.provider
    if kind == "cognito":
        return await _cognito(settings, http)
    if kind == "okta":
        return _okta(settings, _groups_claim(config))
    if kind == "generic":
        return await _generic(settings, _groups_claim(config), http)
    raise EndpointsUnavailable(f"provider type {kind!r} has no OAuth endpoints")


def cognito_issuer(settings: Mapping[str, Any]) -> str:
    pool = settings["user_pool_id"]
    region = settings.get("region") or pool.split("_", 1)[0]
    return f"https://cognito-idp.{region}.amazonaws.com/{pool}"


def _groups_claim(config: GatewayConfig) -> str:
    return config.auth.provider.get("groups_claim") or config.auth.groups_claim


async def _cognito(settings: Mapping[str, Any], http: httpx.AsyncClient | None) -> IdpEndpoints:
    issuer = cognito_issuer(settings)
    jwks_url = f"{issuer}/.well-known/jwks.json"
    domain = settings.get("domain")
    emulator = settings.get("endpoint_url")
    discovery_base = f"{emulator}/{settings['user_pool_id']}" if emulator else issuer
    discovered: dict[str, Any] = {}
    problem: str | None = None
    if emulator or not domain:
        try:
            discovered = await _discovery_cache.document(discovery_base, http)
        except EndpointsUnavailable as error:
            if emulator:  # the JWKS is only known from the emulator's document
                raise
            problem = error.reason
    if emulator:
        # The emulator's (or private endpoint's) documents; the tokens still name the AWS issuer.
        jwks_url = discovered["jwks_uri"]
    hosted = {
        "authorize_url": f"{domain}/oauth2/authorize",
        "token_url": f"{domain}/oauth2/token",
        "userinfo_url": f"{domain}/oauth2/userInfo",
        "revocation_url": f"{domain}/oauth2/revoke",
    } if domain else _oauth_endpoints(discovered)
    return IdpEndpoints(
        provider_type="cognito", issuer=issuer, jwks_url=jwks_url, client_id=settings["client_id"],
        audiences=(settings["client_id"],), groups_claim=COGNITO_GROUPS_CLAIM, **hosted,
        discovery_url=None if domain else discovery_base + DISCOVERY_PATH, discovery_error=problem,
    )


def _okta(settings: Mapping[str, Any], groups_claim: str) -> IdpEndpoints:
    tenant = settings["tenant_url"].rstrip("/")
    server = (settings.get("authorization_server") or "").strip("/")
    # The org authorization server lives at the tenant root; a custom one ("default", or an
    # id such as aus1a2b3c) under /oauth2/{id}. Their paths differ by that prefix only.
    issuer = f"{tenant}/oauth2/{server}" if server else tenant
    base = f"{issuer}/v1" if server else f"{tenant}/oauth2/v1"
    return IdpEndpoints(
        provider_type="okta", issuer=issuer, jwks_url=f"{base}/keys", client_id=settings["client_id"],
        audiences=(settings["client_id"],), groups_claim=groups_claim, authorize_url=f"{base}/authorize",
        token_url=f"{base}/token", userinfo_url=f"{base}/userinfo", revocation_url=f"{base}/revoke",
    )


async def _generic(settings: Mapping[str, Any], groups_claim: str, http: httpx.AsyncClient | None) -> IdpEndpoints:
    issuer = settings.get("issuer")
    if not issuer:
        raise EndpointsUnavailable("[auth.generic] issuer (MCP_AUTH_ISSUER) is needed: "
                                   "ID tokens are checked against it")
    configured = {"authorize_url": settings.get("authorize_url"), "token_url": settings.get("token_url"),
                  "jwks_url": settings.get("jwks_url")}
    document: dict[str, Any] = {}
    if not all(configured.values()):
        document = await _discovery_cache.document(issuer, http)
        if document["issuer"].rstrip("/") != issuer.rstrip("/"):
            raise EndpointsUnavailable(
                f"discovery at {issuer} names the issuer {document['issuer']!r}; set MCP_AUTH_ISSUER to it")
        issuer = document["issuer"]  # exact, trailing slash included: tokens carry it so
    discovered = _oauth_endpoints(document)
    discovered["jwks_url"] = document.get("jwks_uri")
    merged = {name: configured.get(name) or discovered.get(name) for name in (*discovered, *configured)}
    methods = document.get("token_endpoint_auth_methods_supported") or []
    post_only = isinstance(methods, list) and "client_secret_basic" not in methods and "client_secret_post" in methods
    return IdpEndpoints(
        provider_type="generic", issuer=issuer, client_id=settings["client_id"],
        audiences=(settings["client_id"],), groups_claim=groups_claim,
        iss_parameter_supported=document.get("authorization_response_iss_parameter_supported") is True,
        token_endpoint_auth_method="client_secret_post" if post_only else "client_secret_basic",
        discovery_url=(issuer.rstrip("/") + DISCOVERY_PATH) if document else None,
        **merged,
    )


SETUP_HINTS = {
    "cognito": "give the user pool a domain (Cognito console: App integration, Domain) so its discovery document "
               "lists the hosted-UI endpoints, or set MCP_AUTH_COGNITO_DOMAIN to the hosted-UI domain "
               "(e.g. https://example.auth.us-east-1.amazoncognito.com)",
    "okta": "set MCP_AUTH_OKTA_TENANT_URL",
    "generic": "set MCP_AUTH_AUTHORIZE_URL and MCP_AUTH_TOKEN_URL, or an MCP_AUTH_ISSUER whose discovery document "
               "names them",
}


def require_login_endpoints(endpoints: IdpEndpoints) -> None:
    """Raises unless a browser sign-in can start: EndpointsUnavailable when the lookup failed
    (retry), EndpointsMissing when the IdP answered without the endpoints (fix the config)."""
    missing = [name for name, url in (("authorization_endpoint", endpoints.authorize_url),
                                      ("token_endpoint", endpoints.token_url)) if not url]
    if not missing:
        return
    kind = endpoints.provider_type
    if endpoints.discovery_error:
        raise EndpointsUnavailable(f"the {kind} sign-in endpoints are not known yet: {endpoints.discovery_error}")
    where = f"the discovery document {endpoints.discovery_url}" if endpoints.discovery_url else "the configuration"
    raise EndpointsMissing(f"the {kind} sign-in endpoints are not known: {where} names no {' and no '.join(missing)}; "
                           f"{SETUP_HINTS.get(kind, 'see docs/providers.md')}")


def _oauth_endpoints(document: Mapping[str, Any]) -> dict[str, str | None]:
    return {
        "authorize_url": document.get("authorization_endpoint"),
        "token_url": document.get("token_endpoint"),
        "userinfo_url": document.get("userinfo_endpoint"),
        "revocation_url": document.get("revocation_endpoint"),
    }


class DiscoveryCache:
    """OIDC discovery documents by issuer (or base URL), fetched once per `ttl`."""

    def __init__(self, ttl: float = DISCOVERY_TTL, retry_after: float = DISCOVERY_RETRY_AFTER) -> None:
        self._ttl = ttl
        self._retry_after = retry_after
        self._documents: dict[str, tuple[float, dict[str, Any]]] = {}
        self._failures: dict[str, tuple[float, str]] = {}
        self._locks: dict[tuple[int, str], asyncio.Lock] = {}

    def clear(self) -> None:
        self._documents.clear()
        self._failures.clear()

    async def document(self, base: str, http: httpx.AsyncClient | None = None) -> dict[str, Any]:
        # One lock per event loop: asyncio locks must not be shared across loops.
        lock = self._locks.setdefault((id(asyncio.get_running_loop()), base), asyncio.Lock())
        async with lock:
            now = time.monotonic()
            cached = self._documents.get(base)
            if cached is not None and now - cached[0] < self._ttl:
                return cached[1]
            failed = self._failures.get(base)
            if failed is not None and now - failed[0] < self._retry_after:
                raise EndpointsUnavailable(failed[1])
            try:
                document = await _fetch_document(base.rstrip("/") + DISCOVERY_PATH, http)
            except EndpointsUnavailable as error:
                log.warning("OIDC discovery failed: %s", error.reason)
                self._failures[base] = (now, error.reason)
                raise
            self._failures.pop(base, None)
            self._documents[base] = (now, document)
            log.info("OIDC discovery document read from %s", base)
            return document


_discovery_cache = DiscoveryCache()


def clear_discovery_cache() -> None:
    """Forget every cached document and failure (tests; an operator's reload)."""
    _discovery_cache.clear()


async def _fetch_document(url: str, http: httpx.AsyncClient | None) -> dict[str, Any]:
    client = http or httpx.AsyncClient()
    try:
        async with client.stream("GET", url, timeout=DISCOVERY_TIMEOUT,
                                 headers={"Accept": "application/json"}) as response:
            if response.status_code != 200:
                raise EndpointsUnavailable(f"discovery at {url}: HTTP status {response.status_code}")
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > MAX_DISCOVERY_BYTES:
                    raise EndpointsUnavailable(f"discovery at {url}: document too large")
    except (httpx.HTTPError, httpx.InvalidURL) as error:
        raise EndpointsUnavailable(f"discovery at {url}: {type(error).__name__}") from None
    finally:
        if http is None:
            await client.aclose()
    return _checked_document(url, bytes(body))


def _checked_document(url: str, body: bytes) -> dict[str, Any]:
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        raise EndpointsUnavailable(f"discovery at {url}: not JSON") from None
    if not isinstance(document, dict) or not isinstance(document.get("issuer"), str):
        raise EndpointsUnavailable(f"discovery at {url}: no issuer in the document")
    for name, value in document.items():
        if name.endswith(("_endpoint", "_uri")) and value is not None and not _is_http_url(value):
            raise EndpointsUnavailable(f"discovery at {url}: {name} is not an http(s) URL")
    if not document.get("jwks_uri"):
        raise EndpointsUnavailable(f"discovery at {url}: no jwks_uri in the document")
    return document


def _is_http_url(value: object) -> bool:
    if not isinstance(value, str):
        return False
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.hostname)
