"""The identity-provider fixtures work: a real oidc-provider login and moto's Cognito tokens."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from typing import Any

import httpx
import jwt
import pytest
from authlib.oauth2.rfc7636 import create_s256_code_challenge

from tests.support.cognito import MotoCognito, moto_cognito  # noqa: F401  (fixture)
from tests.support.headless import HeadlessLoginError, headless_authorize, parse_forms
from tests.support.oidc_provider import (  # noqa: F401  (fixture)
    DEFAULT_AGENT_AUDIENCE,
    DEFAULT_REDIRECT_URI,
    DEFAULT_USERS,
    OidcProvider,
    oidc_provider,
)

pytestmark = pytest.mark.timeout(30)

ALICE_PASSWORD = DEFAULT_USERS["alice"]["password"]


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10, trust_env=False) as client:
        yield client


async def verified_claims(http: httpx.AsyncClient, jwks_url: str, token: str, **options: Any) -> dict[str, Any]:
    jwks = jwt.PyJWKSet.from_dict((await http.get(jwks_url)).raise_for_status().json())
    key = next(key for key in jwks.keys if key.key_id == jwt.get_unverified_header(token)["kid"])
    return jwt.decode(token, key.key, algorithms=["RS256"], **options)


class CodeLogin:
    """One authorization-code + PKCE (S256) login of the `test-rp` client."""

    def __init__(self, provider: OidcProvider, client_id: str = "test-rp") -> None:
        self.provider = provider
        self.client = provider.client(client_id)
        self.verifier = secrets.token_urlsafe(48)
        self.state = secrets.token_urlsafe(16)
        self.nonce = secrets.token_urlsafe(16)

    @property
    def authorize_url(self) -> str:
        params = {
            "response_type": "code", "client_id": self.client.client_id, "redirect_uri": DEFAULT_REDIRECT_URI,
            "scope": "openid email profile", "state": self.state, "nonce": self.nonce,
            "code_challenge": create_s256_code_challenge(self.verifier), "code_challenge_method": "S256",
        }
        return str(httpx.URL(self.provider.authorize_url, params=params))

    async def code(self, http: httpx.AsyncClient, username: str = "alice", password: str = ALICE_PASSWORD) -> str:
        redirect = await headless_authorize(http, self.authorize_url, username, password,
                                            stop_at_prefix=DEFAULT_REDIRECT_URI)
        assert redirect.params["state"] == self.state
        assert redirect.params["iss"] == self.provider.issuer  # RFC 9207
        return redirect.params["code"]

    async def exchange(self, http: httpx.AsyncClient, code: str, verifier: str | None = None) -> httpx.Response:
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": DEFAULT_REDIRECT_URI,
                "code_verifier": verifier or self.verifier}
        return await http.post(self.provider.token_url, data=form, auth=self.client.basic_auth)

    async def tokens(self, http: httpx.AsyncClient) -> dict[str, Any]:
        response = await self.exchange(http, await self.code(http))
        assert response.status_code == 200, response.text
        return response.json()

    async def refresh(self, http: httpx.AsyncClient, refresh_token: str) -> httpx.Response:
        form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
        return await http.post(self.provider.token_url, data=form, auth=self.client.basic_auth)


# --- oidc-provider ---


async def test_code_flow_with_pkce_gives_an_id_token_with_groups(oidc_provider: OidcProvider,
                                                                 http: httpx.AsyncClient) -> None:
    login = CodeLogin(oidc_provider)
    tokens = await login.tokens(http)

    claims = await verified_claims(http, oidc_provider.jwks_url, tokens["id_token"], audience="test-rp",
                                   issuer=oidc_provider.issuer)
    assert claims["sub"] == "alice"
    assert claims["nonce"] == login.nonce
    assert claims["groups"] == ["mcp-admin"]
    assert claims["email"] == DEFAULT_USERS["alice"]["email"]
    assert claims["preferred_username"] == "alice"
    assert tokens["refresh_token"]
    userinfo = await http.get(oidc_provider.userinfo_url, headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert userinfo.json()["groups"] == ["mcp-admin"]


async def test_a_group_change_at_the_idp_shows_on_the_next_refresh(oidc_provider: OidcProvider,
                                                                   http: httpx.AsyncClient) -> None:
    login = CodeLogin(oidc_provider)
    tokens = await login.tokens(http)

    oidc_provider.set_groups("alice", ["mcp-user", "mcp-server-echo"])
    refreshed = await login.refresh(http, tokens["refresh_token"])

    assert refreshed.status_code == 200, refreshed.text
    claims = await verified_claims(http, oidc_provider.jwks_url, refreshed.json()["id_token"], audience="test-rp")
    assert claims["groups"] == ["mcp-user", "mcp-server-echo"]


async def test_refresh_is_refused_once_the_user_is_gone_or_the_token_revoked(oidc_provider: OidcProvider,
                                                                             http: httpx.AsyncClient) -> None:
    login = CodeLogin(oidc_provider)
    revoked = (await login.tokens(http))["refresh_token"]
    revocation = await http.post(oidc_provider.revocation_url, data={"token": revoked},
                                 auth=login.client.basic_auth)
    assert revocation.status_code == 200
    assert (await login.refresh(http, revoked)).json()["error"] == "invalid_grant"

    kept = (await CodeLogin(oidc_provider).tokens(http))["refresh_token"]
    oidc_provider.remove_user("alice")
    assert (await login.refresh(http, kept)).json()["error"] == "invalid_grant"


async def test_the_idp_refuses_a_pkce_mismatch_and_a_request_without_pkce(oidc_provider: OidcProvider,
                                                                          http: httpx.AsyncClient) -> None:
    login = CodeLogin(oidc_provider)
    refused = await login.exchange(http, await login.code(http), verifier=secrets.token_urlsafe(48))
    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_grant"

    without_pkce = httpx.URL(login.authorize_url).copy_remove_param("code_challenge")
    redirect = await headless_authorize(http, str(without_pkce), "alice", ALICE_PASSWORD,
                                        stop_at_prefix=DEFAULT_REDIRECT_URI)
    assert redirect.params["error"] == "invalid_request"
    assert "code" not in redirect.params


async def test_wrong_password_is_refused(oidc_provider: OidcProvider, http: httpx.AsyncClient) -> None:
    with pytest.raises(HeadlessLoginError, match="refused"):
        await CodeLogin(oidc_provider).code(http, password="not-alices-password")


async def test_client_credentials_give_a_jwt_with_the_configured_audience(oidc_provider: OidcProvider,
                                                                         http: httpx.AsyncClient) -> None:
    other = oidc_provider.add_client("other-agent", grant_types=["client_credentials"],
                                     access_token_audience="http://127.0.0.1/elsewhere")
    jwks_requests_before = oidc_provider.jwks_request_count

    for client_id, audience in [("agent", DEFAULT_AGENT_AUDIENCE), (other.client_id, "http://127.0.0.1/elsewhere")]:
        response = await http.post(oidc_provider.token_url, auth=oidc_provider.client(client_id).basic_auth,
                                   data={"grant_type": "client_credentials", "scope": "mcp:registry:read"})
        assert response.status_code == 200, response.text
        token = response.json()["access_token"]
        assert jwt.get_unverified_header(token)["typ"] == "at+jwt"
        claims = await verified_claims(http, oidc_provider.jwks_url, token, audience=audience,
                                       issuer=oidc_provider.issuer)
        assert claims["client_id"] == claims["sub"] == client_id
        if client_id == "agent":
            assert claims["groups"] == ["mcp-user"]
            assert claims["scope"] == "mcp:registry:read"
        else:
            assert "scope" not in claims  # not in the client's access_token_scope

    assert oidc_provider.jwks_request_count == jwks_requests_before + 2


# --- headless_authorize on plain pages (the gateway's own login and consent look like these) ---


def _consent_site(seen: list[httpx.Request]) -> httpx.MockTransport:
    login_page = """<form method="post" action="/login"><input type="hidden" name="next" value="/consent">
        <input name="username"><input type="password" name="password"><button>Sign in</button></form>"""
    consent_page = """<form method="post" action="/consent"><input type="hidden" name="csrf" value="t0k&amp;en">
        <select name="ttl"><option value="1h">1h</option><option value="1d" selected>1d</option></select>
        <button type="submit" name="decision" value="deny">Deny</button>
        <button type="submit" name="decision" value="approve">Approve</button></form>"""

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path == "/start":
            return httpx.Response(302, headers={"Location": "/login"})
        if request.url.path == "/login" and request.method == "GET":
            return httpx.Response(200, html=login_page)
        if request.url.path == "/login":
            return httpx.Response(303, headers={"Location": "/consent"})
        if request.method == "GET":
            return httpx.Response(200, html=consent_page)
        return httpx.Response(302, headers={"Location": "http://127.0.0.1:9/cb?code=c1"})

    return httpx.MockTransport(answer)


async def test_headless_submits_the_login_and_the_chosen_consent_button() -> None:
    seen: list[httpx.Request] = []
    async with httpx.AsyncClient(transport=_consent_site(seen), base_url="http://app.test") as client:
        redirect = await headless_authorize(client, "http://app.test/start", "dana", "pw", consent_action="approve",
                                            stop_at_prefix="http://127.0.0.1:9/cb")
    assert redirect.params["code"] == "c1"
    posted = [httpx.QueryParams(request.content.decode()) for request in seen if request.method == "POST"]
    assert dict(posted[0]) == {"next": "/consent", "username": "dana", "password": "pw"}
    assert dict(posted[1]) == {"csrf": "t0k&en", "ttl": "1d", "decision": "approve"}


async def test_headless_stops_when_no_form_matches() -> None:
    async with httpx.AsyncClient(transport=_consent_site([]), base_url="http://app.test") as client:
        with pytest.raises(HeadlessLoginError, match="no form"):
            await headless_authorize(client, "http://app.test/start", "dana", "pw", stop_at_prefix="http://x/")


def test_parse_forms_reads_controls_and_ignores_unchecked_boxes() -> None:
    [form] = parse_forms("""<form action="/a" method="GET"><input type="checkbox" name="c1">
        <input type="checkbox" name="c2" value="y" checked><textarea name="t">hi</textarea>
        <input type="submit" name="go" value="Go"></form>""")
    assert (form.action, form.method) == ("/a", "get")
    assert form.fields == [("c2", "y"), ("t", "hi")]
    assert form.submitters == [("go", "Go")]


# --- moto's Cognito ---


async def test_moto_cognito_pools_issue_tokens_verified_with_the_moto_jwks(moto_cognito: MotoCognito,
                                                                          http: httpx.AsyncClient) -> None:
    logins = []
    for name, group in [("staff", "mcp-admin"), ("partners", "mcp-user")]:
        pool = moto_cognito.create_pool(name, groups=[group])
        app = moto_cognito.create_app_client(pool)
        moto_cognito.create_user(pool, "alice", "Alice-passw0rd!", groups=[group])
        logins.append((pool, app, group, moto_cognito.login(app, "alice", "Alice-passw0rd!")))

    (pool_a, app_a, _, tokens_a), (pool_b, _, _, _) = logins
    assert pool_a.pool_id != pool_b.pool_id
    for pool, app, group, tokens in logins:
        discovery = (await http.get(pool.discovery_url)).json()
        assert discovery["issuer"] == pool.issuer == f"https://cognito-idp.us-east-1.amazonaws.com/{pool.pool_id}"
        assert discovery["jwks_uri"] == pool.jwks_url
        id_claims = await verified_claims(http, pool.jwks_url, tokens.id_token, audience=app.client_id,
                                          issuer=pool.issuer)
        assert (id_claims["token_use"], id_claims["cognito:groups"]) == ("id", [group])
        assert id_claims["email"] == "alice@example.test"
        access_claims = await verified_claims(http, pool.jwks_url, tokens.access_token, issuer=pool.issuer)
        assert (access_claims["token_use"], access_claims["client_id"]) == ("access", app.client_id)
        assert access_claims["cognito:groups"] == [group]
        assert "aud" not in access_claims

    # moto signs every pool with one key: only `iss` tells pool A's token from pool B's.
    crossed = await verified_claims(http, pool_b.jwks_url, tokens_a.id_token, audience=app_a.client_id)
    assert crossed["iss"] == pool_a.issuer != pool_b.issuer


async def test_moto_cognito_refresh_shows_group_changes(moto_cognito: MotoCognito, http: httpx.AsyncClient) -> None:
    pool = moto_cognito.create_pool("staff", groups=["mcp-admin", "mcp-user"])
    app = moto_cognito.create_app_client(pool)
    moto_cognito.create_user(pool, "bob", "Bob-passw0rd!", groups=["mcp-admin"])
    tokens = moto_cognito.login(app, "bob", "Bob-passw0rd!")
    assert tokens.refresh_token

    moto_cognito.set_groups(pool, "bob", ["mcp-user"])
    refreshed = moto_cognito.refresh(app, tokens.refresh_token, "bob")

    claims = await verified_claims(http, pool.jwks_url, refreshed.id_token, audience=app.client_id)
    assert claims["cognito:groups"] == ["mcp-user"]


async def test_minted_client_credentials_token_verifies_with_the_moto_jwks(moto_cognito: MotoCognito,
                                                                          http: httpx.AsyncClient) -> None:
    pool = moto_cognito.create_pool("machines")
    token = moto_cognito.mint_client_credentials_token(pool, "agent-1", ["mcp/registry.read"])

    claims = await verified_claims(http, pool.jwks_url, token, issuer=pool.issuer)
    assert (claims["client_id"], claims["token_use"], claims["scope"]) == ("agent-1", "access", "mcp/registry.read")
