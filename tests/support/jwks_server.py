"""A tiny real JWKS endpoint on 127.0.0.1, and signing keys to mint tokens with.

    from tests.support.jwks_server import SigningKey, jwks_server  # noqa: F401 (fixture)

    def test_x(jwks_server):
        key = SigningKey.rsa("k1")
        jwks_server.publish(key)
        token = key.sign({"iss": ..., "sub": ...})
        ... JwksCache(jwks_server.url) ...
        assert jwks_server.request_count == 1

The server answers every GET (any path) with the current JWKS and counts it, so
it also serves as an "attacker" server that must never be contacted.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

JWKS_PATH = "/.well-known/jwks.json"
DROP = object()  # token_claims(sub=DROP), key.sign(..., kid=DROP): leave it out


def token_claims(issuer: str, audience: Any, **overrides: Any) -> dict[str, Any]:
    """Claims of a token valid for the next five minutes, with `overrides` applied."""
    now = int(time.time())
    claims = {"iss": issuer, "aud": audience, "sub": "user-1", "iat": now, "exp": now + 300}
    claims.update(overrides)
    return {name: value for name, value in claims.items() if value is not DROP}


@dataclass
class SigningKey:
    """A private key with its `kid` and algorithm; publishes its public JWK."""

    kid: str
    alg: str
    private_key: Any

    @classmethod
    def rsa(cls, kid: str, alg: str = "RS256", bits: int = 2048) -> SigningKey:
        return cls(kid, alg, rsa.generate_private_key(public_exponent=65537, key_size=bits))

    @classmethod
    def ec(cls, kid: str, alg: str = "ES256") -> SigningKey:
        curve = {"ES256": ec.SECP256R1, "ES384": ec.SECP384R1, "ES512": ec.SECP521R1}[alg]
        return cls(kid, alg, ec.generate_private_key(curve()))

    def public_jwk(self, *, with_alg: bool = True) -> dict[str, Any]:
        codec = RSAAlgorithm if isinstance(self.private_key, rsa.RSAPrivateKey) else ECAlgorithm
        jwk: dict[str, Any] = codec.to_jwk(self.private_key.public_key(), as_dict=True)
        jwk.update(kid=self.kid, use="sig")
        if with_alg:
            jwk["alg"] = self.alg
        return jwk

    def sign(self, claims: dict[str, Any], *, alg: str | None = None, **headers: Any) -> str:
        """A token over `claims`; `headers` are added to (or override, or DROP) the JOSE header."""
        headers = {name: v for name, v in {"kid": self.kid, **headers}.items() if v is not DROP}
        return jwt.encode(claims, self.private_key, algorithm=alg or self.alg, headers=headers)


@dataclass
class JwksServer:
    """Serves `jwks` at `url`; `status`, `body` and `delay` simulate a failing IdP."""

    jwks: dict[str, Any] = field(default_factory=lambda: {"keys": []})
    status: int = 200
    body: bytes | None = None  # served instead of the JWKS when set
    delay: float = 0.0
    paths: list[str] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def base_url(self) -> str:
        assert self._server is not None, "server not started"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def url(self) -> str:
        return self.base_url + JWKS_PATH

    @property
    def request_count(self) -> int:
        with self._lock:
            return len(self.paths)

    def publish(self, *keys: SigningKey, with_alg: bool = True) -> None:
        self.jwks = {"keys": [key.public_jwk(with_alg=with_alg) for key in keys]}

    def start(self) -> JwksServer:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            assert self._thread is not None
            self._thread.join(timeout=5)
            self._server = None

    def __enter__(self) -> JwksServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _answer(self, path: str) -> tuple[int, bytes]:
        with self._lock:
            self.paths.append(path)
        if self.delay:
            time.sleep(self.delay)
        body = self.body if self.body is not None else json.dumps(self.jwks).encode()
        return self.status, body


def _handler_for(server: JwksServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status, body = server._answer(self.path)
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def jwks_server() -> Iterator[JwksServer]:
    with JwksServer() as server:
        yield server
