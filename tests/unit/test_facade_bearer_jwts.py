"""IdP bearer JWTs for agents: Cognito client-credentials access tokens (moto's Cognito), and a
generic provider's (a local JWKS), validated and mapped to an Identity the way the proxy does."""

from __future__ import annotations

from pathlib import Path

import pytest

from mcp_gateway.bearer import BearerJwts, BearerUnavailable
from mcp_gateway.config import load_config
from mcp_gateway.providers import clear_discovery_cache
from mcp_gateway.tokens import TokenInvalid
from tests.support.cognito import moto_cognito  # noqa: F401  (fixture)
from tests.support.gateway import TEST_SECRET_KEY, write_config
from tests.support.jwks_server import SigningKey, jwks_server, token_claims  # noqa: F401  (fixture)
from tests.support.processes import free_port

pytestmark = pytest.mark.timeout(30)

AGENT = "agent-app-client"


@pytest.fixture(autouse=True)
def fresh_discovery():
    clear_discovery_cache()
    yield
    clear_discovery_cache()


def config_for(tmp_path: Path, provider_type: str, section: dict, env: dict | None = None):
    path = write_config(tmp_path, 7999, [], auth={"enabled": True, "provider_type": provider_type,
                                                  provider_type: section})
    return load_config(path, env={"SECRET_KEY": TEST_SECRET_KEY, **(env or {})})


@pytest.fixture
def cognito(moto_cognito, tmp_path):  # noqa: F811
    pool = moto_cognito.create_pool("agents")
    app = moto_cognito.create_app_client(pool)

    def configure(**extra):
        section = {"user_pool_id": pool.pool_id, "client_id": app.client_id, "region": pool.region,
                   "endpoint_url": moto_cognito.endpoint_url, **extra}
        return config_for(tmp_path, "cognito", section, {"MCP_AUTH_COGNITO_CLIENT_SECRET": "s"})

    return moto_cognito, pool, app, configure


async def test_a_cognito_client_credentials_token_names_the_agent_its_groups_and_direct_scopes(cognito):
    moto, pool, _, configure = cognito
    bearer = BearerJwts(configure(bearer_audiences=[AGENT]))
    token = moto.mint_client_credentials_token(pool, AGENT, ["mcp:server:currenttime:execute", "other/scope"],
                                               **{"cognito:groups": ["mcp-server-currenttime"]})
    try:
        identity = await bearer.identify(token)
    finally:
        await bearer.aclose()

    assert (identity.kind, identity.provider) == ("bearer", "cognito")
    assert identity.subject == identity.client_id == AGENT
    assert identity.username == AGENT
    assert identity.groups == ("mcp-server-currenttime",)
    assert identity.direct_scopes == ("mcp:server:currenttime:execute",)


async def test_cognito_tokens_of_other_app_clients_and_id_tokens_are_refused(cognito):
    moto, pool, app, configure = cognito
    moto.create_user(pool, "alice", "Alice-passw0rd!")
    id_token = moto.login(app, "alice", "Alice-passw0rd!").id_token
    bearer = BearerJwts(configure(bearer_audiences=[AGENT]))
    try:
        with pytest.raises(TokenInvalid, match="audience"):
            await bearer.identify(moto.mint_client_credentials_token(pool, "someone-else"))
        with pytest.raises(TokenInvalid):
            await bearer.identify(id_token)
    finally:
        await bearer.aclose()


async def test_without_bearer_audiences_the_gateways_own_client_id_is_the_audience(cognito):
    moto, pool, app, configure = cognito
    bearer = BearerJwts(configure())
    try:
        own = await bearer.identify(moto.mint_client_credentials_token(pool, app.client_id))
        assert own.client_id == app.client_id
        with pytest.raises(TokenInvalid, match="audience"):
            await bearer.identify(moto.mint_client_credentials_token(pool, AGENT))
    finally:
        await bearer.aclose()


async def test_a_generic_providers_jwt_reads_groups_from_the_groups_claim(jwks_server, tmp_path):  # noqa: F811
    key = SigningKey.rsa("k1")
    jwks_server.publish(key)
    issuer = "https://idp.example"
    config = config_for(tmp_path, "generic", {"client_id": "gateway", "issuer": issuer, "jwks_url": jwks_server.url,
                                               "authorize_url": f"{issuer}/a", "token_url": f"{issuer}/t",
                                               "bearer_audiences": ["api://mcp"]}, {"MCP_AUTH_CLIENT_SECRET": "s"})
    bearer = BearerJwts(config)
    try:
        claims = token_claims(issuer, "api://mcp", groups=["mcp-user"], scp=["mcp:registry:read"],
                              preferred_username="svc-bot")
        identity = await bearer.identify(key.sign(claims))
        with pytest.raises(TokenInvalid, match="audience"):
            await bearer.identify(key.sign(token_claims(issuer, "gateway")))
    finally:
        await bearer.aclose()

    assert (identity.username, identity.groups) == ("svc-bot", ("mcp-user",))
    assert identity.direct_scopes == ("mcp:registry:read",)


async def test_without_an_identity_provider_jwts_are_refused(tmp_path):
    bearer = BearerJwts(config_for(tmp_path, "local", {}))

    with pytest.raises(TokenInvalid, match="no identity provider"):
        await bearer.identify("a.b.c")


async def test_an_unreachable_provider_is_unavailable_not_invalid(cognito):
    moto, pool, _, configure = cognito
    bearer = BearerJwts(configure(endpoint_url=f"http://127.0.0.1:{free_port()}"))

    with pytest.raises(BearerUnavailable):
        await bearer.identify(moto.mint_client_credentials_token(pool, "x"))
