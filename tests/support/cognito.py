"""moto's Cognito (`cognito-idp`) in server mode on a free loopback port, for Cognito tokens.

    from tests.support.cognito import moto_cognito  # noqa: F401  (the pytest fixture)

    def test_x(moto_cognito):
        pool = moto_cognito.create_pool("staff", groups=["mcp-admin"])
        app = moto_cognito.create_app_client(pool)
        moto_cognito.create_user(pool, "alice", "Alice-passw0rd!", groups=["mcp-admin"])
        tokens = moto_cognito.login(app, "alice", "Alice-passw0rd!")

What moto (5.2) hands out, as `tests/support/test_fixtures_idp.py` checks:

- `iss` is `https://cognito-idp.{region}.amazonaws.com/{pool_id}`, as with real Cognito (not the
  moto endpoint), so the gateway's expected issuer stays the real one and only the JWKS and
  discovery documents are fetched from the emulator (`MCP_AUTH_COGNITO_ENDPOINT_URL`).
- The JWKS is served at `{endpoint}/{pool_id}/.well-known/jwks.json` and discovery at
  `{endpoint}/{pool_id}/.well-known/openid-configuration` (issuer as above, `jwks_uri` on the
  endpoint). Tokens are RS256 with `kid` "dummy", and moto signs every pool's tokens with the
  same key (it ships in moto), serving that JWKS for any pool id, even an unknown one: a token of
  one pool verifies with another pool's JWKS, so only the `iss` check tells pools apart.
- ID token: `token_use` "id", `aud` = app client id, `cognito:username`, `email` when the app
  client may read it, `cognito:groups` (absent when the user is in no group).
- Access token: `token_use` "access", `client_id` (no `aud`), `username`,
  `scope` "aws.cognito.signin.user.admin", `cognito:groups` (absent when in no group).
- A refresh (REFRESH_TOKEN_AUTH) returns new ID and access tokens with the user's groups as
  they are then; the refresh token is not rotated.
- moto has no OAuth2 endpoints (`/oauth2/token`, hosted UI): no client_credentials grant and no
  authorization-code login. `mint_client_credentials_token` signs a token shaped like Cognito's
  client-credentials access token with moto's own key, so it verifies against moto's JWKS.

AWS credentials are dummies passed to the boto3 client, not set in the environment.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import boto3
import httpx
import jwt
import pytest
from jwt.algorithms import RSAAlgorithm
from moto.server import ThreadedMotoServer
from moto.utilities.utils import load_resource

DEFAULT_REGION = "us-east-1"
MOTO_SIGNING_KID = "dummy"  # the kid moto puts on every Cognito token


@dataclass(frozen=True)
class CognitoPool:
    pool_id: str
    region: str
    endpoint_url: str

    @property
    def issuer(self) -> str:
        return f"https://cognito-idp.{self.region}.amazonaws.com/{self.pool_id}"

    @property
    def jwks_url(self) -> str:
        return f"{self.endpoint_url}/{self.pool_id}/.well-known/jwks.json"

    @property
    def discovery_url(self) -> str:
        return f"{self.endpoint_url}/{self.pool_id}/.well-known/openid-configuration"


@dataclass(frozen=True)
class CognitoAppClient:
    pool: CognitoPool
    client_id: str
    client_secret: str | None

    def secret_hash(self, username: str) -> str | None:
        """Cognito's SECRET_HASH: base64(HMAC-SHA256(secret, username + client_id))."""
        if self.client_secret is None:
            return None
        digest = hmac.new(self.client_secret.encode(), (username + self.client_id).encode(), hashlib.sha256)
        return base64.b64encode(digest.digest()).decode()


@dataclass(frozen=True)
class CognitoTokens:
    id_token: str
    access_token: str
    refresh_token: str | None


class MotoCognito:
    """A boto3 `cognito-idp` client on the moto endpoint, with helpers for pools and tokens."""

    def __init__(self, endpoint_url: str, region: str = DEFAULT_REGION) -> None:
        self.endpoint_url = endpoint_url
        self.region = region
        self.client = boto3.client(
            "cognito-idp", region_name=region, endpoint_url=endpoint_url,
            aws_access_key_id="testing", aws_secret_access_key="testing",
        )

    def create_pool(self, name: str, *, groups: Iterable[str] = ()) -> CognitoPool:
        pool_id = self.client.create_user_pool(PoolName=name)["UserPool"]["Id"]
        pool = CognitoPool(pool_id, self.region, self.endpoint_url)
        for group in groups:
            self.client.create_group(UserPoolId=pool_id, GroupName=group)
        return pool

    def create_app_client(self, pool: CognitoPool, name: str = "mcp-gateway", *, generate_secret: bool = True,
                          callback_urls: Iterable[str] = ()) -> CognitoAppClient:
        created = self.client.create_user_pool_client(
            UserPoolId=pool.pool_id, ClientName=name, GenerateSecret=generate_secret,
            ExplicitAuthFlows=["ALLOW_ADMIN_USER_PASSWORD_AUTH", "ALLOW_USER_PASSWORD_AUTH",
                               "ALLOW_REFRESH_TOKEN_AUTH"],
            ReadAttributes=["email"],
            AllowedOAuthFlows=["code"], AllowedOAuthScopes=["openid", "email", "profile"],
            AllowedOAuthFlowsUserPoolClient=True, CallbackURLs=list(callback_urls) or ["http://127.0.0.1/"],
        )["UserPoolClient"]
        return CognitoAppClient(pool, created["ClientId"], created.get("ClientSecret"))

    def create_user(self, pool: CognitoPool, username: str, password: str, *, email: str | None = None,
                    groups: Iterable[str] = ()) -> None:
        email = email or f"{username}@example.test"
        self.client.admin_create_user(
            UserPoolId=pool.pool_id, Username=username, MessageAction="SUPPRESS",
            UserAttributes=[{"Name": "email", "Value": email}, {"Name": "email_verified", "Value": "true"}],
        )
        # A permanent password makes the user CONFIRMED (no NEW_PASSWORD_REQUIRED challenge).
        self.client.admin_set_user_password(UserPoolId=pool.pool_id, Username=username, Password=password,
                                            Permanent=True)
        for group in groups:
            self.client.admin_add_user_to_group(UserPoolId=pool.pool_id, Username=username, GroupName=group)

    def set_groups(self, pool: CognitoPool, username: str, groups: Iterable[str]) -> None:
        wanted = set(groups)
        current = {group["GroupName"] for group in
                   self.client.admin_list_groups_for_user(UserPoolId=pool.pool_id, Username=username)["Groups"]}
        for group in current - wanted:
            self.client.admin_remove_user_from_group(UserPoolId=pool.pool_id, Username=username, GroupName=group)
        for group in wanted - current:
            self.client.admin_add_user_to_group(UserPoolId=pool.pool_id, Username=username, GroupName=group)

    def login(self, app: CognitoAppClient, username: str, password: str) -> CognitoTokens:
        """ADMIN_USER_PASSWORD_AUTH, as a server-side app would log a person in."""
        parameters = {"USERNAME": username, "PASSWORD": password}
        return self._authenticate(app, "ADMIN_USER_PASSWORD_AUTH", parameters, username)

    def refresh(self, app: CognitoAppClient, refresh_token: str, username: str) -> CognitoTokens:
        return self._authenticate(app, "REFRESH_TOKEN_AUTH", {"REFRESH_TOKEN": refresh_token}, username)

    def _authenticate(self, app: CognitoAppClient, flow: str, parameters: dict[str, str],
                      username: str) -> CognitoTokens:
        secret_hash = app.secret_hash(username)
        if secret_hash is not None:
            parameters = {**parameters, "SECRET_HASH": secret_hash}
        answer = self.client.admin_initiate_auth(UserPoolId=app.pool.pool_id, ClientId=app.client_id,
                                                 AuthFlow=flow, AuthParameters=parameters)
        result = answer["AuthenticationResult"]
        return CognitoTokens(result["IdToken"], result["AccessToken"], result.get("RefreshToken"))

    def fetch_jwks(self, pool: CognitoPool) -> dict[str, Any]:
        return httpx.get(pool.jwks_url, timeout=5, trust_env=False).raise_for_status().json()

    def mint_client_credentials_token(self, pool: CognitoPool, client_id: str, scopes: Iterable[str] = (), *,
                                      lifetime: int = 3600, **extra_claims: Any) -> str:
        """An access token shaped like Cognito's client_credentials one, signed with moto's key."""
        now = int(time.time())
        claims = {
            "sub": client_id, "token_use": "access", "scope": " ".join(scopes), "auth_time": now,
            "iss": pool.issuer, "exp": now + lifetime, "iat": now, "version": 2, "jti": str(uuid.uuid4()),
            "client_id": client_id, **extra_claims,
        }
        return jwt.encode(claims, _moto_signing_key(), algorithm="RS256", headers={"kid": MOTO_SIGNING_KID})


def _moto_signing_key() -> Any:
    return RSAAlgorithm.from_jwk(json.dumps(load_resource("cognitoidp/resources/jwks-private.json")))


@contextmanager
def running_moto_cognito(region: str = DEFAULT_REGION) -> Iterator[MotoCognito]:
    """moto in server mode in a thread of this process, on a free 127.0.0.1 port."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint_url = f"http://{host}:{port}"
    try:
        yield MotoCognito(endpoint_url, region)
    finally:
        # moto's backends are process-wide: leave no pools behind for the next test.
        httpx.post(f"{endpoint_url}/moto-api/reset", timeout=5, trust_env=False)
        server.stop()
        if server._server is not None:  # stop() shuts the loop down but leaves the socket open
            server._server.server_close()


@pytest.fixture
def moto_cognito() -> Iterator[MotoCognito]:
    """A fresh moto Cognito endpoint for one test."""
    with running_moto_cognito() as cognito:
        yield cognito
