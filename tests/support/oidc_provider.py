"""A real OpenID Connect provider (panva's `oidc-provider`, run with node) for tests.

    from tests.support.oidc_provider import oidc_provider  # noqa: F401  (the pytest fixture)

    def test_x(oidc_provider):
        client = oidc_provider.add_client("gateway", redirect_uris=["http://127.0.0.1:8080/oauth/callback"])
        ... log in at oidc_provider.authorize_url as alice (tests.support.headless) ...
        oidc_provider.set_groups("alice", ["mcp-user"])  # seen on the next refresh-token grant

The provider (`tests/oidc/provider.mjs`) listens on 127.0.0.1 with the issuer
`http://127.0.0.1:PORT`, requires PKCE (S256), issues refresh tokens to every client allowed
the `refresh_token` grant, supports revocation, introspection, client_credentials and RFC 9207
(`iss` in the authorization response), and logs people in with a plain username/password form
(consent is granted without a page). ID tokens and userinfo carry `groups`, `email` and
`preferred_username`; `sub` is the username. Users and clients live in JSON files the provider
re-reads on use, so `set_groups`, `remove_user` and `add_client` take effect at once.

A client given an `access_token_audience` gets JWT access tokens (RFC 9068, `typ: at+jwt`) with
that `aud`, `client_id`, `scope` (limited to its `access_token_scope`) and, for client_credentials,
`sub` = client_id and `groups` = its `access_token_groups`; `access_token_ttl` shortens their lifetime.
Clients may also register dynamically (RFC 7591, `registration_endpoint`); such a client gets JWT
access tokens for the http(s) `resource` it asks for.
"""

from __future__ import annotations

import functools
import json
import os
import secrets
import shutil
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from tests.support.processes import Process, free_port

OIDC_DIR = Path(__file__).resolve().parents[1] / "oidc"
PROVIDER_SCRIPT = OIDC_DIR / "provider.mjs"
_START_TIMEOUT = 15.0
_STOP_TIMEOUT = 5.0
_NPM_HINT = "the test OIDC provider's node modules are missing: run `npm ci --prefix tests/oidc`"
_NODE_HINT = "node is not installed (Node.js 20.19+ or 22+ is needed for tests/oidc/provider.mjs)"

DEFAULT_USERS: dict[str, dict[str, Any]] = {
    "alice": {"password": "alice-password", "email": "alice@example.test", "groups": ["mcp-admin"]},
    "bob": {"password": "bob-password", "email": "bob@example.test", "groups": ["mcp-user"]},
    "carol": {"password": "carol-password", "email": "carol@example.test", "groups": []},
}
DEFAULT_REDIRECT_URI = "http://127.0.0.1:9/callback"  # never followed: tests stop at it
DEFAULT_AGENT_AUDIENCE = "http://127.0.0.1/mcp-gateway"


@functools.cache
def _signing_jwk() -> dict[str, Any]:
    """One RSA key for every provider of the test run: generating one per start is slow."""
    jwk = RSAAlgorithm.to_jwk(rsa.generate_private_key(public_exponent=65537, key_size=2048), as_dict=True)
    return {**jwk, "kid": secrets.token_urlsafe(8), "alg": "RS256", "use": "sig"}


def _write_json_atomically(path: Path, value: Any) -> None:
    # The provider reads these files while a test rewrites them: never let it see half a file.
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(value, indent=2))
    os.replace(partial, path)


@dataclass(frozen=True)
class IdpClient:
    """A client registered at the provider, with what a test needs to use it."""

    client_id: str
    client_secret: str
    redirect_uris: tuple[str, ...] = ()
    grant_types: tuple[str, ...] = ("authorization_code", "refresh_token")
    token_endpoint_auth_method: str = "client_secret_basic"
    access_token_audience: str | None = None
    access_token_scope: str | None = None
    access_token_groups: tuple[str, ...] | None = None
    access_token_ttl: int | None = None

    @property
    def basic_auth(self) -> tuple[str, str]:
        return (self.client_id, self.client_secret)

    def metadata(self) -> dict[str, Any]:
        response_types = ["code"] if "authorization_code" in self.grant_types else []
        metadata: dict[str, Any] = {
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "redirect_uris": list(self.redirect_uris),
            "grant_types": list(self.grant_types),
            "response_types": response_types,
            "token_endpoint_auth_method": self.token_endpoint_auth_method,
        }
        extras = {
            "access_token_audience": self.access_token_audience,
            "access_token_scope": self.access_token_scope,
            "access_token_groups": list(self.access_token_groups) if self.access_token_groups is not None else None,
            "access_token_ttl": self.access_token_ttl,
        }
        metadata.update({name: value for name, value in extras.items() if value is not None})
        return metadata


def default_clients() -> list[IdpClient]:
    """`test-rp`, a web client (code + refresh), and `agent`, a client_credentials client."""
    return [
        IdpClient("test-rp", secrets.token_urlsafe(32), redirect_uris=(DEFAULT_REDIRECT_URI,)),
        IdpClient(
            "agent",
            secrets.token_urlsafe(32),
            grant_types=("client_credentials",),
            access_token_audience=DEFAULT_AGENT_AUDIENCE,
            access_token_scope="mcp:registry:read",
            access_token_groups=("mcp-user",),
        ),
    ]


@dataclass
class OidcProvider:
    """One `node tests/oidc/provider.mjs` process and the files it reads."""

    directory: Path
    users: dict[str, dict[str, Any]] = field(default_factory=lambda: json.loads(json.dumps(DEFAULT_USERS)))
    clients: dict[str, IdpClient] = field(default_factory=dict)
    port: int = 0
    metadata: dict[str, Any] = field(default_factory=dict)
    process: Process | None = None

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def discovery_url(self) -> str:
        return f"{self.issuer}/.well-known/openid-configuration"

    @property
    def jwks_url(self) -> str:
        return self.metadata["jwks_uri"]

    @property
    def authorize_url(self) -> str:
        return self.metadata["authorization_endpoint"]

    @property
    def token_url(self) -> str:
        return self.metadata["token_endpoint"]

    @property
    def userinfo_url(self) -> str:
        return self.metadata["userinfo_endpoint"]

    @property
    def revocation_url(self) -> str:
        return self.metadata["revocation_endpoint"]

    @property
    def introspection_url(self) -> str:
        return self.metadata["introspection_endpoint"]

    @property
    def users_file(self) -> Path:
        return self.directory / "users.json"

    @property
    def clients_file(self) -> Path:
        return self.directory / "clients.json"

    @property
    def signing_key_file(self) -> Path:
        return self.directory / "signing-key.json"

    @property
    def log_file(self) -> Path:
        return self.directory / "provider.log"

    # --- users and clients: written to the files the running provider re-reads ---

    def add_user(self, username: str, password: str, *, email: str | None = None,
                 groups: Iterable[str] = ()) -> None:
        self.users[username] = {"password": password, "email": email or f"{username}@example.test",
                                "groups": list(groups)}
        self._write_users()

    def set_groups(self, username: str, groups: Iterable[str]) -> None:
        self.users[username]["groups"] = list(groups)
        self._write_users()

    def remove_user(self, username: str) -> None:
        """The user is gone at the IdP: logins and refresh-token grants for them fail."""
        del self.users[username]
        self._write_users()

    def add_client(self, client_id: str, *, client_secret: str | None = None,
                   redirect_uris: Iterable[str] = (),
                   grant_types: Iterable[str] = ("authorization_code", "refresh_token"),
                   token_endpoint_auth_method: str = "client_secret_basic",
                   access_token_audience: str | None = None, access_token_scope: str | None = None,
                   access_token_groups: Iterable[str] | None = None,
                   access_token_ttl: int | None = None) -> IdpClient:
        client = IdpClient(
            client_id,
            client_secret or secrets.token_urlsafe(32),
            redirect_uris=tuple(redirect_uris),
            grant_types=tuple(grant_types),
            token_endpoint_auth_method=token_endpoint_auth_method,
            access_token_audience=access_token_audience,
            access_token_scope=access_token_scope,
            access_token_groups=tuple(access_token_groups) if access_token_groups is not None else None,
            access_token_ttl=access_token_ttl,
        )
        self.clients[client_id] = client
        self._write_clients()
        return client

    def client(self, client_id: str) -> IdpClient:
        return self.clients[client_id]

    def _write_users(self) -> None:
        _write_json_atomically(self.users_file, self.users)

    def _write_clients(self) -> None:
        _write_json_atomically(self.clients_file, [client.metadata() for client in self.clients.values()])

    # --- what the provider saw ---

    def stats(self) -> dict[str, int]:
        return httpx.get(f"{self.issuer}/test/stats", timeout=5, trust_env=False).raise_for_status().json()

    @property
    def jwks_request_count(self) -> int:
        return self.stats()["jwks_requests"]

    @property
    def token_request_count(self) -> int:
        return self.stats()["token_requests"]

    def log_text(self) -> str:
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""

    # --- the process ---

    def start(self) -> OidcProvider:
        node = shutil.which("node")
        if node is None:
            pytest.fail(_NODE_HINT, pytrace=False)
        if not (OIDC_DIR / "node_modules" / "oidc-provider" / "package.json").exists():
            pytest.fail(_NPM_HINT, pytrace=False)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._write_users()
        self._write_clients()
        _write_json_atomically(self.signing_key_file, _signing_jwk())
        for _ in range(3):  # the free port can be taken between picking and binding it
            self.port = free_port()
            env = {"OIDC_PORT": str(self.port), "OIDC_USERS_FILE": str(self.users_file),
                   "OIDC_CLIENTS_FILE": str(self.clients_file), "OIDC_SIGNING_KEY_FILE": str(self.signing_key_file)}
            self.process = Process([node, str(PROVIDER_SCRIPT)], self.log_file, env=env, cwd=OIDC_DIR)
            if self._wait_ready():
                return self
            self.stop()
        raise RuntimeError(f"oidc-provider did not start; its log ends with:\n{self.log_text()[-3000:]}")

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + _START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process is None or self.process.proc.poll() is not None:
                return False
            try:
                response = httpx.get(self.discovery_url, timeout=1, trust_env=False)
            except httpx.TransportError:
                time.sleep(0.05)
                continue
            if response.status_code == 200:
                self.metadata = response.json()
                return True
            time.sleep(0.05)
        return False

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop(timeout=_STOP_TIMEOUT)
            self.process = None


@contextmanager
def running_oidc_provider(directory: Path, *, users: Mapping[str, Mapping[str, Any]] | None = None,
                          clients: Iterable[IdpClient] | None = None) -> Iterator[OidcProvider]:
    """A started provider with `users` (default: alice, bob, carol) and `clients`
    (default: `test-rp` and `agent`, see `default_clients`); stopped on exit."""
    provider = OidcProvider(Path(directory))
    if users is not None:
        provider.users = {name: dict(user) for name, user in users.items()}
    provider.clients = {client.client_id: client for client in (default_clients() if clients is None else clients)}
    provider.start()
    try:
        yield provider
    finally:
        provider.stop()


@pytest.fixture
def oidc_provider(tmp_path: Path) -> Iterator[OidcProvider]:
    """A fresh oidc-provider for one test, with the default users and clients."""
    with running_oidc_provider(tmp_path / "oidc-provider") as provider:
        yield provider
