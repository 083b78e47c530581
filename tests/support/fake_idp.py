"""A scriptable OpenID provider on 127.0.0.1, for what a real one never does on request:
forged ID tokens, refused or failing token requests, counted JWKS fetches.

    with FakeIdp() as idp:
        idp.forge = lambda claims: idp.key.sign({**claims, "iss": "https://evil"})
        ... a login through the gateway's login app against idp.issuer ...
        assert idp.jwks_requests == 1

It serves discovery, `authorize` (logs `user` in at once and redirects with code, state and
RFC 9207 `iss`), `token` (client_secret_basic; authorization_code with a real S256 PKCE
check, and refresh_token), `jwks`, `userinfo` and `revoke`. Endpoints are matched by their
last path segment, so `prefix="/oauth2"` makes it look like Cognito's hosted UI. The real
protocol tests run against panva's oidc-provider (tests/support/oidc_provider.py).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from mcp_gateway.config import GatewayConfig, load_config
from tests.support.gateway import TEST_SECRET_KEY, write_config
from tests.support.jwks_server import SigningKey

CLIENT_ID = "gateway"
PUBLIC_URL = "http://gateway.test"  # the gateway's public URL in in-process tests
USERS = {"alice": ["mcp-admin"], "bob": ["mcp-user"], "carol": []}


@functools.cache
def _signing_key() -> SigningKey:
    return SigningKey.rsa("fake-idp-key")  # one per test run: generating RSA keys is slow


@dataclass
class FakeIdp:
    key: SigningKey = field(default_factory=_signing_key)
    client_id: str = CLIENT_ID
    client_secret: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    prefix: str = ""
    user: str = "alice"  # who `authorize` logs in
    groups: dict[str, list[str]] = field(default_factory=lambda: {name: list(g) for name, g in USERS.items()})
    iss_parameter_supported: bool = True
    # Hooks a test sets: the ID token for a set of claims, or the whole token answer (status, body).
    forge: Callable[[dict[str, Any]], str] | None = None
    token_answer: Callable[[dict[str, str]], tuple[int, dict[str, Any]]] | None = None
    token_requests: list[dict[str, str]] = field(default_factory=list)
    revoked: list[str] = field(default_factory=list)
    jwks_requests: int = 0
    _codes: dict[str, dict[str, str]] = field(default_factory=dict)
    _refresh_tokens: dict[str, str] = field(default_factory=dict)  # token -> user
    _access_tokens: dict[str, str] = field(default_factory=dict)
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def base_url(self) -> str:
        assert self._server is not None, "not started"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def issuer(self) -> str:
        return self.base_url + self.prefix

    @property
    def jwks_url(self) -> str:
        return f"{self.issuer}/jwks"

    def discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"{self.issuer}/token",
            "jwks_uri": self.jwks_url,
            "userinfo_endpoint": f"{self.issuer}/userinfo",
            "revocation_endpoint": f"{self.issuer}/revoke",
            "authorization_response_iss_parameter_supported": self.iss_parameter_supported,
            "code_challenge_methods_supported": ["S256"],
        }

    def id_token_claims(self, user: str, **extra: Any) -> dict[str, Any]:
        now = int(time.time())
        return {"iss": self.issuer, "aud": self.client_id, "sub": user, "iat": now, "exp": now + 300,
                "preferred_username": user, "email": f"{user}@example.test", "groups": self.groups[user], **extra}

    def reset(self) -> None:
        """Back to honest answers, with the counters at zero (for a provider shared by several tests)."""
        self.forge = self.token_answer = None
        self.user = "alice"
        self.groups = {name: list(groups) for name, groups in USERS.items()}
        with self._lock:
            self.token_requests.clear()
            self.revoked.clear()

    def start(self) -> FakeIdp:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeIdp:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- endpoints: (status, headers, body) -------------------------------------------------

    def _authorize(self, query: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        code = secrets.token_urlsafe(16)
        with self._lock:
            self._codes[code] = {**query, "user": self.user}
        answer = {"code": code, "state": query.get("state", ""), "iss": self.issuer}
        return 302, {"Location": f"{query['redirect_uri']}?{urlencode(answer)}"}, b""

    def _token(self, form: dict[str, str], authorization: str) -> tuple[int, dict[str, Any]]:
        with self._lock:
            self.token_requests.append(form)
        expected = "Basic " + base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
        if authorization != expected:
            return 401, {"error": "invalid_client"}
        if self.token_answer is not None:
            return self.token_answer(form)
        if form.get("grant_type") == "authorization_code":
            return self._redeem(form)
        if form.get("grant_type") == "refresh_token":
            with self._lock:
                user = self._refresh_tokens.get(form.get("refresh_token", ""))
            if user is None or user not in self.groups:
                return 400, {"error": "invalid_grant", "error_description": "refresh token refused"}
            return 200, self._tokens(user, nonce=None)
        return 400, {"error": "unsupported_grant_type"}

    def _redeem(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        with self._lock:
            grant = self._codes.pop(form.get("code", ""), None)
        if grant is None or grant.get("redirect_uri") != form.get("redirect_uri"):
            return 400, {"error": "invalid_grant", "error_description": "unknown code"}
        challenge = base64.urlsafe_b64encode(hashlib.sha256(form.get("code_verifier", "").encode()).digest())
        challenge_matches = challenge.rstrip(b"=").decode() == grant.get("code_challenge")
        if grant.get("code_challenge_method") != "S256" or not challenge_matches:
            return 400, {"error": "invalid_grant", "error_description": "PKCE verification failed"}
        return 200, self._tokens(grant["user"], nonce=grant.get("nonce"))

    def _tokens(self, user: str, nonce: str | None) -> dict[str, Any]:
        claims = self.id_token_claims(user, **({"nonce": nonce} if nonce else {}))
        refresh, access = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        with self._lock:
            self._refresh_tokens[refresh] = user
            self._access_tokens[access] = user
        id_token = self.forge(claims) if self.forge is not None else self.key.sign(claims)
        return {"access_token": access, "token_type": "Bearer", "expires_in": 300, "id_token": id_token,
                "refresh_token": refresh}

    def _userinfo(self, authorization: str) -> tuple[int, dict[str, Any]]:
        user = self._access_tokens.get(authorization.removeprefix("Bearer "))
        if user is None:
            return 401, {"error": "invalid_token"}
        claims = self.id_token_claims(user)
        return 200, {name: claims[name] for name in ("sub", "preferred_username", "email", "groups")}

    def _answer(self, method: str, path: str, query: dict[str, str], form: dict[str, str],
                authorization: str) -> tuple[int, dict[str, str], bytes]:
        endpoint = path.rstrip("/").rsplit("/", 1)[-1].lower()
        if method == "GET" and path.endswith("/.well-known/openid-configuration"):
            return _json(200, self.discovery())
        if method == "GET" and endpoint == "authorize":
            return self._authorize(query)
        if method == "GET" and endpoint in ("jwks", "keys", "jwks.json"):
            with self._lock:
                self.jwks_requests += 1
            return _json(200, {"keys": [self.key.public_jwk()]})
        if method == "POST" and endpoint == "token":
            return _json(*self._token(form, authorization))
        if method == "GET" and endpoint == "userinfo":
            return _json(*self._userinfo(authorization))
        if method == "POST" and endpoint == "revoke":
            with self._lock:
                self.revoked.append(form.get("token", ""))
            return 200, {}, b""
        return _json(404, {"error": "not_found"})


def provider_config(directory: Path, env: dict[str, str], **auth: Any) -> GatewayConfig:
    """A gateway config (public URL PUBLIC_URL, auth on) with `env` as the environment."""
    path = write_config(directory, 7860, [], auth={"enabled": True, **auth}, gateway={"public_url": PUBLIC_URL})
    return load_config(path, env={"SECRET_KEY": TEST_SECRET_KEY, **env})


def generic_config(directory: Path, issuer: str, client_id: str, client_secret: str) -> GatewayConfig:
    """The generic provider (MCP_AUTH_* variables) for the IdP at `issuer`."""
    return provider_config(directory, {"MCP_AUTH_PROVIDER_TYPE": "generic", "MCP_AUTH_ISSUER": issuer,
                                       "MCP_AUTH_CLIENT_ID": client_id, "MCP_AUTH_CLIENT_SECRET": client_secret})


def _json(status: int, body: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
    return status, {"Content-Type": "application/json"}, json.dumps(body).encode()


def _handler_for(idp: FakeIdp) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self._respond("GET", {})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            self._respond("POST", dict(parse_qsl(self.rfile.read(length).decode())))

        def _respond(self, method: str, form: dict[str, str]) -> None:
            parts = urlsplit(self.path)
            status, headers, body = idp._answer(method, parts.path, dict(parse_qsl(parts.query)), form,
                                                self.headers.get("Authorization", ""))
            self.send_response(status)
            for name, value in {**headers, "Content-Length": str(len(body))}.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler
