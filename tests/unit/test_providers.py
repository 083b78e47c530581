"""The identity providers: endpoints (derived, discovered, cached), every MCP_AUTH_* variable,
the code flow, refresh and revocation against a scriptable IdP over loopback HTTP, Cognito's
token validation against moto, and the group refresh of sessions (mcp_gateway.group_refresh)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from mcp_gateway.config import GatewayConfig
from mcp_gateway.group_refresh import refresh_if_due
from mcp_gateway.providers import (
    EndpointsUnavailable,
    IdentityInvalid,
    IdpIdentity,
    IdpRefused,
    IdpUnavailable,
    Provider,
    ProviderError,
    RefreshRefused,
    build_providers,
    clear_discovery_cache,
    idp_endpoints,
    require_login_endpoints,
)
from mcp_gateway.providers.cognito import CognitoProvider
from mcp_gateway.providers.endpoints import EndpointsMissing
from mcp_gateway.providers.readiness import sign_in_endpoints
from mcp_gateway.providers.oidc import OidcProvider
from mcp_gateway.secretbox import SecretBox
from mcp_gateway.sessions import Session, SessionStore, open_store
from mcp_gateway.tokens import claims_groups
from tests.support.cognito import MOTO_SIGNING_KID, CognitoAppClient, MotoCognito, _moto_signing_key
from tests.support.cognito import moto_cognito  # noqa: F401  (fixture)
from tests.support.cognito_discovery import completed_cognito_discovery
from tests.support.fake_idp import PUBLIC_URL, FakeIdp, generic_config, provider_config
from tests.support.oidc_provider import OidcProvider as RealOidcProvider
from tests.support.oidc_provider import oidc_provider  # noqa: F401  (fixture)

pytestmark = pytest.mark.timeout(30)

POOL_ID = "eu-west-1_AbCdEf123"
VERIFIER = "v" * 20 + "-verifier-of-the-pkce-kind-" + "x" * 20
NONCE = "the-nonce"


@pytest.fixture(autouse=True)
def fresh_discovery_cache() -> Iterator[None]:
    clear_discovery_cache()
    yield
    clear_discovery_cache()


@pytest.fixture
def fake_idp() -> Iterator[FakeIdp]:
    with FakeIdp() as idp:
        yield idp


@pytest.fixture
async def built() -> AsyncIterator[Callable[[GatewayConfig], Any]]:
    """build_providers for a config; the provider is closed after the test."""
    made: list[Provider] = []

    async def build(config: GatewayConfig) -> OidcProvider:
        providers = await build_providers(config)
        assert len(providers) == 1
        made.extend(providers.values())
        return next(iter(providers.values()))  # type: ignore[return-value]

    yield build
    for provider in made:
        await provider.aclose()


def cognito_env(**extra: str) -> dict[str, str]:
    return {"MCP_AUTH_PROVIDER_TYPE": "cognito", "MCP_AUTH_COGNITO_USER_POOL_ID": POOL_ID,
            "MCP_AUTH_COGNITO_CLIENT_ID": "cognito-app", "MCP_AUTH_COGNITO_CLIENT_SECRET": "cognito-secret", **extra}


def okta_env(tenant: str = "https://example.okta.com", **extra: str) -> dict[str, str]:
    return {"MCP_AUTH_PROVIDER_TYPE": "okta", "MCP_AUTH_OKTA_TENANT_URL": tenant,
            "MCP_AUTH_OKTA_CLIENT_ID": "okta-app", "MCP_AUTH_OKTA_CLIENT_SECRET": "okta-secret", **extra}


def generic_env(**extra: str) -> dict[str, str]:
    """Every endpoint explicit: no discovery, so no network."""
    return {"MCP_AUTH_PROVIDER_TYPE": "generic", "MCP_AUTH_ISSUER": "https://idp.test/realms/mcp",
            "MCP_AUTH_CLIENT_ID": "generic-app", "MCP_AUTH_CLIENT_SECRET": "generic-secret",
            "MCP_AUTH_AUTHORIZE_URL": "https://idp.test/auth", "MCP_AUTH_TOKEN_URL": "https://idp.test/token",
            "MCP_AUTH_JWKS_URL": "https://idp.test/certs", **extra}


async def authorization_params(provider: Provider) -> dict[str, str]:
    url = await provider.authorization_url(state="the-state", nonce="the-nonce", code_verifier=VERIFIER)
    return dict(httpx.URL(url).params)


# -- endpoints -----------------------------------------------------------------------------------------


async def test_cognito_issuer_and_jwks_derive_from_the_pool_id(tmp_path: Path) -> None:
    requests: list[str] = []
    async with discovery_client({}, requests) as http:  # AWS is not reachable from here: 404
        endpoints = await idp_endpoints(provider_config(tmp_path, cognito_env()), http=http)
    issuer = f"https://cognito-idp.eu-west-1.amazonaws.com/{POOL_ID}"
    assert endpoints.issuer == issuer
    assert endpoints.jwks_url == f"{issuer}/.well-known/jwks.json"
    assert (endpoints.groups_claim, endpoints.audiences) == ("cognito:groups", ("cognito-app",))
    # the hosted-UI endpoints are looked up in the pool's discovery document; that failed: retry later
    assert requests == [f"{issuer}/.well-known/openid-configuration"]
    assert endpoints.authorize_url is None and "HTTP status 404" in (endpoints.discovery_error or "")
    with pytest.raises(EndpointsUnavailable, match="not known yet"):
        require_login_endpoints(endpoints)


async def test_okta_org_and_custom_authorization_servers(tmp_path: Path) -> None:
    org = await idp_endpoints(provider_config(tmp_path, okta_env()))
    assert org.issuer == "https://example.okta.com"
    assert (org.authorize_url, org.jwks_url) == ("https://example.okta.com/oauth2/v1/authorize",
                                                 "https://example.okta.com/oauth2/v1/keys")
    custom = await idp_endpoints(provider_config(tmp_path, okta_env(), okta={"authorization_server": "default"}))
    assert custom.issuer == "https://example.okta.com/oauth2/default"
    assert (custom.token_url, custom.revocation_url) == ("https://example.okta.com/oauth2/default/v1/token",
                                                         "https://example.okta.com/oauth2/default/v1/revoke")
    assert custom.groups_claim == "groups"


def discovery_client(documents: dict[str, Any], requests: list[str], status: int = 200) -> httpx.AsyncClient:
    def answer(request: httpx.Request) -> httpx.Response:
        requests.append(str(request.url))
        document = documents.get(str(request.url))
        return httpx.Response(status, json=document) if document is not None else httpx.Response(404)
    return httpx.AsyncClient(transport=httpx.MockTransport(answer))


DISCOVERY = "https://idp.test/realms/mcp/.well-known/openid-configuration"


def discovered(issuer: str = "https://idp.test/realms/mcp", **extra: Any) -> dict[str, Any]:
    return {"issuer": issuer, "authorization_endpoint": f"{issuer}/auth", "token_endpoint": f"{issuer}/token",
            "jwks_uri": f"{issuer}/certs", "userinfo_endpoint": f"{issuer}/userinfo",
            "revocation_endpoint": f"{issuer}/revoke", **extra}


async def test_generic_issuer_only_is_discovered_once(tmp_path: Path) -> None:
    only_the_issuer = {name: value for name, value in generic_env().items() if not name.endswith("_URL")}
    config = provider_config(tmp_path, only_the_issuer, groups_claim="roles")
    requests: list[str] = []
    document = discovered(authorization_response_iss_parameter_supported=True,
                          token_endpoint_auth_methods_supported=["client_secret_post"])
    async with discovery_client({DISCOVERY: document}, requests) as http:
        first, second = await asyncio.gather(idp_endpoints(config, http=http), idp_endpoints(config, http=http))
    assert requests == [DISCOVERY] and first == second
    assert (first.issuer, first.jwks_url, first.revocation_url) == (
        "https://idp.test/realms/mcp", "https://idp.test/realms/mcp/certs", "https://idp.test/realms/mcp/revoke")
    assert first.iss_parameter_supported and first.token_endpoint_auth_method == "client_secret_post"
    assert first.groups_claim == "roles"


async def test_generic_explicit_urls_win_and_need_no_discovery(tmp_path: Path) -> None:
    requests: list[str] = []
    async with discovery_client({}, requests) as http:
        endpoints = await idp_endpoints(provider_config(tmp_path, generic_env()), http=http)
    assert requests == []
    assert (endpoints.authorize_url, endpoints.token_url, endpoints.jwks_url) == (
        "https://idp.test/auth", "https://idp.test/token", "https://idp.test/certs")
    assert endpoints.userinfo_url is None and not endpoints.iss_parameter_supported


async def test_generic_takes_the_issuer_exactly_as_discovery_spells_it(tmp_path: Path) -> None:
    """Config strips a trailing slash; tokens (Auth0's, say) keep it, and `iss` is compared exactly."""
    config = provider_config(tmp_path, generic_env(MCP_AUTH_JWKS_URL=""))
    async with discovery_client({DISCOVERY: discovered("https://idp.test/realms/mcp/")}, []) as http:
        endpoints = await idp_endpoints(config, http=http)
    assert endpoints.issuer == "https://idp.test/realms/mcp/"
    assert endpoints.authorize_url == "https://idp.test/auth"  # the configured one wins


@pytest.mark.parametrize(("document", "reason"), [
    (discovered("https://evil.test/realms/mcp"), "names the issuer"),
    (discovered(jwks_uri=None), "no jwks_uri"),
    (discovered(authorization_endpoint="javascript:alert(1)"), r"not an http\(s\) URL"),
    ({"not": "a discovery document"}, "no issuer"),
], ids=["issuer-mismatch", "no-jwks", "script-url", "garbage"])
async def test_generic_refuses_a_bad_discovery_document(document: dict, reason: str, tmp_path: Path) -> None:
    config = provider_config(tmp_path, generic_env(MCP_AUTH_TOKEN_URL=""))
    async with discovery_client({DISCOVERY: document}, []) as http:
        with pytest.raises(EndpointsUnavailable, match=reason):
            await idp_endpoints(config, http=http)


async def test_a_failed_discovery_is_remembered_so_a_burst_costs_one_request(tmp_path: Path) -> None:
    config = provider_config(tmp_path, generic_env(MCP_AUTH_TOKEN_URL=""))
    requests: list[str] = []
    async with discovery_client({DISCOVERY: discovered()}, requests, status=503) as http:
        results = await asyncio.gather(*(idp_endpoints(config, http=http) for _ in range(10)), return_exceptions=True)
    assert len(requests) == 1
    assert all(isinstance(r, EndpointsUnavailable) and "HTTP status 503" in r.reason for r in results)


async def test_generic_without_an_issuer_says_so(tmp_path: Path) -> None:
    # Refused when the configuration is read, before any provider is built.
    from mcp_gateway.config import ConfigError
    with pytest.raises(ConfigError, match="MCP_AUTH_ISSUER"):
        provider_config(tmp_path, generic_env(MCP_AUTH_ISSUER=""))


# -- every variable of docs/configuration.md that configures a provider --------------------------------------------

ENV_CASES: dict[str, tuple[dict[str, str], Callable[[Provider, Any, dict[str, str]], bool]]] = {
    "MCP_AUTH_PROVIDER_TYPE=cognito": (cognito_env(MCP_AUTH_COGNITO_DOMAIN="https://login.example.com"),
                                       lambda p, e, q: p.name == "cognito" and p.display_name == "Amazon Cognito"),
    "MCP_AUTH_COGNITO_USER_POOL_ID": (cognito_env(MCP_AUTH_COGNITO_DOMAIN="https://login.example.com"),
                                      lambda p, e, q: e.issuer.endswith(f"/{POOL_ID}")),
    "MCP_AUTH_COGNITO_CLIENT_ID": (cognito_env(MCP_AUTH_COGNITO_DOMAIN="https://login.example.com"),
                                   lambda p, e, q: q["client_id"] == "cognito-app" == e.audiences[0]),
    "MCP_AUTH_COGNITO_REGION": (cognito_env(MCP_AUTH_COGNITO_REGION="us-west-2",
                                            MCP_AUTH_COGNITO_DOMAIN="https://login.example.com"),
                                lambda p, e, q: e.issuer.startswith("https://cognito-idp.us-west-2.amazonaws.com/")),
    "MCP_AUTH_COGNITO_DOMAIN": (cognito_env(MCP_AUTH_COGNITO_DOMAIN="https://login.example.com"),
                                lambda p, e, q: e.authorize_url == "https://login.example.com/oauth2/authorize"
                                and e.revocation_url == "https://login.example.com/oauth2/revoke"),
    "MCP_AUTH_COGNITO_CALLBACK_URI": (cognito_env(MCP_AUTH_COGNITO_DOMAIN="https://login.example.com",
                                                  MCP_AUTH_COGNITO_CALLBACK_URI=f"{PUBLIC_URL}/oauth/callback/cognito"),
                                      lambda p, e, q: q["redirect_uri"] == f"{PUBLIC_URL}/oauth/callback/cognito"),
    "MCP_AUTH_PROVIDER_TYPE=okta": (okta_env(), lambda p, e, q: p.name == "okta" and "groups" in q["scope"].split()),
    "MCP_AUTH_OKTA_TENANT_URL": (okta_env("https://acme.okta.com"),
                                 lambda p, e, q: e.authorize_url == "https://acme.okta.com/oauth2/v1/authorize"),
    "MCP_AUTH_OKTA_CLIENT_ID": (okta_env(), lambda p, e, q: q["client_id"] == "okta-app"),
    "MCP_AUTH_OKTA_CALLBACK_URI": (okta_env(MCP_AUTH_OKTA_CALLBACK_URI=f"{PUBLIC_URL}/oauth/callback/okta"),
                                   lambda p, e, q: p.callback_path == "/oauth/callback/okta"),
    "MCP_AUTH_PROVIDER_TYPE=generic": (generic_env(), lambda p, e, q: p.name == "generic"
                                       and p.callback_path == "/oauth/callback" and p.display_name == "idp.test"),
    "MCP_AUTH_ISSUER": (generic_env(), lambda p, e, q: e.issuer == "https://idp.test/realms/mcp"),
    "MCP_AUTH_CLIENT_ID": (generic_env(), lambda p, e, q: q["client_id"] == "generic-app"),
    "MCP_AUTH_AUTHORIZE_URL": (generic_env(), lambda p, e, q: e.authorize_url == "https://idp.test/auth"),
    "MCP_AUTH_TOKEN_URL": (generic_env(), lambda p, e, q: e.token_url == "https://idp.test/token"),
    "MCP_AUTH_JWKS_URL": (generic_env(), lambda p, e, q: e.jwks_url == "https://idp.test/certs"),
    "MCP_AUTH_CALLBACK_URI": (generic_env(MCP_AUTH_CALLBACK_URI=f"{PUBLIC_URL}/oauth/callback"),
                              lambda p, e, q: q["redirect_uri"] == f"{PUBLIC_URL}/oauth/callback"),
    "MCP_AUTH_SCOPES": (generic_env(MCP_AUTH_SCOPES="email groups"),
                        lambda p, e, q: q["scope"] == "openid email groups"),
}


@pytest.mark.parametrize("variable", ENV_CASES, ids=list(ENV_CASES))
async def test_every_provider_variable_takes_effect(variable: str, tmp_path: Path, built: Any) -> None:
    env, holds = ENV_CASES[variable]
    provider = await built(provider_config(tmp_path, env))
    endpoints = await provider.endpoints()
    params = await authorization_params(provider)
    assert holds(provider, endpoints, params)
    assert params["code_challenge_method"] == "S256" and params["response_type"] == "code"


@pytest.mark.parametrize("env", [
    {**generic_env(), "MCP_AUTH_ENABLED": "false"},
    {**generic_env(), "MCP_AUTH_PROVIDER_TYPE": "local"},
], ids=["MCP_AUTH_ENABLED=false", "MCP_AUTH_PROVIDER_TYPE=local"])
async def test_no_provider_without_auth_or_with_local_accounts_only(env: dict[str, str], tmp_path: Path) -> None:
    assert await build_providers(provider_config(tmp_path, env)) == {}


# -- the code flow against an IdP over HTTP --------------------------------------------------------------


async def log_in(provider: Provider, verifier: str = VERIFIER, nonce: str = NONCE) -> IdpIdentity:
    """What the login app does, minus the browser: the IdP logs its `user` in at once."""
    url = await provider.authorization_url(state="the-state", nonce=nonce, code_verifier=VERIFIER)
    async with httpx.AsyncClient(trust_env=False) as http:
        callback = httpx.URL((await http.get(url)).headers["location"])
    assert callback.params["state"] == "the-state"
    return await provider.redeem(callback.params["code"], code_verifier=verifier, nonce=nonce)


@pytest.fixture
async def generic(fake_idp: FakeIdp, tmp_path: Path, built: Any) -> OidcProvider:
    return await built(generic_config(tmp_path, fake_idp.issuer, fake_idp.client_id, fake_idp.client_secret))


async def test_the_authorization_url_asks_for_code_with_pkce_s256(generic: OidcProvider, fake_idp: FakeIdp) -> None:
    params = await authorization_params(generic)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(VERIFIER.encode()).digest()).rstrip(b"=").decode()
    assert params == {
        "response_type": "code", "client_id": fake_idp.client_id, "redirect_uri": f"{PUBLIC_URL}/oauth/callback",
        "scope": "openid email profile offline_access", "state": "the-state", "nonce": "the-nonce",
        "code_challenge": challenge, "code_challenge_method": "S256",
    }


async def test_a_login_gives_the_normalized_identity(generic: OidcProvider, fake_idp: FakeIdp) -> None:
    identity = await log_in(generic)
    assert (identity.subject, identity.username, identity.email, identity.groups) == (
        "alice", "alice", "alice@example.test", ("mcp-admin",))
    assert identity.refresh_token
    assert fake_idp.token_requests[0]["code_verifier"] == VERIFIER  # and client_secret_basic, checked by the IdP


async def test_a_wrong_pkce_verifier_is_refused_by_the_idp(generic: OidcProvider) -> None:
    with pytest.raises(IdpRefused) as refused:
        await log_in(generic, verifier=VERIFIER + "-not")
    assert refused.value.error == "invalid_grant"


async def test_groups_missing_from_the_id_token_come_from_userinfo(generic: OidcProvider, fake_idp: FakeIdp) -> None:
    """Okta's org server keeps ID tokens thin when it issues an access token too."""
    fake_idp.forge = lambda claims: fake_idp.key.sign({k: v for k, v in claims.items() if k != "groups"})
    fake_idp.groups["alice"] = ["mcp-user", "mcp-server-time"]
    assert (await log_in(generic)).groups == ("mcp-user", "mcp-server-time")


async def test_refresh_reads_the_groups_as_they_are_now(generic: OidcProvider, fake_idp: FakeIdp) -> None:
    identity = await log_in(generic)
    fake_idp.groups["alice"] = ["mcp-user"]
    refreshed = await generic.refresh(identity.refresh_token or "")
    assert (refreshed.subject, refreshed.groups) == ("alice", ("mcp-user",))
    assert refreshed.refresh_token


async def test_a_refused_refresh_is_refresh_refused(generic: OidcProvider, fake_idp: FakeIdp) -> None:
    identity = await log_in(generic)
    del fake_idp.groups["alice"]  # gone at the IdP
    with pytest.raises(RefreshRefused):
        await generic.refresh(identity.refresh_token or "")


@pytest.mark.parametrize(("answer", "kind"), [
    ((503, {"error": "temporarily_unavailable"}), IdpUnavailable),
    ((502, {}), IdpUnavailable),
    ((400, {"error": "invalid_client"}), IdpRefused),  # misconfiguration, not the person's refusal
], ids=["503", "502", "invalid_client"])
async def test_an_idp_failing_at_refresh_is_not_a_refusal(answer: tuple, kind: type, generic: OidcProvider,
                                                          fake_idp: FakeIdp) -> None:
    identity = await log_in(generic)
    fake_idp.token_answer = lambda form: answer
    with pytest.raises(kind) as raised:
        await generic.refresh(identity.refresh_token or "")
    assert not isinstance(raised.value, RefreshRefused)


async def test_an_unreachable_idp_is_unavailable(generic: OidcProvider, fake_idp: FakeIdp) -> None:
    identity = await log_in(generic)
    fake_idp.stop()
    with pytest.raises(IdpUnavailable, match="cannot be reached"):
        await generic.refresh(identity.refresh_token or "")


async def test_revoke_sends_the_refresh_token_to_the_revocation_endpoint(generic: OidcProvider,
                                                                         fake_idp: FakeIdp) -> None:
    identity = await log_in(generic)
    await generic.revoke(identity.refresh_token or "")
    assert fake_idp.revoked == [identity.refresh_token]


async def test_okta_custom_authorization_server_login(tmp_path: Path, built: Any) -> None:
    with FakeIdp(prefix="/oauth2/default") as idp:
        env = okta_env(idp.base_url, MCP_AUTH_OKTA_CLIENT_ID=idp.client_id,
                       MCP_AUTH_OKTA_CLIENT_SECRET=idp.client_secret,
                       MCP_AUTH_OKTA_CALLBACK_URI=f"{PUBLIC_URL}/oauth/callback/okta")
        okta = await built(provider_config(tmp_path, env, okta={"authorization_server": "default"}))
        assert "groups" not in (await authorization_params(okta))["scope"].split()  # custom servers refuse it
        idp.groups["alice"] = ["mcp-user"]
        identity = await log_in(okta)
    assert (identity.username, identity.groups) == ("alice", ("mcp-user",))


# -- Cognito, with moto's tokens -------------------------------------------------------------------------
# moto has no hosted UI and no /oauth2/token: its tokens come from ADMIN_USER_PASSWORD_AUTH. The
# Cognito provider's own part — issuer derivation, JWKS through the endpoint override, token_use,
# cognito:groups, cognito:username — is tested with those real moto tokens. Only the hosted UI's
# token endpoint is played by the scriptable IdP, handing out moto's tokens (plus the `nonce`
# the hosted UI would add, signed with moto's own key).


def cognito_config(tmp_path: Path, cognito: MotoCognito, app: CognitoAppClient, domain: str | None = None,
                   ) -> GatewayConfig:
    env = cognito_env(MCP_AUTH_COGNITO_USER_POOL_ID=app.pool.pool_id, MCP_AUTH_COGNITO_CLIENT_ID=app.client_id,
                      MCP_AUTH_COGNITO_CLIENT_SECRET=app.client_secret or "",
                      MCP_AUTH_COGNITO_ENDPOINT_URL=cognito.endpoint_url)
    if domain:
        env["MCP_AUTH_COGNITO_DOMAIN"] = domain
    return provider_config(tmp_path, env)


async def test_cognito_accepts_its_pools_id_tokens_and_refuses_another_pools(
        moto_cognito: MotoCognito, tmp_path: Path, built: Any) -> None:
    staff = moto_cognito.create_pool("staff", groups=["mcp-admin", "mcp-user"])
    app = moto_cognito.create_app_client(staff)
    moto_cognito.create_user(staff, "alice", "Alice-passw0rd!", groups=["mcp-admin", "mcp-user"])
    other = moto_cognito.create_pool("other", groups=["mcp-admin"])
    other_app = moto_cognito.create_app_client(other)
    moto_cognito.create_user(other, "alice", "Alice-passw0rd!", groups=["mcp-admin"])

    cognito = await built(cognito_config(tmp_path, moto_cognito, app))
    endpoints = await cognito.endpoints()
    assert endpoints.issuer == staff.issuer and endpoints.jwks_url == staff.jwks_url  # JWKS from the override

    claims = await cognito.validate_id_token(moto_cognito.login(app, "alice", "Alice-passw0rd!").id_token)
    assert claims["cognito:username"] == "alice"
    assert set(claims_groups(claims, endpoints.groups_claim)) == {"mcp-admin", "mcp-user"}

    # moto signs every pool's tokens with one key: only the issuer tells them apart
    with pytest.raises(IdentityInvalid, match="issuer not accepted"):
        await cognito.validate_id_token(moto_cognito.login(other_app, "alice", "Alice-passw0rd!").id_token)
    with pytest.raises(IdentityInvalid, match="ID token refused"):  # an access token is no ID token (no aud)
        await cognito.validate_id_token(moto_cognito.login(app, "alice", "Alice-passw0rd!").access_token)


async def test_cognito_code_flow_and_refresh_through_a_hosted_ui_stand_in(
        moto_cognito: MotoCognito, tmp_path: Path, built: Any) -> None:
    pool = moto_cognito.create_pool("staff", groups=["mcp-admin", "mcp-user"])
    app = moto_cognito.create_app_client(pool)
    moto_cognito.create_user(pool, "alice", "Alice-passw0rd!", groups=["mcp-admin"])

    def hosted_ui_token_endpoint(form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        if form["grant_type"] == "refresh_token":
            tokens = moto_cognito.refresh(app, form["refresh_token"], "alice")
            return 200, {"id_token": tokens.id_token, "access_token": tokens.access_token, "token_type": "Bearer"}
        tokens = moto_cognito.login(app, "alice", "Alice-passw0rd!")
        claims = jwt.decode(tokens.id_token, options={"verify_signature": False})
        id_token = jwt.encode({**claims, "nonce": NONCE}, _moto_signing_key(), algorithm="RS256",
                              headers={"kid": MOTO_SIGNING_KID})
        return 200, {"id_token": id_token, "access_token": tokens.access_token, "token_type": "Bearer",
                     "refresh_token": tokens.refresh_token}

    with FakeIdp(client_id=app.client_id, client_secret=app.client_secret or "") as hosted_ui:
        hosted_ui.token_answer = hosted_ui_token_endpoint
        cognito = await built(cognito_config(tmp_path, moto_cognito, app, domain=hosted_ui.base_url))
        identity = await log_in(cognito)
        assert (identity.username, identity.groups) == ("alice", ("mcp-admin",))
        assert hosted_ui.token_requests[0]["code_verifier"] == VERIFIER

        moto_cognito.set_groups(pool, "alice", ["mcp-user"])
        refreshed = await cognito.refresh(identity.refresh_token or "")
    assert (refreshed.subject, refreshed.groups) == (identity.subject, ("mcp-user",))
    assert refreshed.refresh_token == identity.refresh_token  # Cognito does not rotate it


# -- sign-in endpoints: discovery, overrides, and what stops start-up ------------------------------------

HOSTED_UI = "https://staff-pool.auth.us-east-1.amazoncognito.com"


def five_variables(app: CognitoAppClient) -> dict[str, str]:
    """The guide's five Cognito variables, nothing else."""
    return {"MCP_AUTH_PROVIDER_TYPE": "cognito", "MCP_AUTH_COGNITO_USER_POOL_ID": app.pool.pool_id,
            "MCP_AUTH_COGNITO_CLIENT_ID": app.client_id, "MCP_AUTH_COGNITO_CLIENT_SECRET": app.client_secret or "",
            "MCP_AUTH_COGNITO_CALLBACK_URI": f"{PUBLIC_URL}/oauth/callback/cognito",
            "MCP_AUTH_COGNITO_REGION": app.pool.region}


async def test_cognito_five_variables_take_the_hosted_ui_from_the_pools_discovery_document(
        moto_cognito: MotoCognito, tmp_path: Path, built: Any) -> None:
    """moto's document lacks the hosted-UI endpoints (no hosted UI there): a stand-in completes it
    as Cognito does for a pool with a domain (tests/support/cognito_discovery.py)."""
    app = moto_cognito.create_app_client(moto_cognito.create_pool("staff"))
    with completed_cognito_discovery(moto_cognito.endpoint_url, HOSTED_UI) as emulator:
        env = {**five_variables(app), "MCP_AUTH_COGNITO_ENDPOINT_URL": emulator.url}
        endpoints = await sign_in_endpoints(provider_config(tmp_path, env))
        cognito = await built(provider_config(tmp_path, env))
        url = httpx.URL(await cognito.authorization_url(state="s", nonce=NONCE, code_verifier=VERIFIER))
    assert emulator.requests[0] == f"/{app.pool.pool_id}/.well-known/openid-configuration"
    expected = emulator.endpoints()
    assert (endpoints.authorize_url, endpoints.token_url, endpoints.userinfo_url, endpoints.revocation_url) == (
        expected["authorization_endpoint"], expected["token_endpoint"], expected["userinfo_endpoint"],
        expected["revocation_endpoint"])
    assert endpoints.issuer == app.pool.issuer and endpoints.jwks_url == app.pool.jwks_url  # JWKS still moto's
    assert str(url.copy_with(query=None)) == expected["authorization_endpoint"]
    assert (url.params["client_id"], url.params["code_challenge_method"]) == (app.client_id, "S256")
    assert url.params["redirect_uri"] == f"{PUBLIC_URL}/oauth/callback/cognito"


async def test_cognito_domain_overrides_the_discovered_endpoints(moto_cognito: MotoCognito, tmp_path: Path) -> None:
    app = moto_cognito.create_app_client(moto_cognito.create_pool("staff"))
    with completed_cognito_discovery(moto_cognito.endpoint_url, HOSTED_UI) as emulator:
        env = {**five_variables(app), "MCP_AUTH_COGNITO_ENDPOINT_URL": emulator.url,
               "MCP_AUTH_COGNITO_DOMAIN": "https://auth.example.com"}
        endpoints = await sign_in_endpoints(provider_config(tmp_path, env))
    assert (endpoints.authorize_url, endpoints.token_url) == ("https://auth.example.com/oauth2/authorize",
                                                              "https://auth.example.com/oauth2/token")


async def test_a_pool_without_a_domain_stops_start_up_saying_what_to_set(
        moto_cognito: MotoCognito, tmp_path: Path, built: Any) -> None:
    app = moto_cognito.create_app_client(moto_cognito.create_pool("staff"))
    with completed_cognito_discovery(moto_cognito.endpoint_url, HOSTED_UI, complete=False) as emulator:
        config = provider_config(tmp_path, {**five_variables(app), "MCP_AUTH_COGNITO_ENDPOINT_URL": emulator.url})
        with pytest.raises(EndpointsMissing) as missing:
            await sign_in_endpoints(config)
        cognito = await built(config)
        with pytest.raises(EndpointsMissing):  # the login app answers 503 with this reason, never a 502
            await cognito.authorization_url(state="s", nonce=NONCE, code_verifier=VERIFIER)
    reason = missing.value.reason
    assert f"{emulator.url}/{app.pool.pool_id}/.well-known/openid-configuration" in reason
    assert "authorization_endpoint" in reason and "MCP_AUTH_COGNITO_DOMAIN" in reason


async def test_a_provider_that_could_not_be_asked_is_asked_again(tmp_path: Path) -> None:
    """Not reachable at start: sign-in is refused as unavailable (503), and works once the pool's
    document can be read — without a restart. (AWS itself is not reachable here: a mock transport.)"""
    issuer = f"https://cognito-idp.eu-west-1.amazonaws.com/{POOL_ID}"
    documents: dict[str, Any] = {}
    requests: list[str] = []
    cognito = CognitoProvider(provider_config(tmp_path, cognito_env()))
    async with discovery_client(documents, requests) as http:
        cognito._http = http  # the provider's client for discovery and JWKS
        with pytest.raises(EndpointsUnavailable, match="not known yet"):
            await cognito.authorization_url(state="s", nonce=NONCE, code_verifier=VERIFIER)
        documents[f"{issuer}/.well-known/openid-configuration"] = {
            "issuer": issuer, "jwks_uri": f"{issuer}/.well-known/jwks.json",
            "authorization_endpoint": f"{HOSTED_UI}/oauth2/authorize", "token_endpoint": f"{HOSTED_UI}/oauth2/token"}
        clear_discovery_cache()  # the failure is remembered for DISCOVERY_RETRY_AFTER: skip the wait
        url = await cognito.authorization_url(state="s", nonce=NONCE, code_verifier=VERIFIER)
        cognito._http = None
        await cognito.aclose()
    assert url.startswith(f"{HOSTED_UI}/oauth2/authorize?") and len(requests) == 2


async def test_generic_issuer_discovery_against_a_real_provider(oidc_provider: RealOidcProvider,
                                                                tmp_path: Path) -> None:
    config = generic_config(tmp_path, oidc_provider.issuer, "gateway", "a-secret")
    endpoints = await sign_in_endpoints(config)
    assert (endpoints.authorize_url, endpoints.token_url, endpoints.jwks_url, endpoints.revocation_url) == (
        oidc_provider.authorize_url, oidc_provider.token_url, oidc_provider.jwks_url, oidc_provider.revocation_url)
    assert endpoints.discovery_url == oidc_provider.discovery_url


async def test_generic_discovery_without_endpoints_stops_start_up(tmp_path: Path) -> None:
    only_the_issuer = {name: value for name, value in generic_env().items() if not name.endswith("_URL")}
    thin = discovered(authorization_endpoint=None, token_endpoint=None)
    async with discovery_client({DISCOVERY: thin}, []) as http:
        with pytest.raises(EndpointsMissing, match="MCP_AUTH_AUTHORIZE_URL and MCP_AUTH_TOKEN_URL"):
            await sign_in_endpoints(provider_config(tmp_path, only_the_issuer), http=http)
        given = provider_config(tmp_path, generic_env(MCP_AUTH_JWKS_URL=""))  # explicit URLs fill the gap
        assert (await sign_in_endpoints(given, http=http)).authorize_url == "https://idp.test/auth"


async def test_okta_sign_in_endpoints_come_from_the_tenant_url(tmp_path: Path) -> None:
    async with discovery_client({}, requests := []) as http:
        endpoints = await sign_in_endpoints(provider_config(tmp_path, okta_env("https://acme.okta.com")), http=http)
    assert requests == [] and endpoints.authorize_url == "https://acme.okta.com/oauth2/v1/authorize"


# -- group refresh of sessions ---------------------------------------------------------------------------


class ScriptedProvider(Provider):
    """A provider whose refresh answers what the test says, counting calls."""

    name = display_name = "generic"
    callback_path = "/oauth/callback"
    redirect_uri = f"{PUBLIC_URL}/oauth/callback"

    def __init__(self, answer: IdpIdentity | ProviderError, delay: float = 0.0) -> None:
        self.answer, self.delay, self.calls = answer, delay, 0

    async def refresh(self, refresh_token: str) -> IdpIdentity:
        self.calls += 1
        await asyncio.sleep(self.delay)
        if isinstance(self.answer, ProviderError):
            raise self.answer
        return self.answer

    async def endpoints(self) -> Any:
        raise NotImplementedError

    async def authorization_url(self, *, state: str, nonce: str, code_verifier: str) -> str:
        raise NotImplementedError

    async def redeem(self, code: str, *, code_verifier: str, nonce: str) -> IdpIdentity:
        raise NotImplementedError

    async def revoke(self, token: str) -> None:
        raise NotImplementedError

    async def aclose(self) -> None:
        pass


LATER = 301.0  # seconds after the login: past the 300 s refresh interval
INTERVAL = 300.0


def later(seconds: float = LATER) -> Callable[[], float]:
    return lambda: time.time() + seconds


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SessionStore]:
    async with open_store("sqlite:///sessions.db", base_dir=tmp_path, lifetime=3600, idle_timeout=3600,
                          secretbox=SecretBox("a test SECRET_KEY of more than 32 bytes, for providers")) as opened:
        yield opened


@pytest.fixture
async def session(store: SessionStore) -> Session:
    _, created = await store.create(subject="alice", username="alice", provider="generic", groups=["mcp-admin"],
                                    refresh_token="refresh-1")
    return created


def now_in(identity_groups: tuple[str, ...], refresh_token: str | None = "refresh-2",
           subject: str = "alice") -> IdpIdentity:
    return IdpIdentity(subject=subject, username="alice", email=None, groups=identity_groups,
                       refresh_token=refresh_token)


async def test_not_due_means_no_idp_call(store: SessionStore, session: Session) -> None:
    provider = ScriptedProvider(now_in(("mcp-user",)))
    assert await refresh_if_due(store, session, provider, INTERVAL, clock=later(10)) == session
    assert provider.calls == 0


async def test_due_replaces_groups_and_keeps_the_rotated_refresh_token(store: SessionStore,
                                                                       session: Session) -> None:
    provider = ScriptedProvider(now_in(("mcp-user",)))
    refreshed = await refresh_if_due(store, session, provider, INTERVAL, clock=later())
    assert refreshed is not None and refreshed.groups == ("mcp-user",) and provider.calls == 1
    stored = await store.get_by_id(session.id)
    assert stored is not None
    assert (stored.groups, stored.refresh_token) == (("mcp-user",), "refresh-2")
    assert stored.groups_refreshed_at == pytest.approx(time.time() + LATER, abs=5)


async def test_a_refresh_without_a_new_refresh_token_keeps_the_old_one(store: SessionStore,
                                                                       session: Session) -> None:
    provider = ScriptedProvider(now_in(("mcp-user",), refresh_token=None))
    await refresh_if_due(store, session, provider, INTERVAL, clock=later())
    stored = await store.get_by_id(session.id)
    assert stored is not None and (stored.groups, stored.refresh_token) == (("mcp-user",), "refresh-1")


@pytest.mark.parametrize("answer", [RefreshRefused("invalid_grant"), now_in(("mcp-admin",), subject="mallory")],
                         ids=["invalid_grant", "another-subject"])
async def test_a_refusal_ends_the_session(answer: Any, store: SessionStore, session: Session) -> None:
    assert await refresh_if_due(store, session, ScriptedProvider(answer), INTERVAL, clock=later()) is None
    assert await store.get_by_id(session.id) is None


async def test_an_idp_outage_keeps_the_groups_and_waits_before_retrying(
        store: SessionStore, session: Session, caplog: pytest.LogCaptureFixture) -> None:
    provider = ScriptedProvider(IdpUnavailable("the refresh failed: the identity provider cannot be reached"))
    with caplog.at_level(logging.WARNING, logger="mcp_gateway.group_refresh"):
        kept = await refresh_if_due(store, session, provider, INTERVAL, clock=later())
    assert kept == session and (await store.get_by_id(session.id)) is not None
    assert "groups kept" in caplog.text and "refresh-1" not in caplog.text
    assert await refresh_if_due(store, session, provider, INTERVAL, clock=later()) == session
    assert provider.calls == 1  # the second request did not ask the IdP again


async def test_concurrent_requests_refresh_once(store: SessionStore, session: Session) -> None:
    provider = ScriptedProvider(now_in(("mcp-user",)), delay=0.2)
    results = await asyncio.gather(*(refresh_if_due(store, session, provider, INTERVAL, clock=later())
                                     for _ in range(5)))
    assert provider.calls == 1
    assert all(result is not None for result in results)


async def test_a_stale_copy_after_a_refresh_does_not_refresh_again(store: SessionStore, session: Session) -> None:
    """A request that loaded the session before another one refreshed it (and rotated the token)."""
    provider = ScriptedProvider(now_in(("mcp-user",)))
    await refresh_if_due(store, session, provider, INTERVAL, clock=later())
    again = await refresh_if_due(store, session, provider, INTERVAL, clock=later(LATER + 1))
    assert provider.calls == 1 and again is not None and again.groups == ("mcp-user",)


@pytest.mark.parametrize("case", ["no-provider", "no-refresh-token"])
async def test_sessions_that_cannot_be_refreshed_are_left_alone(case: str, store: SessionStore,
                                                                session: Session) -> None:
    provider = ScriptedProvider(now_in(("mcp-user",)))
    target = replace(session, refresh_token=None) if case == "no-refresh-token" else session
    chosen = None if case == "no-provider" else provider
    assert await refresh_if_due(store, target, chosen, INTERVAL, clock=later()) == target
    assert provider.calls == 0
