"""MCP clients registered with the authorization-server facade (RFC 7591), kept in the shared store.

Registration is open (any MCP client may register), so what a client declares is checked
and kept small: redirect URIs are https, or http on a loopback host (RFC 8252 §7.3) — no
fragment, no credentials, printable ASCII only; only the authorization-code grant (with
refresh tokens) and the `code` response type. A client's name is its own claim: the consent
page shows it beside the redirect URI, which is what really identifies where codes go.

Redirect URIs are matched exactly, except the port of a loopback one: native apps pick a
free port each time (RFC 8252 §7.3).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from urllib.parse import urlsplit

from .oauth_errors import OAuthError
from .sessions import SessionStore

log = logging.getLogger(__name__)

AUTH_METHODS = ("none", "client_secret_basic", "client_secret_post")
DEFAULT_AUTH_METHOD = "client_secret_basic"  # RFC 7591 §2
GRANT_TYPES = ("authorization_code", "refresh_token")
LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")
MAX_REDIRECT_URIS = 10
MAX_URI_LENGTH = 2000
MAX_NAME_LENGTH = 100
MAX_SCOPE_LENGTH = 1000
CLIENT_TTL = 180 * 24 * 3600.0  # renewed whenever the client obtains a code
_CLIENT_ID = re.compile(r"[A-Za-z0-9_-]{16,64}")
_PRINTABLE = re.compile(r"[\x21-\x7e]+")


class ClientMetadataError(OAuthError):
    """Registration refused (invalid_redirect_uri or invalid_client_metadata)."""


@dataclass(frozen=True)
class OAuthClient:
    client_id: str
    redirect_uris: tuple[str, ...]
    token_endpoint_auth_method: str
    grant_types: tuple[str, ...]
    client_name: str | None = None
    scope: str | None = None
    client_id_issued_at: int = 0
    secret_hash: str | None = None  # sha256 of the (256-bit random) secret; the secret itself is shown once

    @property
    def display_name(self) -> str:
        return self.client_name or "Unnamed client"

    @property
    def is_public(self) -> bool:
        return self.token_endpoint_auth_method == "none"

    @property
    def may_refresh(self) -> bool:
        return "refresh_token" in self.grant_types

    def secret_matches(self, secret: str) -> bool:
        if self.secret_hash is None:
            return False
        return hmac.compare_digest(_hash(secret), self.secret_hash)

    def registered_redirect_uri(self, requested: str | None) -> str | None:
        """The redirect URI to use for `requested` (None: the only one registered), or None if it is not registered."""
        if requested is None:
            return self.redirect_uris[0] if len(self.redirect_uris) == 1 else None
        return requested if any(redirect_uri_matches(r, requested) for r in self.redirect_uris) else None

    def registration_response(self, secret: str | None = None) -> dict[str, object]:
        """The RFC 7591 §3.2.1 answer: what was registered (the secret only when just issued)."""
        body: dict[str, object] = {
            "client_id": self.client_id,
            "client_id_issued_at": self.client_id_issued_at,
            "redirect_uris": list(self.redirect_uris),
            "token_endpoint_auth_method": self.token_endpoint_auth_method,
            "grant_types": list(self.grant_types),
            "response_types": ["code"],
        }
        if self.client_name is not None:
            body["client_name"] = self.client_name
        if self.scope is not None:
            body["scope"] = self.scope
        if secret is not None:
            body["client_secret"] = secret
            body["client_secret_expires_at"] = 0
        return body


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


# -- redirect URIs ---------------------------------------------------------------------------


def _loopback_http(parts) -> bool:
    return parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS


def redirect_uri_problem(uri: object) -> str | None:
    """Why `uri` may not be registered as a redirect URI; None when it may."""
    if not isinstance(uri, str) or not uri:
        return "a redirect URI must be a non-empty string"
    if len(uri) > MAX_URI_LENGTH or not _PRINTABLE.fullmatch(uri) or "\\" in uri:
        return "a redirect URI must be printable ASCII without spaces or backslashes, at most 2000 characters"
    try:
        parts = urlsplit(uri)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        return f"malformed redirect URI {uri!r}"
    if parts.fragment or "#" in uri:
        return "a redirect URI must not contain a fragment"
    if parts.username is not None or parts.password is not None:
        return "a redirect URI must not contain credentials"
    if not parts.hostname:
        return f"a redirect URI needs a host: {uri!r}"
    if parts.port == 0:
        return f"a redirect URI's port must be 1-65535: {uri!r}"
    if parts.scheme == "https" or _loopback_http(parts):
        return None
    return f"redirect URI {uri!r} refused: use https, or http on a loopback host (127.0.0.1, [::1], localhost)"


def redirect_uri_matches(registered: str, requested: str) -> bool:
    """Exact string match; for loopback http URIs any port (RFC 8252 §7.3), everything else exact."""
    if registered == requested:
        return True
    if redirect_uri_problem(requested) is not None:
        return False
    a, b = urlsplit(registered), urlsplit(requested)
    if not (_loopback_http(a) and _loopback_http(b)):
        return False
    return (a.hostname, a.path, a.query) == (b.hostname, b.path, b.query)


# -- registration ----------------------------------------------------------------------------


def parse_registration(metadata: object) -> tuple[OAuthClient, str | None]:
    """A new client from RFC 7591 client metadata, and its secret (None for a public client)."""
    if not isinstance(metadata, Mapping):
        raise ClientMetadataError("invalid_client_metadata", "the registration body must be a JSON object")
    uris = metadata.get("redirect_uris")
    if not isinstance(uris, list) or not uris:
        raise ClientMetadataError("invalid_redirect_uri", "redirect_uris must be a non-empty list")
    if len(uris) > MAX_REDIRECT_URIS:
        raise ClientMetadataError("invalid_redirect_uri", f"at most {MAX_REDIRECT_URIS} redirect URIs")
    for uri in uris:
        if problem := redirect_uri_problem(uri):
            raise ClientMetadataError("invalid_redirect_uri", problem)
    method = _choice(metadata, "token_endpoint_auth_method", AUTH_METHODS, DEFAULT_AUTH_METHOD)
    grant_types = _list_of(metadata, "grant_types", GRANT_TYPES, ["authorization_code"])
    if "authorization_code" not in grant_types:
        raise ClientMetadataError("invalid_client_metadata", "grant_types must include authorization_code")
    if _list_of(metadata, "response_types", ("code",), ["code"]) != ["code"]:
        raise ClientMetadataError("invalid_client_metadata", "response_types must be [\"code\"]")
    secret = None if method == "none" else secrets.token_urlsafe(32)
    client = OAuthClient(
        client_id=secrets.token_urlsafe(24),
        redirect_uris=tuple(dict.fromkeys(uris)),
        token_endpoint_auth_method=method,
        grant_types=tuple(dict.fromkeys(grant_types)),
        client_name=_text(metadata, "client_name", MAX_NAME_LENGTH),
        scope=_text(metadata, "scope", MAX_SCOPE_LENGTH),
        client_id_issued_at=int(time.time()),
        secret_hash=_hash(secret) if secret else None,
    )
    return client, secret


def _choice(metadata: Mapping, name: str, allowed: tuple[str, ...], default: str) -> str:
    value = metadata.get(name, default)
    if value not in allowed:
        raise ClientMetadataError("invalid_client_metadata", f"{name} must be one of {', '.join(allowed)}")
    return value


def _list_of(metadata: Mapping, name: str, allowed: tuple[str, ...], default: list[str]) -> list[str]:
    value = metadata.get(name, default)
    if not isinstance(value, list) or not value or any(item not in allowed for item in value):
        raise ClientMetadataError("invalid_client_metadata", f"{name} must be a non-empty list of {', '.join(allowed)}")
    return value


def _text(metadata: Mapping, name: str, limit: int) -> str | None:
    value = metadata.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > limit or not value.isprintable():
        raise ClientMetadataError("invalid_client_metadata", f"{name} must be printable text of 1-{limit} characters")
    return value.strip()


# -- the store -------------------------------------------------------------------------------


class ClientRegistry:
    """Registered clients, shared by every login-app instance through the session store."""

    def __init__(self, store: SessionStore, ttl: float = CLIENT_TTL) -> None:
        self.store = store
        self.ttl = ttl

    async def save(self, client: OAuthClient) -> None:
        await self.store.put(_key(client.client_id), json.dumps(asdict(client)), self.ttl)

    async def get(self, client_id: object) -> OAuthClient | None:
        if not isinstance(client_id, str) or not _CLIENT_ID.fullmatch(client_id):
            return None
        raw = await self.store.get_value(_key(client_id))
        if raw is None:
            return None
        try:
            fields = json.loads(raw)
            return OAuthClient(**{**fields, "redirect_uris": tuple(fields["redirect_uris"]),
                                  "grant_types": tuple(fields["grant_types"])})
        except (ValueError, TypeError, KeyError) as e:
            log.warning("oauth client %.8s: stored record unusable, treated as unknown: %s", client_id, e)
            return None


def _key(client_id: str) -> str:
    return f"oauth-client:{client_id}"
