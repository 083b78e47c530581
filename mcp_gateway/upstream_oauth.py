"""OAuth 2.1 with the authorization server of the service behind a server, as a client.

One `UpstreamOAuth` per server with `[servers.upstream_oauth]`: it finds the endpoints
(configured; the issuer's RFC 8414 / OIDC discovery document; or, for an upstream MCP server
that protects itself per the MCP authorization spec, its 401 → protected-resource metadata
(RFC 9728) → authorization server), registers the gateway there when no client id is
configured (RFC 7591, the registration kept sealed in the session store), builds the
authorization request (PKCE S256, RFC 8707 `resource`), redeems codes and refreshes tokens.
All network calls are async httpx: the proxy's event loop never blocks.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import httpx

from .config import ServerConfig
from .credentials import CredentialProblem
from .pkce import s256_challenge
from .secretbox import SecretBox, SecretBoxError
from .sessions import SessionStore
from .upstream_oauth_config import UpstreamOAuthSettings
from .upstream_token_answer import UnusableTokenAnswer, checked_token, checked_token_type, expires_in_seconds

log = logging.getLogger(__name__)

HTTP_TIMEOUT = 10.0
MAX_ANSWER_BYTES = 1024 * 1024
REGISTRATION_KEPT_FOR = 365 * 24 * 3600.0
_RESOURCE_METADATA = "resource_metadata="


class UpstreamOAuthError(Exception):
    """The service's authorization server is unreachable, misconfigured or answered nonsense."""


# RFC 6749 §5.2: what a token endpoint answers when asking again cannot help (a refresh token it
# will not take, a client it does not know, a scope or grant type it refuses, a request it cannot
# read). Anything else (5xx, 429, no answer) may pass: the current token is used while it lasts.
REFUSALS = ("invalid_grant", "invalid_client", "unauthorized_client", "invalid_scope", "unsupported_grant_type",
            "invalid_request")


class GrantRefused(UpstreamOAuthError):
    """The authorization server refused a code or refresh token (`invalid_grant`, ...): it is dead."""


@dataclass(frozen=True)
class Endpoints:
    authorization_endpoint: str
    token_endpoint: str
    issuer: str | None = None
    registration_endpoint: str | None = None
    revocation_endpoint: str | None = None
    resource: str | None = None


@dataclass(frozen=True)
class ClientRegistration:
    client_id: str
    client_secret: str | None = None


@dataclass(frozen=True)
class TokenSet:
    """What the vault keeps for one user and one server (sealed at rest, never logged)."""

    access_token: str
    refresh_token: str | None = None
    expires_at: float | None = None
    obtained_at: float = 0.0
    scope: str | None = None
    upstream: str | None = None  # the origin of the server's url when connected: the token goes nowhere else

    def __repr__(self) -> str:
        return f"TokenSet(<hidden>, expires_at={self.expires_at}, scope={self.scope!r}, upstream={self.upstream!r})"

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> TokenSet:
        data = json.loads(text)
        return cls(**{k: data.get(k) for k in ("access_token", "refresh_token", "expires_at", "scope", "upstream")},
                   obtained_at=float(data.get("obtained_at") or 0.0))

    def due_for_refresh(self, now: float) -> bool:
        if self.expires_at is None:
            return False
        margin = min(30.0, max(0.0, self.expires_at - self.obtained_at) / 4)
        return now >= self.expires_at - margin


def connect_url(public_url: str, server: str) -> str:
    return f"{public_url.rstrip('/')}/oauth/upstream/{server}/connect"


def callback_url(public_url: str, server: str) -> str:
    return f"{public_url.rstrip('/')}/oauth/upstream/{server}/callback"


class UpstreamOAuth:
    def __init__(self, server: ServerConfig, public_url: str, store: SessionStore, secretbox: SecretBox,
                 client: httpx.AsyncClient | None = None):
        assert server.upstream_oauth is not None
        self.server = server
        self.settings: UpstreamOAuthSettings = server.upstream_oauth
        self.redirect_uri = callback_url(public_url, server.name)
        self._public_url = public_url
        self._store = store
        self._secretbox = secretbox
        self._http = client or httpx.AsyncClient(timeout=HTTP_TIMEOUT, trust_env=False, follow_redirects=False)
        self._endpoints: Endpoints | None = None
        self._lock = asyncio.Lock()

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- endpoints -------------------------------------------------------------------------

    async def endpoints(self) -> Endpoints:
        if self._endpoints is None:
            async with self._lock:
                if self._endpoints is None:
                    self._endpoints = await self._discover()
        return self._endpoints

    async def _discover(self) -> Endpoints:
        s = self.settings
        if s.authorize_url and s.token_url:
            return Endpoints(s.authorize_url, s.token_url, resource=s.resource)
        if s.issuer:
            return _endpoints_from(await self._authorization_server_metadata(s.issuer), s.resource)
        resource_metadata = await self._protected_resource_metadata()
        servers = resource_metadata.get("authorization_servers")
        if not (isinstance(servers, list) and servers and isinstance(servers[0], str)):
            raise UpstreamOAuthError(f"server {self.server.name}: its protected-resource metadata names no "
                                     "authorization server")
        resource = s.resource or _str_or_none(resource_metadata.get("resource"))
        return _endpoints_from(await self._authorization_server_metadata(servers[0]), resource)

    async def _protected_resource_metadata(self) -> dict[str, Any]:
        """RFC 9728 via the upstream's own 401 (`WWW-Authenticate: Bearer resource_metadata=…`),
        else the well-known URL for the streamable endpoint."""
        endpoint = self.server.url.rstrip("/") + self.server.streamable_path
        probe = {"jsonrpc": "2.0", "id": "mcp-gateway-probe", "method": "ping"}
        candidates: list[str] = []
        try:
            async with self._http.stream("POST", endpoint, json=probe,
                                         headers={"accept": "application/json, text/event-stream"}) as answer:
                candidates += _resource_metadata_urls(answer.headers.get_list("www-authenticate"))  # body unread
        except httpx.HTTPError as e:
            raise UpstreamOAuthError(f"server {self.server.name}: cannot reach it to discover its "
                                     f"authorization server: {type(e).__name__}") from None
        parts = urlsplit(endpoint)
        base, origin = f"{parts.scheme}://{parts.netloc}", url_origin(endpoint)
        candidates += [f"{base}/.well-known/oauth-protected-resource{parts.path.rstrip('/')}",
                       f"{base}/.well-known/oauth-protected-resource"]
        for url in candidates:
            if url_origin(url) != origin:
                # An upstream chooses this URL: never let it make the gateway fetch another host.
                log.warning("server %s: its 401 names protected-resource metadata on another origin; ignored",
                            self.server.name)
                continue
            document = await self._get_json(url)
            if document is None:
                continue
            resource = document.get("resource")
            if not isinstance(resource, str) or url_origin(resource) != origin:
                # RFC 9728 §3.3: metadata for another resource must not be used.
                raise UpstreamOAuthError(f"server {self.server.name}: the protected-resource metadata at {url} "
                                         f"is for {str(resource)[:200]!r}, not for a resource on {origin}")
            return document
        raise UpstreamOAuthError(f"server {self.server.name}: no protected-resource metadata found "
                                 "(configure issuer or authorize_url/token_url)")

    async def _authorization_server_metadata(self, issuer: str) -> dict[str, Any]:
        parts = urlsplit(issuer)
        origin, path = f"{parts.scheme}://{parts.netloc}", parts.path.rstrip("/")
        for url in (f"{origin}/.well-known/oauth-authorization-server{path}",
                    f"{origin}/.well-known/openid-configuration{path}",
                    f"{issuer.rstrip('/')}/.well-known/openid-configuration"):
            document = await self._get_json(url)
            if document is None:
                continue
            if document.get("issuer") != issuer:
                raise UpstreamOAuthError(f"server {self.server.name}: the metadata at {url} is for issuer "
                                         f"{document.get('issuer')!r}, not {issuer!r}")
            return document
        raise UpstreamOAuthError(f"server {self.server.name}: no authorization-server metadata for {issuer}")

    async def _get_json(self, url: str) -> dict[str, Any] | None:
        status, document = await self._exchange("GET", url)
        return document if status == 200 and isinstance(document, dict) else None

    async def _exchange(self, method: str, url: str, **kwargs: Any) -> tuple[int, Any]:
        """The status and the JSON answer (None when not JSON), read up to MAX_ANSWER_BYTES:
        these servers may be chosen by an upstream, and a larger answer is refused unread."""
        try:
            async with self._http.stream(method, url, headers={"accept": "application/json"}, **kwargs) as response:
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > MAX_ANSWER_BYTES:
                        raise UpstreamOAuthError(f"server {self.server.name}: {url} answered more than "
                                                 f"{MAX_ANSWER_BYTES} bytes")
        except httpx.HTTPError as e:
            raise UpstreamOAuthError(f"server {self.server.name}: {url}: {type(e).__name__}") from None
        try:
            return response.status_code, json.loads(bytes(body))
        except ValueError:
            return response.status_code, None

    # -- the gateway as a client -----------------------------------------------------------

    async def registration(self) -> ClientRegistration:
        s = self.settings
        if s.client_id:
            try:
                return ClientRegistration(s.client_id, s.client_secret())
            except CredentialProblem as e:
                raise UpstreamOAuthError(f"server {self.server.name}: client secret unavailable: {e}") from None
        endpoints = await self.endpoints()
        key = f"upstream-client:{self.server.name}:{endpoints.token_endpoint}:{self.redirect_uri}"
        stored = await self._store.get_value(key)
        if stored is not None:
            try:
                return ClientRegistration(**json.loads(self._secretbox.decrypt(stored, context=key)))
            except (SecretBoxError, ValueError, TypeError):
                log.warning("server %s: the stored client registration does not open; registering again",
                            self.server.name)
        registration = await self._register(endpoints)
        await self._store.put(key, self._secretbox.encrypt(json.dumps(asdict(registration)), context=key),
                              REGISTRATION_KEPT_FOR)
        return registration

    async def _register(self, endpoints: Endpoints) -> ClientRegistration:
        if not endpoints.registration_endpoint:
            raise UpstreamOAuthError(f"server {self.server.name}: no client_id configured and its authorization "
                                     "server offers no dynamic client registration")
        metadata = {
            "client_name": f"MCP Gateway ({self._public_url})", "redirect_uris": [self.redirect_uri],
            "grant_types": ["authorization_code", "refresh_token"], "response_types": ["code"],
            "token_endpoint_auth_method": "client_secret_basic",
        }
        if self.settings.scopes:
            metadata["scope"] = " ".join(self.settings.scopes)
        document = await self._post(endpoints.registration_endpoint, json_body=metadata, expect=(200, 201))
        client_id = document.get("client_id")
        if not isinstance(client_id, str) or not client_id:
            raise UpstreamOAuthError(f"server {self.server.name}: the registration answer has no client_id")
        log.info("server %s: registered the gateway as OAuth client %s at %s", self.server.name, client_id,
                 endpoints.registration_endpoint)
        return ClientRegistration(client_id, _str_or_none(document.get("client_secret")))

    async def authorization_request(self, state: str) -> tuple[str, str]:
        """The URL to send the person to, and the PKCE verifier to keep for the callback."""
        endpoints = await self.endpoints()
        client = await self.registration()
        verifier = secrets.token_urlsafe(48)
        params = {"response_type": "code", "client_id": client.client_id, "redirect_uri": self.redirect_uri,
                  "state": state, "code_challenge": s256_challenge(verifier),
                  "code_challenge_method": "S256"}
        if self.settings.scopes:
            params["scope"] = " ".join(self.settings.scopes)
        if endpoints.resource:
            params["resource"] = endpoints.resource
        separator = "&" if "?" in endpoints.authorization_endpoint else "?"
        return endpoints.authorization_endpoint + separator + urlencode(params), verifier

    async def redeem(self, code: str, verifier: str) -> TokenSet:
        return await self._token_request({"grant_type": "authorization_code", "code": code,
                                          "redirect_uri": self.redirect_uri, "code_verifier": verifier}, None)

    async def refresh(self, tokens: TokenSet) -> TokenSet:
        assert tokens.refresh_token
        return await self._token_request({"grant_type": "refresh_token", "refresh_token": tokens.refresh_token},
                                         tokens.refresh_token)

    async def revoke(self, tokens: TokenSet) -> None:
        """Best effort (RFC 7009); the gateway forgets the tokens whatever the answer."""
        endpoints = await self.endpoints()
        if not endpoints.revocation_endpoint:
            return
        client = await self.registration()
        for token, hint in ((tokens.refresh_token, "refresh_token"), (tokens.access_token, "access_token")):
            if token:
                try:
                    await self._http.post(endpoints.revocation_endpoint, data=_with_client(
                        {"token": token, "token_type_hint": hint}, client), auth=_basic(client))
                except httpx.HTTPError as e:
                    log.warning("server %s: token revocation failed: %s", self.server.name, type(e).__name__)

    async def _token_request(self, form: dict[str, str], old_refresh: str | None) -> TokenSet:
        endpoints = await self.endpoints()
        client = await self.registration()
        if endpoints.resource:
            form["resource"] = endpoints.resource
        document = await self._post(endpoints.token_endpoint, form=_with_client(form, client), auth=_basic(client))
        try:
            access = checked_token(document.get("access_token"), "access_token")
            refresh = document.get("refresh_token") or old_refresh
            checked_token_type(document.get("token_type"))
            expires_in = expires_in_seconds(document.get("expires_in"))
            now = time.time()
            return TokenSet(
                access_token=access, refresh_token=checked_token(refresh, "refresh_token") if refresh else None,
                expires_at=now + expires_in if expires_in is not None else None,
                obtained_at=now, scope=_str_or_none(document.get("scope")), upstream=url_origin(self.server.url),
            )
        except UnusableTokenAnswer as e:
            raise UpstreamOAuthError(f"server {self.server.name}: unusable token answer: {e}") from None

    async def _post(self, url: str, *, form: dict[str, str] | None = None, json_body: Any = None,
                    auth: httpx.BasicAuth | None = None, expect: tuple[int, ...] = (200,)) -> dict[str, Any]:
        status, document = await self._exchange("POST", url, data=form, json=json_body, auth=auth)
        if status in expect and isinstance(document, dict):
            return document
        error = document.get("error") if isinstance(document, dict) else None
        if status in (400, 401) and error in REFUSALS:
            raise GrantRefused(f"server {self.server.name}: the authorization server refused: {error}")
        raise UpstreamOAuthError(f"server {self.server.name}: {url} answered {status}"
                                 f"{f' ({error})' if isinstance(error, str) else ''}")


def _endpoints_from(document: dict[str, Any], resource: str | None) -> Endpoints:
    authorize, token = document.get("authorization_endpoint"), document.get("token_endpoint")
    if not (isinstance(authorize, str) and isinstance(token, str)):
        raise UpstreamOAuthError("the authorization-server metadata lacks authorization_endpoint or token_endpoint")
    endpoints = Endpoints(authorize, token, issuer=_str_or_none(document.get("issuer")),
                          registration_endpoint=_str_or_none(document.get("registration_endpoint")),
                          revocation_endpoint=_str_or_none(document.get("revocation_endpoint")), resource=resource)
    # The browser is sent to the first, the gateway posts tokens and secrets to the others: each
    # must be a plain http(s) URL (no javascript:, data:, file:, user info or fragment).
    for name in ("authorization_endpoint", "token_endpoint", "registration_endpoint", "revocation_endpoint"):
        url = getattr(endpoints, name)
        if url is not None and not _plain_http_url(url):
            raise UpstreamOAuthError(f"the authorization-server metadata's {name} is not a plain http(s) URL")
    return endpoints


def _plain_http_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        return False
    return (parts.scheme in ("http", "https") and bool(parts.hostname) and parts.username is None
            and parts.password is None and not parts.fragment and url.isascii() and url.isprintable()
            and " " not in url)


def url_origin(url: str) -> str:
    parts = urlsplit(url)
    default = {"http": 80, "https": 443}.get(parts.scheme)
    try:
        port = parts.port or default
    except ValueError:
        return ""
    return f"{parts.scheme}://{(parts.hostname or '').lower()}:{port}"


def _resource_metadata_urls(challenges: list[str]) -> list[str]:
    urls = []
    for challenge in challenges:
        at = challenge.find(_RESOURCE_METADATA)
        if at < 0:
            continue
        value = challenge[at + len(_RESOURCE_METADATA):].strip()
        value = value[1:].split('"', 1)[0] if value.startswith('"') else value.split(",", 1)[0].strip()
        if value.startswith(("http://", "https://")):
            urls.append(value)
    return urls


def _with_client(form: dict[str, str], client: ClientRegistration) -> dict[str, str]:
    return form if client.client_secret else {**form, "client_id": client.client_id}


def _basic(client: ClientRegistration) -> httpx.BasicAuth | None:
    # RFC 6749 §2.3.1: id and secret are form-urlencoded before they go into Basic.
    if not client.client_secret:
        return None
    return httpx.BasicAuth(quote(client.client_id, safe=""), quote(client.client_secret, safe=""))


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
