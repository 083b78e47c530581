"""TokenValidator and JwksCache against a real JWKS endpoint on 127.0.0.1."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from mcp_gateway.tokens import (
    JwksCache,
    JwksUnavailable,
    TokenInvalid,
    TokenPolicy,
    TokenValidator,
    claims_groups,
    claims_scopes,
)
from tests.support.jwks_server import DROP, JwksServer, SigningKey, jwks_server, token_claims  # noqa: F401

ISSUER = "https://idp.test/tenant"
AUDIENCE = "gateway-client"
POLICY = TokenPolicy(issuer=ISSUER, audiences=(AUDIENCE,))


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(scope="module")
def rsa_key() -> SigningKey:
    return SigningKey.rsa("rsa-1")


@pytest.fixture(scope="module")
def ec_key() -> SigningKey:
    return SigningKey.ec("ec-1")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def idp(jwks_server: JwksServer, rsa_key: SigningKey, ec_key: SigningKey) -> JwksServer:
    jwks_server.publish(rsa_key, ec_key)
    return jwks_server


@pytest.fixture
async def make_validator(
    idp: JwksServer, clock: FakeClock
) -> AsyncIterator[Callable[..., TokenValidator]]:
    caches: list[JwksCache] = []

    def make(policy: TokenPolicy = POLICY, **cache_options: object) -> TokenValidator:
        options = {"min_refetch_interval": 60, "ttl": 3600, "clock": clock, **cache_options}
        caches.append(JwksCache(idp.url, **options))  # type: ignore[arg-type]
        return TokenValidator(policy, caches[-1])

    yield make
    for cache in caches:
        await cache.aclose()


@pytest.fixture
def validator(make_validator: Callable[..., TokenValidator]) -> TokenValidator:
    return make_validator()


def claims(**overrides: object) -> dict:
    return token_claims(ISSUER, AUDIENCE, **overrides)


async def refused(validator: TokenValidator, token: str, **kwargs: object) -> str:
    with pytest.raises(TokenInvalid) as refusal:
        await validator.validate(token, **kwargs)  # type: ignore[arg-type]
    return refusal.value.reason


# --- good tokens -------------------------------------------------------------


@pytest.mark.parametrize(
    ("make_key", "with_alg"),
    [
        (lambda: SigningKey.rsa("r256"), True),
        (lambda: SigningKey.rsa("r384", "RS384"), False),
        (lambda: SigningKey.rsa("r512", "RS512"), True),
        (lambda: SigningKey.rsa("p256", "PS256"), False),
        (lambda: SigningKey.ec("e256"), True),
        (lambda: SigningKey.ec("e384", "ES384"), False),
    ],
    ids=["RS256", "RS384-alg-less-jwk", "RS512", "PS256-alg-less-jwk", "ES256", "ES384-alg-less-jwk"],
)
async def test_good_token_validates(
    idp: JwksServer, validator: TokenValidator, make_key: Callable[[], SigningKey], with_alg: bool
) -> None:
    key = make_key()
    idp.publish(key, with_alg=with_alg)
    expected = claims(email="a@example.com")
    assert await validator.validate(key.sign(expected)) == expected


async def test_audience_list_containing_ours_is_accepted(
    validator: TokenValidator, rsa_key: SigningKey
) -> None:
    token = rsa_key.sign(claims(aud=["other", AUDIENCE]))
    assert (await validator.validate(token))["aud"] == ["other", AUDIENCE]


@pytest.mark.parametrize(
    ("claim", "within", "beyond", "reason"),
    [
        ("exp", -30, -90, "token expired"),
        ("iat", +30, +90, "token issued in the future (iat)"),
        ("nbf", +30, +90, "token not yet valid (nbf)"),
    ],
    ids=["exp", "iat", "nbf"],
)
async def test_times_are_accepted_within_the_leeway_and_refused_beyond_it(
    validator: TokenValidator, rsa_key: SigningKey, claim: str, within: int, beyond: int, reason: str
) -> None:
    # The default leeway is 60 s. Offsets from now, taken when the test runs (not at
    # collection, which may be minutes earlier).
    now = int(time.time())
    accepted = claims(**{claim: now + within})
    assert await validator.validate(rsa_key.sign(accepted)) == accepted
    assert await refused(validator, rsa_key.sign(claims(**{claim: now + beyond}))) == reason


async def test_leeway_is_configurable(make_validator, rsa_key: SigningKey) -> None:
    strict = make_validator(TokenPolicy(issuer=ISSUER, audiences=(AUDIENCE,), leeway=0))
    reason = await refused(strict, rsa_key.sign(claims(exp=int(time.time()) - 5)))
    assert reason == "token expired"


async def test_cognito_access_token_uses_client_id(make_validator, rsa_key: SigningKey) -> None:
    policy = TokenPolicy(
        issuer=ISSUER, audiences=("app-client",), audience_claim="client_id", token_use="access"
    )
    cognito = make_validator(policy)
    good = claims(aud=DROP, client_id="app-client", token_use="access", scope="mcp:registry:read")
    assert (await cognito.validate(rsa_key.sign(good)))["client_id"] == "app-client"

    cases = {
        "audience not accepted": {**good, "client_id": "other-client"},
        "missing required claim: client_id": {k: v for k, v in good.items() if k != "client_id"},
        "token_use is not 'access'": {**good, "token_use": "id"},
    }
    for reason, bad in cases.items():
        assert await refused(cognito, rsa_key.sign(bad)) == reason
    # an `aud` naming the client does not stand in for `client_id`
    only_aud = {k: v for k, v in good.items() if k != "client_id"} | {"aud": "app-client"}
    assert await refused(cognito, rsa_key.sign(only_aud)) == "missing required claim: client_id"


async def test_nonce_is_checked_when_given(validator: TokenValidator, rsa_key: SigningKey) -> None:
    token = rsa_key.sign(claims(nonce="n-0S6_WzA2Mj"))
    assert (await validator.validate(token, nonce="n-0S6_WzA2Mj"))["nonce"] == "n-0S6_WzA2Mj"
    assert await refused(validator, token, nonce="another") == "nonce does not match"
    assert await refused(validator, token, nonce="ñ") == "nonce does not match"
    no_nonce = rsa_key.sign(claims())
    assert await refused(validator, no_nonce, nonce="n-0S6_WzA2Mj") == "nonce does not match"
    numeric = rsa_key.sign(claims(nonce=12))
    assert await refused(validator, numeric, nonce="12") == "nonce does not match"


async def test_required_claims_are_configurable(make_validator, rsa_key: SigningKey) -> None:
    policy = TokenPolicy(
        issuer=ISSUER, audiences=(AUDIENCE,), required_claims=("exp", "iat", "iss", "sub", "email")
    )
    reason = await refused(make_validator(policy), rsa_key.sign(claims()))
    assert reason == "missing required claim: email"


async def test_token_without_kid_is_matched_only_when_one_key_fits(
    idp: JwksServer, make_validator, rsa_key: SigningKey
) -> None:
    # rsa-1 and ec-1 are published: exactly one key fits RS256.
    token = rsa_key.sign(claims(), kid=DROP)
    assert (await make_validator().validate(token))["sub"] == "user-1"

    idp.publish(rsa_key, SigningKey.rsa("rsa-2"))
    reason = await refused(make_validator(), token)
    assert reason == "token does not say which signing key (kid) to use"


# --- policy ------------------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [
        {"algorithms": ("none",)},
        {"algorithms": ("RS256", "HS256")},
        {"algorithms": ("HS512",)},
        {"algorithms": ("rs256",)},
        {"algorithms": ()},
        {"audiences": ()},
        {"audiences": ("",)},
        {"audiences": AUDIENCE},
        {"issuer": ""},
        {"leeway": -1},
    ],
)
def test_unsafe_policy_is_refused(options: dict) -> None:
    with pytest.raises(ValueError, match="token policy"):
        TokenPolicy(**{"issuer": ISSUER, "audiences": (AUDIENCE,), **options})


# --- claims helpers ----------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "groups"),
    [
        (["mcp-admin", "mcp-user"], ("mcp-admin", "mcp-user")),
        (["b", "a", "b"], ("b", "a")),
        (["ok", 1, None, {"x": 1}, ["nested"], "", True], ("ok",)),
        ("mcp-user", ("mcp-user",)),
        ("guests mcp-admin", ("guests mcp-admin",)),
        ("a,b", ("a,b",)),
        ("", ()),
        (None, ()),
        (42, ()),
        ({"mcp-admin": True}, ()),
    ],
)
def test_claims_groups(value: object, groups: tuple[str, ...]) -> None:
    assert claims_groups({"cognito:groups": value}, "cognito:groups") == groups


def test_claims_groups_missing_claim() -> None:
    assert claims_groups({"groups": ["a"]}, "cognito:groups") == ()


@pytest.mark.parametrize(
    ("claims_in", "scopes"),
    [
        ({"scope": "openid mcp:registry:read"}, ("openid", "mcp:registry:read")),
        ({"scope": "  a\tb\n c  "}, ("a", "b", "c")),
        ({"scp": ["a", "b"]}, ("a", "b")),
        ({"scp": "a b"}, ("a", "b")),
        ({"scope": "a b", "scp": ["b", "c"]}, ("a", "b", "c")),
        ({"scp": ["a", 3, None, "", "b c", "d"]}, ("a", "d")),
        ({"scope": ["x", "y"]}, ("x", "y")),
        ({"scope": 7, "scp": {"a": 1}}, ()),
        ({}, ()),
    ],
)
def test_claims_scopes(claims_in: dict, scopes: tuple[str, ...]) -> None:
    assert claims_scopes(claims_in) == scopes


# --- the key cache -----------------------------------------------------------


async def test_keys_are_cached(idp: JwksServer, validator: TokenValidator, rsa_key, ec_key) -> None:
    for _ in range(5):
        await validator.validate(rsa_key.sign(claims()))
        await validator.validate(ec_key.sign(claims()))
    assert idp.request_count == 1
    assert idp.paths == ["/.well-known/jwks.json"]


async def test_unknown_kid_flood_costs_one_request_per_interval(
    idp: JwksServer, validator: TokenValidator, rsa_key: SigningKey, clock: FakeClock
) -> None:
    idp.delay = 0.05  # keep the fetch in flight while the flood arrives
    forged = [rsa_key.sign(claims(), kid=uuid.uuid4().hex) for _ in range(200)]

    results = await asyncio.gather(*(validator.validate(t) for t in forged), return_exceptions=True)
    assert {type(r) for r in results} == {TokenInvalid}
    assert {r.reason for r in results} == {"unknown signing key (kid)"}  # type: ignore[union-attr]
    assert idp.request_count == 1  # the initial fetch, shared by all 200

    clock.advance(61)
    results = await asyncio.gather(*(validator.validate(t) for t in forged), return_exceptions=True)
    assert {type(r) for r in results} == {TokenInvalid}
    assert idp.request_count == 2  # one refetch for the whole second flood

    for token in forged:  # a steady trickle: one refetch per interval at most
        clock.advance(1)
        await refused(validator, token)
    assert idp.request_count <= 2 + 200 // 60 + 1
    assert (await validator.validate(rsa_key.sign(claims())))["sub"] == "user-1"


async def test_new_kid_is_picked_up_after_the_interval(
    idp: JwksServer, validator: TokenValidator, rsa_key: SigningKey, clock: FakeClock
) -> None:
    await validator.validate(rsa_key.sign(claims()))
    rotated = SigningKey.ec("ec-rotated")
    idp.publish(rsa_key, rotated)
    token = rotated.sign(claims())

    assert await refused(validator, token) == "unknown signing key (kid)"
    clock.advance(59)
    assert await refused(validator, token) == "unknown signing key (kid)"
    assert idp.request_count == 1

    clock.advance(2)
    assert (await validator.validate(token))["sub"] == "user-1"
    assert (await validator.validate(rsa_key.sign(claims())))["sub"] == "user-1"
    assert idp.request_count == 2


async def test_removed_key_stops_working_after_ttl(
    idp: JwksServer, validator: TokenValidator, rsa_key: SigningKey, ec_key: SigningKey, clock
) -> None:
    token = rsa_key.sign(claims())
    await validator.validate(token)
    idp.publish(ec_key)
    clock.advance(3599)
    await validator.validate(token)
    clock.advance(2)
    assert await refused(validator, token) == "unknown signing key (kid)"
    assert idp.request_count == 2


@pytest.mark.parametrize(
    "break_idp",
    [
        lambda idp: idp.stop(),
        lambda idp: setattr(idp, "status", 500),
        lambda idp: setattr(idp, "body", b"<html>maintenance</html>"),
        lambda idp: setattr(idp, "body", b'{"error": "no keys"}'),
        lambda idp: setattr(idp, "body", b"[" * 100_000),
        lambda idp: setattr(idp, "body", b'{"keys": [' + b'{"kty": "RSA"},' * 50_000 + b"{}]}"),
    ],
    ids=["connection-refused", "http-500", "not-json", "no-keys-list", "deep-json", "oversized"],
)
async def test_idp_down_keeps_cached_keys_and_refuses_unknown_ones(
    idp: JwksServer, validator: TokenValidator, rsa_key, clock: FakeClock, break_idp
) -> None:
    await validator.validate(rsa_key.sign(claims()))
    break_idp(idp)
    clock.advance(7200)  # past both the TTL and the refetch interval

    assert (await validator.validate(rsa_key.sign(claims())))["sub"] == "user-1"
    reason = await refused(validator, SigningKey.ec("new-kid").sign(claims()))
    assert reason == "unknown signing key (kid); the key set could not be refreshed"


async def test_idp_down_from_the_start_is_jwks_unavailable(
    idp: JwksServer, validator: TokenValidator, rsa_key: SigningKey
) -> None:
    idp.status = 503
    for _ in range(3):
        with pytest.raises(JwksUnavailable, match="signing keys unavailable"):
            await validator.validate(rsa_key.sign(claims()))
    assert idp.request_count == 1  # retried only after the interval


async def test_idp_recovers_after_the_interval(
    idp: JwksServer, validator: TokenValidator, rsa_key: SigningKey, clock: FakeClock
) -> None:
    idp.status = 502
    with pytest.raises(JwksUnavailable):
        await validator.validate(rsa_key.sign(claims()))
    idp.status = 200
    clock.advance(60)
    assert (await validator.validate(rsa_key.sign(claims())))["sub"] == "user-1"
    assert idp.request_count == 2


async def test_slow_idp_times_out(make_validator, idp: JwksServer, rsa_key: SigningKey) -> None:
    idp.delay = 1.0
    validator = make_validator(timeout=0.2)
    started = time.monotonic()
    with pytest.raises(JwksUnavailable):
        await validator.validate(rsa_key.sign(claims()))
    assert time.monotonic() - started < 0.9


async def test_fetching_keys_does_not_block_the_event_loop(
    idp: JwksServer, validator: TokenValidator, rsa_key: SigningKey
) -> None:
    idp.delay = 0.5
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticking = asyncio.create_task(ticker())
    try:
        await validator.validate(rsa_key.sign(claims()))
    finally:
        ticking.cancel()
    assert ticks >= 20  # a blocking fetch would have frozen the ticker for 0.5 s


async def test_given_http_client_is_used_and_left_open(idp: JwksServer, rsa_key: SigningKey) -> None:
    seen: list[str] = []

    async def record(request: httpx.Request) -> None:
        seen.append(str(request.url))

    async with httpx.AsyncClient(event_hooks={"request": [record]}) as http:
        cache = JwksCache(idp.url, http=http)
        await TokenValidator(POLICY, cache).validate(rsa_key.sign(claims()))
        await cache.aclose()
        assert not http.is_closed
    assert seen == [idp.url]


@pytest.mark.parametrize("url", ["file:///etc/jwks.json", "ftp://idp.test/jwks", "jwks.json"])
def test_jwks_url_must_be_http(url: str) -> None:
    with pytest.raises(ValueError, match="JWKS URL"):
        JwksCache(url)
