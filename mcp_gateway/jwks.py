"""The identity provider's signing keys (JWKS), fetched asynchronously and cached.

Fetching is rate-limited: at most one request per `min_refetch_interval`, whatever
triggered it (cache expiry, an unknown `kid`, a retry after a failure), and
concurrent callers share one request. A flood of tokens with random `kid`s
therefore costs the IdP at most one request per interval. While the endpoint is
down, the keys fetched last keep working and unknown keys are refused; a failed
fetch is retried once the interval has passed (so a cold start during an IdP
outage refuses tokens for up to one interval after the IdP is back).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import Any

import httpx
import jwt

log = logging.getLogger(__name__)

MAX_JWKS_BYTES = 512 * 1024

# Which key fits which algorithm: (kty, crv or None for "any").
# Only asymmetric algorithms: a JWKS holds public keys, and an HMAC "secret" made
# of a public key is the classic algorithm-confusion forgery.
KEY_TYPE_FOR_ALGORITHM: dict[str, tuple[str, str | None]] = {
    "RS256": ("RSA", None),
    "RS384": ("RSA", None),
    "RS512": ("RSA", None),
    "PS256": ("RSA", None),
    "PS384": ("RSA", None),
    "PS512": ("RSA", None),
    "ES256": ("EC", "P-256"),
    "ES384": ("EC", "P-384"),
    "ES512": ("EC", "P-521"),
    "EdDSA": ("OKP", None),
}


class TokenInvalid(Exception):
    """A token was refused. `reason` is short and safe to log and to show."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class JwksUnavailable(TokenInvalid):
    """The signing keys could not be fetched and none are cached."""


class _FetchFailed(Exception):
    pass


class JwksCache:
    """The keys published at `url`, by `kid`."""

    def __init__(
        self,
        url: str,
        *,
        http: httpx.AsyncClient | None = None,
        ttl: float = 3600,
        min_refetch_interval: float = 60,
        timeout: float = 5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if httpx.URL(url).scheme not in ("http", "https"):
            raise ValueError(f"JWKS URL must be http(s): {url!r}")
        self.url = url
        self._http = http
        self._owns_http = http is None
        self._ttl = ttl
        self._min_refetch_interval = min_refetch_interval
        self._timeout = timeout
        self._clock = clock
        self._lock = asyncio.Lock()
        self._keys: list[dict[str, Any]] = []
        self._fetched_at: float | None = None
        self._attempted_at: float | None = None
        self._last_fetch_failed = False
        self._built: dict[tuple[str | None, str], jwt.PyJWK] = {}

    async def key_for(self, kid: str | None, alg: str) -> jwt.PyJWK:
        """The key to verify a token with header `kid` and `alg`, or TokenInvalid."""
        if alg not in KEY_TYPE_FOR_ALGORITHM:
            raise TokenInvalid("algorithm not allowed")
        if self._expired() and not self._lock.locked():
            await self._refresh()
        if not self._has_kid(kid):
            await self._refresh()
        if not self._has_kid(kid):
            raise self._unknown_key_error()
        return self._build(kid, alg)

    async def aclose(self) -> None:
        if self._owns_http and self._http is not None:
            await self._http.aclose()
            self._http = None

    def _expired(self) -> bool:
        return self._fetched_at is None or self._clock() - self._fetched_at >= self._ttl

    def _refetch_allowed(self) -> bool:
        if self._attempted_at is None:
            return True
        return self._clock() - self._attempted_at >= self._min_refetch_interval

    def _has_kid(self, kid: str | None) -> bool:
        # A token without `kid` is matched against the whole set in _build.
        if kid is None:
            return bool(self._keys)
        return any(jwk.get("kid") == kid for jwk in self._keys)

    def _unknown_key_error(self) -> TokenInvalid:
        if self._fetched_at is None:
            return JwksUnavailable("signing keys unavailable: the key set could not be fetched")
        if self._last_fetch_failed:
            return TokenInvalid("unknown signing key (kid); the key set could not be refreshed")
        return TokenInvalid("unknown signing key (kid)")

    def _build(self, kid: str | None, alg: str) -> jwt.PyJWK:
        if (kid, alg) in self._built:
            return self._built[(kid, alg)]
        named = [jwk for jwk in self._keys if kid is None or jwk.get("kid") == kid]
        fitting = [jwk for jwk in named if _fits(jwk, alg)]
        if not fitting:
            raise TokenInvalid("signing key does not fit the token's algorithm")
        if len(fitting) > 1:
            raise TokenInvalid("token does not say which signing key (kid) to use")
        try:
            # Bind the key to the header's algorithm (checked above to fit it):
            # pyjwt then verifies with exactly that algorithm.
            key = jwt.PyJWK(fitting[0], algorithm=alg)
        except jwt.PyJWTError:
            raise TokenInvalid("signing key in the key set is unusable") from None
        self._built[(kid, alg)] = key
        return key

    async def _refresh(self) -> None:
        async with self._lock:
            # Callers that queued behind a fetch find it done and do not repeat it.
            if not self._refetch_allowed():
                return
            self._attempted_at = self._clock()
            try:
                keys = await self._fetch()
            except _FetchFailed as failure:
                self._last_fetch_failed = True
                log.warning("JWKS fetch from %s failed: %s", self.url, failure)
                return
            self._keys, self._built = keys, {}
            self._fetched_at = self._clock()
            self._last_fetch_failed = False
            log.info("JWKS fetched from %s: %d signing key(s)", self.url, len(keys))

    async def _fetch(self) -> list[dict[str, Any]]:
        if self._http is None:
            self._http = httpx.AsyncClient()
        try:
            async with self._http.stream(
                "GET", self.url, timeout=self._timeout, headers={"Accept": "application/json"}
            ) as response:
                if response.status_code != 200:
                    raise _FetchFailed(f"HTTP status {response.status_code}")
                body = await _read_capped(response, MAX_JWKS_BYTES)
        except (httpx.HTTPError, httpx.InvalidURL) as error:
            raise _FetchFailed(type(error).__name__) from None
        return _signing_keys(body)


async def _read_capped(response: httpx.Response, limit: int) -> bytes:
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > limit:
            raise _FetchFailed(f"response larger than {limit} bytes")
    return bytes(body)


def _signing_keys(body: bytes) -> list[dict[str, Any]]:
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        raise _FetchFailed("response is not JSON") from None
    keys = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(keys, list):
        raise _FetchFailed("response has no 'keys' list")
    return [
        jwk
        for jwk in keys
        if isinstance(jwk, dict)
        and jwk.get("use", "sig") == "sig"
        and isinstance(jwk.get("kid", ""), str)
    ]


def _fits(jwk: dict[str, Any], alg: str) -> bool:
    kty, crv = KEY_TYPE_FOR_ALGORITHM[alg]
    if jwk.get("kty") != kty:
        return False
    if crv is not None and jwk.get("crv") != crv:
        return False
    # A key that names its algorithm is good for that one only.
    return jwk.get("alg", alg) == alg
