"""The identity provider's JWKS endpoint fails, then goes away: bearer JWTs signed with keys the
gateway already holds keep working; a token naming a key it has not seen is refused (never
accepted unchecked, never a hang), and the flood of such tokens costs the IdP at most one request."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.faults.conftest import ADMIN_ENV
from tests.support.gateway import run_gateway, server_entry
from tests.support.jwks_server import JwksServer, SigningKey, token_claims

pytestmark = pytest.mark.timeout(90)

ISSUER = "https://idp.faults.test"
CLIENT_ID = "gateway-client"


def _generic_auth(jwks_url: str) -> dict:
    return {"enabled": True, "provider_type": "generic", "generic": {
        "client_id": CLIENT_ID, "issuer": ISSUER, "jwks_url": jwks_url,
        "authorize_url": f"{ISSUER}/authorize", "token_url": f"{ISSUER}/token"}}


def _status(gw, key: SigningKey) -> int:
    token = key.sign(token_claims(ISSUER, CLIENT_ID, groups=["mcp-admin"]))
    return httpx.get(f"{gw.url}/api/servers", headers={"authorization": f"Bearer {token}"}, timeout=15).status_code


def test_cached_keys_keep_working_and_unknown_keys_are_refused_while_the_jwks_is_down(tmp_path):
    known, unknown = SigningKey.rsa("known"), SigningKey.rsa("rotated-in-later")
    with JwksServer() as jwks:
        jwks.publish(known)
        with run_gateway(tmp_path, [server_entry("x", "http://127.0.0.1:9")], auth=_generic_auth(jwks.url),
                         env={**ADMIN_ENV, "MCP_AUTH_CLIENT_SECRET": "s"}) as gw:
            assert _status(gw, known) == 200
            fetched = jwks.request_count

            jwks.status = 503  # the IdP answers, with errors
            assert _status(gw, known) == 200
            started = time.monotonic()
            assert {_status(gw, SigningKey.rsa(f"random-{i}")) for i in range(10)} <= {401, 503}
            assert time.monotonic() - started < 10
            assert jwks.request_count - fetched <= 1, "unknown kids turned into one IdP request each"

            jwks.stop()  # the IdP is gone
            assert _status(gw, known) == 200
            assert _status(gw, unknown) in (401, 503)
