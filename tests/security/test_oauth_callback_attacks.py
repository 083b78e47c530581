"""The OAuth callback (/oauth/callback) against hostile answers, table by table.

The login app runs in this process (ASGI) with its real session store; the IdP is real HTTP
on loopback: a scriptable one (tests/support/fake_idp.py) for what a real provider never
sends — forged ID tokens, floods of unknown `kid`s, failures — and panva's oidc-provider for
the PKCE check. Every refusal must be a page (never a traceback or a 500), set no session
cookie, and, for the `state`/`iss` cases, come before the code is redeemed (the IdP's token
endpoint is never called).
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from login_app.app import create_app
from login_app.transaction import TRANSACTION_COOKIE, TransactionCodec
from mcp_gateway.config import GatewayConfig
from mcp_gateway.identity import SESSION_COOKIE
from mcp_gateway.providers import clear_discovery_cache
from tests.security.test_jwt_attacks import flip_last_byte, forge, hmac_signed, with_signature
from tests.support.fake_idp import PUBLIC_URL, FakeIdp, generic_config
from tests.support.gateway import TEST_SECRET_KEY
from tests.support.headless import headless_authorize
from tests.support.jwks_server import SigningKey
from tests.support.oidc_provider import DEFAULT_USERS, OidcProvider, oidc_provider  # noqa: F401  (fixture)

pytestmark = [pytest.mark.timeout(30), pytest.mark.asyncio(loop_scope="module")]

CALLBACK = f"{PUBLIC_URL}/oauth/callback"


@dataclass
class Browser:
    """One browser (cookie jar) talking to the in-process login app, and the IdP over HTTP."""

    app: httpx.AsyncClient
    idp: httpx.AsyncClient

    async def start(self, next_path: str = "/oauth/me") -> httpx.URL:
        response = await self.app.get("/oauth/login/generic", params={"next": next_path})
        assert response.status_code == 302, response.text
        return httpx.URL(response.headers["location"])

    async def authorize(self, next_path: str = "/oauth/me") -> httpx.URL:
        """The callback URL the IdP sends this browser back to (not yet followed)."""
        response = await self.idp.get(await self.start(next_path))
        assert response.status_code == 302, response.text
        location = httpx.URL(response.headers["location"])
        assert str(location).startswith(CALLBACK)
        return location

    async def callback(self, url: httpx.URL, **cookies: str) -> httpx.Response:
        headers = {"cookie": "; ".join(f"{k}={v}" for k, v in cookies.items())} if cookies else None
        return await self.app.get(url, headers=headers)

    @property
    def transaction(self) -> str:
        return self.app.cookies.get(TRANSACTION_COOKIE) or ""


@asynccontextmanager
async def login_app(config: GatewayConfig) -> AsyncIterator[Callable[[], Browser]]:
    """The login app with its lifespan run; yields a factory of fresh browsers."""
    app = create_app(config)
    async with app.router.lifespan_context(app), httpx.AsyncClient(timeout=10, trust_env=False) as idp_http:
        clients: list[httpx.AsyncClient] = []

        def browser() -> Browser:
            client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=PUBLIC_URL)
            clients.append(client)
            return Browser(client, idp_http)

        try:
            yield browser
        finally:
            for client in clients:
                await client.aclose()
            clear_discovery_cache()


@pytest.fixture(scope="module")
def shared_idp() -> Iterator[FakeIdp]:
    with FakeIdp() as idp:
        yield idp


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shared_browsers(shared_idp: FakeIdp, tmp_path_factory: pytest.TempPathFactory,
                          ) -> AsyncIterator[Callable[[], Browser]]:
    config = generic_config(tmp_path_factory.mktemp("login-app"), shared_idp.issuer, shared_idp.client_id,
                            shared_idp.client_secret)
    async with login_app(config) as factory:
        yield factory


@pytest.fixture
def fake_idp(shared_idp: FakeIdp) -> Iterator[FakeIdp]:
    """One login app and IdP serve the module (start-up is the slow part); each test starts honest."""
    shared_idp.reset()
    yield shared_idp
    shared_idp.reset()


@pytest.fixture
def browsers(shared_browsers: Callable[[], Browser], fake_idp: FakeIdp) -> Callable[[], Browser]:
    return shared_browsers


def assert_refused_page(response: httpx.Response, status: int, *phrases: str) -> None:
    assert response.status_code == status, response.text[:500]
    assert response.headers["content-type"].startswith("text/html")
    assert SESSION_COOKIE not in response.headers.get("set-cookie", "")
    assert "Traceback" not in response.text and "Exception" not in response.text
    assert 'href="/oauth/login?next=' in response.text, "no way back to the login page"
    for phrase in phrases:
        assert phrase in response.text


@dataclass
class Scene:
    browser: Browser  # whose callback is attacked (or who attacks)
    other: Browser  # a second browser: another person's login
    idp: FakeIdp


def with_query(url: httpx.URL, **changes: str | None) -> httpx.URL:
    params = dict(url.params)
    for name, value in changes.items():
        if value is None:
            params.pop(name, None)
        else:
            params[name] = value
    return url.copy_with(params=params)


async def test_a_clean_login_works(browsers: Callable[[], Browser], fake_idp: FakeIdp) -> None:
    """The baseline every refusal below is measured against."""
    browser = browsers()
    response = await browser.callback(await browser.authorize())
    assert response.status_code == 303 and response.headers["location"] == "/oauth/me"
    me = (await browser.app.get("/oauth/me")).json()
    assert (me["user"], me["provider"], me["groups"]) == ("alice", "generic", ["mcp-admin"])
    assert len(fake_idp.token_requests) == 1


# -- state and iss: checked before the code is redeemed --------------------------------------------


Attack = Callable[[Scene], Awaitable[httpx.Response]]


def tampered(**changes: str | Callable[[str], str] | None) -> Attack:
    """This browser's own callback with query parameters changed (None: removed; a function: of the old value)."""
    async def attack(scene: Scene) -> httpx.Response:
        url = await scene.browser.authorize()
        values = {name: change(url.params[name]) if callable(change) else change for name, change in changes.items()}
        return await scene.browser.callback(with_query(url, **values))
    return attack


async def _foreign_state(scene: Scene) -> httpx.Response:
    """Login CSRF / code injection: another browser's callback (its code and state) in this browser."""
    await scene.browser.authorize()
    return await scene.browser.callback(await scene.other.authorize())


async def _replayed(scene: Scene) -> httpx.Response:
    """A captured callback, cookie included, sent again after the real login used it."""
    url = await scene.other.authorize()
    cookie = scene.other.transaction
    assert (await scene.other.callback(url)).status_code == 303
    scene.idp.token_requests.clear()
    return await scene.browser.callback(url, **{TRANSACTION_COOKIE: cookie})  # the store refuses the state


def with_cookie(make: Callable[[str], str]) -> Attack:
    """This browser's callback with its transaction cookie replaced by `make(cookie)`."""
    async def attack(scene: Scene) -> httpx.Response:
        url = await scene.browser.authorize()
        cookie = scene.browser.transaction
        scene.browser.app.cookies.clear()
        return await scene.browser.callback(url, **{TRANSACTION_COOKIE: make(cookie)})
    return attack


def _aged(cookie: str) -> str:
    transaction = TransactionCodec(TEST_SECRET_KEY).loads(cookie)
    return TransactionCodec(TEST_SECRET_KEY).dumps(replace(transaction, created=time.time() - 601))


def _signed_with_another_key(cookie: str) -> str:
    transaction = TransactionCodec(TEST_SECRET_KEY).loads(cookie)
    return TransactionCodec("another-secret-key-0123456789-abcdefghijkl").dumps(transaction)


async def _other_provider_path(scene: Scene) -> httpx.Response:
    url = await scene.browser.authorize()
    return await scene.browser.callback(url.copy_with(path="/oauth/callback/okta"))


BEFORE_REDEMPTION: dict[str, tuple[Attack, int, str]] = {
    "state-missing": (tampered(state=None), 400, "has no state"),
    "state-empty": (tampered(state=""), 400, "has no state"),
    "state-foreign": (_foreign_state, 400, "belongs to another sign-in"),
    "state-guessed": (tampered(state=secrets.token_urlsafe(32)), 400, "belongs to another sign-in"),
    "state-replayed": (_replayed, 400, "already completed"),
    "state-expired": (with_cookie(_aged), 400, "took too long"),
    "no-transaction-cookie": (with_cookie(lambda cookie: ""), 400, "no sign-in was started in this browser"),
    "transaction-cookie-tampered": (with_cookie(lambda cookie: cookie[:-3] + ("x" if cookie[-3] != "x" else "y")
                                                + cookie[-2:]), 400, "cookie is not valid"),
    "transaction-cookie-foreign-key": (with_cookie(_signed_with_another_key), 400, "cookie is not valid"),
    "callback-of-unconfigured-provider": (_other_provider_path, 404, "No identity provider named"),
    # RFC 9207 mix-up defence: the IdP advertises `authorization_response_iss_parameter_supported`
    "iss-wrong": (tampered(iss="https://evil.example"), 400, "another issuer"),
    "iss-trailing-slash": (tampered(iss=lambda iss: iss + "/"), 400, "another issuer"),
    "iss-missing": (tampered(iss=None), 400, "lacks the issuer"),
    "code-missing": (tampered(code=None), 400, "no authorization code"),
}


@pytest.mark.parametrize("case", BEFORE_REDEMPTION, ids=list(BEFORE_REDEMPTION))
async def test_callbacks_not_of_this_browsers_login_are_refused_before_redeeming(
        case: str, browsers: Callable[[], Browser], fake_idp: FakeIdp) -> None:
    attack, status, phrase = BEFORE_REDEMPTION[case]
    scene = Scene(browsers(), browsers(), fake_idp)
    response = await attack(scene)
    assert_refused_page(response, status, phrase)
    assert fake_idp.token_requests == [], "the code was redeemed before the check"
    assert (await scene.browser.app.get("/oauth/me")).status_code == 401


# -- the ID token: forged, stale or for someone else -------------------------------------------------

STRANGER = SigningKey.rsa("fake-idp-key")  # same kid as the IdP's key, not published


def _public_pem(idp: FakeIdp) -> bytes:
    from cryptography.hazmat.primitives import serialization
    return idp.key.private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


FORGERIES: dict[str, tuple[Callable[[FakeIdp, dict[str, Any]], str], str]] = {
    "iss-wrong": (lambda idp, c: idp.key.sign({**c, "iss": "https://evil.example"}), "issuer not accepted"),
    "aud-wrong": (lambda idp, c: idp.key.sign({**c, "aud": "another-client"}), "audience not accepted"),
    "aud-several-without-azp": (lambda idp, c: idp.key.sign({**c, "aud": [idp.client_id, "other"]}),
                                "another party (azp)"),
    "expired": (lambda idp, c: idp.key.sign({**c, "iat": c["iat"] - 3600, "exp": c["iat"] - 600}), "token expired"),
    "nonce-wrong": (lambda idp, c: idp.key.sign({**c, "nonce": "another-nonce"}), "nonce does not match"),
    "nonce-missing": (lambda idp, c: idp.key.sign({k: v for k, v in c.items() if k != "nonce"}),
                      "nonce does not match"),
    "alg-none": (lambda idp, c: forge({"alg": "none", "kid": idp.key.kid}, c), "algorithm not allowed"),
    "HS256-signed-with-the-RSA-public-key": (
        lambda idp, c: hmac_signed({"alg": "HS256", "kid": idp.key.kid}, c, _public_pem(idp)),
        "algorithm not allowed"),
    "signature-tampered": (lambda idp, c: with_signature(idp.key.sign(c), flip_last_byte),
                           "signature verification failed"),
    "payload-swapped-for-admin": (
        lambda idp, c: ".".join([idp.key.sign(c).split(".")[0],
                                 forge({}, {**c, "groups": ["mcp-admin", "x"]}).split(".")[1],
                                 idp.key.sign(c).split(".")[2]]),
        "signature verification failed"),
    "signed-by-a-stranger-with-the-real-kid": (lambda idp, c: STRANGER.sign(c), "signature verification failed"),
    "jku-pointing-elsewhere": (lambda idp, c: idp.key.sign(c, jku="http://127.0.0.1:9/jwks"), "names its own key"),
    "not-a-jwt": (lambda idp, c: "not-a-jwt", "malformed token"),
}


@pytest.mark.parametrize("case", FORGERIES, ids=list(FORGERIES))
async def test_forged_or_stale_id_tokens_are_refused(case: str, browsers: Callable[[], Browser],
                                                     fake_idp: FakeIdp) -> None:
    forgery, reason = FORGERIES[case]
    fake_idp.forge = lambda claims: forgery(fake_idp, claims)
    browser = browsers()
    response = await browser.callback(await browser.authorize())
    assert_refused_page(response, 401, "Sign-in could not be verified", reason)
    assert (await browser.app.get("/oauth/me")).status_code == 401


async def test_a_flood_of_unknown_kids_costs_the_idp_one_jwks_fetch(browsers: Callable[[], Browser],
                                                                    fake_idp: FakeIdp) -> None:
    browser = browsers()
    assert (await browser.callback(await browser.authorize())).status_code == 303  # keys fetched once
    fetched = fake_idp.jwks_requests
    fake_idp.forge = lambda claims: STRANGER.sign(claims, kid=secrets.token_hex(8))
    for _ in range(15):
        response = await browser.callback(await browser.authorize())
        assert_refused_page(response, 401, "unknown signing key")
    # the first unknown kid may trigger one refetch; the rest wait out the refetch interval
    assert fake_idp.jwks_requests - fetched <= 1


# -- PKCE, against a real provider --------------------------------------------------------------------


async def test_an_injected_code_fails_pkce_at_a_real_provider(oidc_provider: OidcProvider, tmp_path: Path) -> None:
    """The attacker's own browser (own state, own verifier) presents the victim's code: the
    state check passes, but the code's challenge is the victim's and the IdP refuses it."""
    client = oidc_provider.add_client("gateway", redirect_uris=[CALLBACK])
    config = generic_config(tmp_path, oidc_provider.issuer, client.client_id, client.client_secret)
    async with login_app(config) as browsers:
        victim, attacker = browsers(), browsers()
        victim_url = await headless_authorize(victim.idp, str(await victim.start()), "alice",
                                              DEFAULT_USERS["alice"]["password"], stop_at_prefix=CALLBACK)
        attacker_url = await headless_authorize(attacker.idp, str(await attacker.start()), "carol",
                                                DEFAULT_USERS["carol"]["password"], stop_at_prefix=CALLBACK)
        tokens_before = oidc_provider.token_request_count
        injected = with_query(attacker_url, code=victim_url.params["code"])
        response = await attacker.callback(injected)
        assert_refused_page(response, 400, "did not accept the sign-in", "invalid_grant")
        assert oidc_provider.token_request_count == tokens_before + 1
        assert (await attacker.app.get("/oauth/me")).status_code == 401


# -- the IdP failing or refusing ----------------------------------------------------------------------


async def test_idp_down_at_the_callback_is_a_clear_502_page(tmp_path: Path) -> None:
    with FakeIdp() as idp:
        async with login_app(generic_config(tmp_path, idp.issuer, idp.client_id, idp.client_secret)) as browsers:
            browser = browsers()
            url = await browser.authorize()
            idp.stop()
            response = await browser.callback(url)
    assert_refused_page(response, 502, "cannot be reached")


@pytest.mark.parametrize("answer", [
    (503, {"error": "temporarily_unavailable"}),
    (500, {}),
], ids=["503", "500"])
async def test_idp_failing_at_the_token_endpoint_is_a_502_page(answer: tuple[int, dict],
                                                              browsers: Callable[[], Browser],
                                                              fake_idp: FakeIdp) -> None:
    fake_idp.token_answer = lambda form: answer
    browser = browsers()
    response = await browser.callback(await browser.authorize())
    assert_refused_page(response, 502, "cannot be reached")


async def test_a_token_answer_without_id_token_is_refused(browsers: Callable[[], Browser], fake_idp: FakeIdp) -> None:
    fake_idp.token_answer = lambda form: (200, {"access_token": "x", "token_type": "Bearer"})
    browser = browsers()
    response = await browser.callback(await browser.authorize())
    assert_refused_page(response, 401, "no ID token")


HOSTILE_DESCRIPTION = '<script>alert(1)</script><img src=x onerror=alert(2)> "quoted" & more'


async def test_an_idp_error_is_shown_escaped_with_a_way_back(browsers: Callable[[], Browser],
                                                            fake_idp: FakeIdp) -> None:
    browser = browsers()
    url = with_query(await browser.authorize(), code=None, error="access_denied",
                     error_description=HOSTILE_DESCRIPTION)
    response = await browser.callback(url)
    assert_refused_page(response, 400, "did not sign you in", "access_denied")
    assert "<script>" not in response.text and "<img" not in response.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in response.text
    assert fake_idp.token_requests == []


async def test_an_idp_error_without_a_valid_state_shows_nothing_of_it(browsers: Callable[[], Browser]) -> None:
    """Anyone can craft /oauth/callback?error=...: the text is shown only for this browser's login."""
    browser = browsers()
    await browser.authorize()
    response = await browser.app.get("/oauth/callback", params={
        "error": "access_denied", "error_description": "Call +1-555-PHISH to unlock your account"})
    assert_refused_page(response, 400, "Sign-in could not be verified")
    assert "PHISH" not in response.text and "access_denied" not in response.text


@pytest.mark.parametrize("next_path", ["//evil.example/", "https://evil.example/", "/\\evil.example", "/%2F%2Fevil"])
async def test_next_cannot_leave_the_gateway(next_path: str, browsers: Callable[[], Browser]) -> None:
    browser = browsers()
    response = await browser.callback(await browser.authorize(next_path))
    assert response.status_code == 303 and response.headers["location"] == "/"  # the default landing: the servers page


async def test_nothing_secret_reaches_the_log(browsers: Callable[[], Browser], fake_idp: FakeIdp,
                                             caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG")
    browser = browsers()
    url = await browser.authorize()
    response = await browser.callback(url)
    assert response.status_code == 303
    token = re.search(f"{SESSION_COOKIE}=([^;]+)", response.headers["set-cookie"]).group(1)
    # the gateway's own log lines (this test's HTTP client logs the callback URL it requests)
    logged = "\n".join(record.getMessage() for record in caplog.records
                       if record.name.startswith(("login_app", "mcp_gateway", "authlib")))
    assert "auth: login user=alice provider=generic groups=mcp-admin" in logged
    for secret in (url.params["code"], url.params["state"], token, fake_idp.client_secret):
        assert secret not in logged
