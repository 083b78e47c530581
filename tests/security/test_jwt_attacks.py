"""TokenValidator against a table of forged and malformed tokens.

Each attack must be refused with TokenInvalid and a reason that says why, never
with another exception, and never by fetching a key from a URL in the token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import random
import ssl
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from mcp_gateway.tokens import JwksCache, TokenInvalid, TokenPolicy, TokenValidator
from tests.support.jwks_server import DROP, JwksServer, SigningKey, jwks_server, token_claims  # noqa: F401

ISSUER = "https://idp.test/tenant"
AUDIENCE = "gateway-client"
POLICY = TokenPolicy(issuer=ISSUER, audiences=(AUDIENCE,))
OCT_SECRET = b"a-symmetric-key-that-should-never-sit-in-a-jwks"
# Refusals that come before any key is looked up, so before any network.
HEADER_STAGE_REASONS = {
    "algorithm not allowed",
    "token header names its own key (jku/x5u/jwk/x5c); refused",
    "token too large",
    "malformed token",
    "malformed token (a JWT has three segments)",
    "malformed token (kid too long)",
}


@dataclass
class Kit:
    rsa: SigningKey
    ec: SigningKey
    ec384: SigningKey
    stranger: SigningKey  # not published anywhere
    attacker_url: str

    def claims(self, **overrides: Any) -> dict[str, Any]:
        return token_claims(ISSUER, AUDIENCE, **overrides)

    def good(self, **overrides: Any) -> str:
        return self.rsa.sign(self.claims(**overrides))

    def rsa_public_pem(self, fmt: serialization.PublicFormat) -> bytes:
        return self.rsa.private_key.public_key().public_bytes(serialization.Encoding.PEM, fmt)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def segment(value: Any) -> str:
    return b64(json.dumps(value).encode())


def forge(header: Any, claims: Any, signature: bytes = b"") -> str:
    return f"{segment(header)}.{segment(claims)}.{b64(signature)}"


def hmac_signed(header: dict, claims: dict, secret: bytes) -> str:
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}
    signing_input = f"{segment(header)}.{segment(claims)}"
    signature = hmac.new(secret, signing_input.encode(), digest[header["alg"]]).digest()
    return f"{signing_input}.{b64(signature)}"


def with_header(token: str, header: Any) -> str:
    """The token with its header replaced, payload and signature kept."""
    _, payload, signature = token.split(".")
    return f"{segment(header)}.{payload}.{signature}"


def with_payload(token: str, claims: Any) -> str:
    header, _, signature = token.split(".")
    return f"{header}.{segment(claims)}.{signature}"


def with_signature(token: str, mutate: Callable[[bytes], bytes]) -> str:
    header, payload, signature = token.split(".")
    raw = base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))
    return f"{header}.{payload}.{b64(mutate(raw))}"


def flip_last_byte(raw: bytes) -> bytes:
    return raw[:-1] + bytes([raw[-1] ^ 1])


def signed_raw_payload(key: SigningKey, payload: bytes | dict) -> str:
    """Signed without pyjwt's checks on what a payload may hold."""
    if isinstance(payload, dict):
        payload = json.dumps(payload).encode()
    return jwt.PyJWS().encode(payload, key.private_key, algorithm=key.alg, headers={"kid": key.kid})


def hs_with_pem(alg: str, fmt: serialization.PublicFormat) -> Callable[[Kit], str]:
    """The classic confusion: HMAC keyed with the RSA public key the verifier holds."""
    return lambda k: hmac_signed({"alg": alg, "kid": k.rsa.kid}, k.claims(), k.rsa_public_pem(fmt))


SPKI = serialization.PublicFormat.SubjectPublicKeyInfo
PKCS1 = serialization.PublicFormat.PKCS1
NOW = int(time.time())

# What each attack must be refused with -> {test id: how to forge the token}.
ATTACKS_BY_REASON: dict[str, dict[str, Callable[[Kit], str]]] = {
    "algorithm not allowed": {
        "alg-none": lambda k: forge({"alg": "none"}, k.claims()),
        "alg-None": lambda k: forge({"alg": "None"}, k.claims()),
        "alg-NONE": lambda k: forge({"alg": "NONE"}, k.claims()),
        "alg-nOnE": lambda k: forge({"alg": "nOnE"}, k.claims()),
        "alg-none-with-real-kid": lambda k: forge({"alg": "none", "kid": k.rsa.kid}, k.claims()),
        "alg-none-keeping-signature": lambda k: with_header(k.good(), {"alg": "none", "kid": "rsa-1"}),
        "alg-missing": lambda k: forge({"kid": "rsa-1"}, k.claims()),
        "alg-empty": lambda k: forge({"alg": ""}, k.claims()),
        "alg-null": lambda k: forge({"alg": None}, k.claims()),
        "alg-list": lambda k: with_header(k.good(), {"alg": ["RS256"], "kid": "rsa-1"}),
        "alg-lowercase": lambda k: with_header(k.good(), {"alg": "rs256", "kid": "rsa-1"}),
        "alg-outside-policy": lambda k: with_header(k.good(), {"alg": "EdDSA", "kid": "rsa-1"}),
        # symmetric algorithms keyed with public material: the classic confusion
        "HS256-with-RSA-public-PEM": hs_with_pem("HS256", SPKI),
        "HS256-with-PKCS1-PEM": hs_with_pem("HS256", PKCS1),
        "HS384-with-RSA-public-PEM": hs_with_pem("HS384", SPKI),
        "HS512-with-RSA-public-PEM": hs_with_pem("HS512", SPKI),
        "HS256-with-the-JWK-as-secret": lambda k: hmac_signed(
            {"alg": "HS256", "kid": "rsa-1"}, k.claims(), json.dumps(k.rsa.public_jwk()).encode()
        ),
        "HS256-with-an-oct-key-the-jwks-leaks": lambda k: hmac_signed(
            {"alg": "HS256", "kid": "sym"}, k.claims(), OCT_SECRET
        ),
    },
    "signature verification failed": {
        "tampered-payload": lambda k: with_payload(k.good(), k.claims(sub="admin", groups=["mcp-admin"])),
        "tampered-signature": lambda k: with_signature(k.good(), flip_last_byte),
        "tampered-ES256-signature": lambda k: with_signature(k.ec.sign(k.claims()), flip_last_byte),
        "signature-stripped": lambda k: with_signature(k.good(), lambda raw: b""),
        "signature-truncated": lambda k: with_signature(k.good(), lambda raw: raw[:128]),
        "ES256-signature-doubled": lambda k: with_signature(k.ec.sign(k.claims()), lambda raw: raw + raw),
        "stranger-key-claiming-real-kid": lambda k: k.stranger.sign(k.claims(), kid="rsa-1"),
    },
    "signing key does not fit": {
        "RS256-naming-the-oct-key": lambda k: k.rsa.sign(k.claims(), kid="sym"),
        "RS512-on-key-published-for-RS256": lambda k: with_header(k.good(), {"alg": "RS512", "kid": "rsa-1"}),
        "PS256-on-key-published-for-RS256": lambda k: k.rsa.sign(k.claims(), alg="PS256"),
        "ES256-naming-RSA-key": lambda k: k.ec.sign(k.claims(), kid="rsa-1"),
        "RS256-naming-EC-key": lambda k: k.rsa.sign(k.claims(), kid="ec-1"),
        "ES384-naming-P256-key": lambda k: k.ec384.sign(k.claims(), kid="ec-1"),
        "ES256-naming-P384-key": lambda k: k.ec.sign(k.claims(), kid="ec384-1"),
    },
    "unknown signing key": {
        "unknown-kid": lambda k: k.rsa.sign(k.claims(), kid="nope"),
        "kid-empty": lambda k: k.rsa.sign(k.claims(), kid=""),
        "kid-path": lambda k: k.rsa.sign(k.claims(), kid="../../../../dev/null"),
        "kid-sql": lambda k: k.rsa.sign(k.claims(), kid="' OR '1'='1"),
    },
    "names its own key": {
        "jku-attacker-server": lambda k: k.stranger.sign(k.claims(), jku=k.attacker_url),
        "jku-on-otherwise-valid-token": lambda k: k.rsa.sign(k.claims(), jku=k.attacker_url),
        "x5u-attacker-server": lambda k: k.stranger.sign(k.claims(), x5u=k.attacker_url),
        "jwk-embedded": lambda k: k.stranger.sign(k.claims(), jwk=k.stranger.public_jwk()),
        "x5c-embedded": lambda k: k.stranger.sign(k.claims(), x5c=["MIIBIjANBgkqhkiG9w0BAQEFAAOC"]),
    },
    "issuer not accepted": {
        "iss-wrong": lambda k: k.good(iss="https://evil.example"),
        "iss-trailing-slash": lambda k: k.good(iss=ISSUER + "/"),
        "iss-case": lambda k: k.good(iss=ISSUER.upper()),
        "iss-list": lambda k: signed_raw_payload(k.rsa, k.claims(iss=[ISSUER])),
    },
    "audience not accepted": {
        "aud-wrong": lambda k: k.good(aud="another-client"),
        "aud-list-wrong": lambda k: k.good(aud=["a", "b"]),
        "aud-case": lambda k: k.good(aud=AUDIENCE.upper()),
    },
    "claim aud malformed": {
        "aud-number": lambda k: k.good(aud=7),
        "aud-object": lambda k: k.good(aud={AUDIENCE: True}),
        "aud-list-mixed": lambda k: k.good(aud=[AUDIENCE, 1]),
    },
    "missing required claim": {
        "iss-missing": lambda k: k.good(iss=DROP),
        "iss-null": lambda k: signed_raw_payload(k.rsa, k.claims(iss=None)),
        "aud-missing": lambda k: k.good(aud=DROP),
        "aud-empty": lambda k: k.good(aud=""),
        "aud-empty-list": lambda k: k.good(aud=[]),
        "client_id-instead-of-aud": lambda k: k.good(aud=DROP, client_id=AUDIENCE),
        "exp-missing": lambda k: k.good(exp=DROP),
        "exp-null": lambda k: k.good(exp=None),
        "iat-missing": lambda k: k.good(iat=DROP),
        "sub-missing": lambda k: k.good(sub=DROP),
    },
    "token expired": {
        "expired": lambda k: k.good(exp=NOW - 3600),
        "expired-beyond-leeway": lambda k: k.good(exp=NOW - 120),
    },
    "not yet valid (nbf)": {"nbf-future": lambda k: k.good(nbf=NOW + 3600)},
    "issued in the future (iat)": {"iat-future": lambda k: k.good(iat=NOW + 3600)},
    "must be a number": {
        "exp-string": lambda k: k.good(exp=str(NOW + 3600)),
        "iat-string": lambda k: k.good(iat=str(NOW)),
        "nbf-string": lambda k: k.good(nbf=str(NOW)),
    },
    "subject claim malformed": {"sub-number": lambda k: k.good(sub=42)},
    "malformed token claims": {
        "exp-NaN": lambda k: k.good(exp=float("nan")),
        "exp-Infinity": lambda k: k.good(exp=float("inf")),
        "payload-array": lambda k: signed_raw_payload(k.rsa, b"[1, 2]"),
        "payload-text": lambda k: signed_raw_payload(k.rsa, b"not json"),
        "payload-deep": lambda k: signed_raw_payload(k.rsa, b"[" * 5000),
    },
    "token too large": {
        "too-large": lambda k: k.good(pad="x" * 17 * 1024),
        "too-many-dots-and-large": lambda k: "a." * 20_000 + "a",
    },
    "malformed token": {
        "kid-number": lambda k: with_header(k.good(), {"alg": "RS256", "kid": 1}),
        "kid-too-long": lambda k: k.rsa.sign(k.claims(), kid="k" * 5000),
        "crit-unknown-extension": lambda k: with_header(k.good(), {"alg": "RS256", "crit": ["exp"]}),
        "empty": lambda k: "",
        "garbage": lambda k: "garbage",
        "dots-only": lambda k: "..",
        "three-short-segments": lambda k: "a.b.c",
        "not-base64": lambda k: "!!!.???.***",
        "non-ascii": lambda k: "ëý.ëý.ëý",
        "two-segments": lambda k: k.good().rsplit(".", 1)[0],
        "four-segments": lambda k: k.good() + ".x",
        "five-segments-jwe-like": lambda k: k.good() + ".x.y",
        "bearer-prefix-kept": lambda k: "Bearer " + k.good(),
        "trailing-newline": lambda k: k.good() + "\n",
        "header-not-json": lambda k: f"{b64(b'not json')}.e30.",
        "header-array": lambda k: f"{segment([])}.e30.",
        "header-string": lambda k: f"{segment('RS256')}.e30.",
    },
}
ATTACKS = [
    pytest.param(forge_token, reason, id=name)
    for reason, attacks in ATTACKS_BY_REASON.items()
    for name, forge_token in attacks.items()
]


@pytest.fixture(scope="module")
def kit_keys() -> dict[str, SigningKey]:
    return {
        "rsa": SigningKey.rsa("rsa-1"),
        "ec": SigningKey.ec("ec-1"),
        "ec384": SigningKey.ec("ec384-1", "ES384"),
        "stranger": SigningKey.rsa("stranger-1"),
    }


@pytest.fixture
def attacker() -> Iterator[JwksServer]:
    with JwksServer() as server:
        yield server


@pytest.fixture
def kit(jwks_server: JwksServer, attacker: JwksServer, kit_keys: dict[str, SigningKey]) -> Kit:
    attacker.publish(kit_keys["stranger"])
    jwks_server.publish(kit_keys["rsa"], kit_keys["ec"], kit_keys["ec384"])
    # An IdP misconfigured to publish a symmetric key beside its public ones.
    jwks_server.jwks["keys"].append({"kty": "oct", "kid": "sym", "k": b64(OCT_SECRET)})
    return Kit(**kit_keys, attacker_url=attacker.url)


@pytest.fixture(scope="module")
def tls() -> ssl.SSLContext:
    return ssl.create_default_context()  # built once: loading the CA bundle is slow


@pytest.fixture
async def validator(jwks_server: JwksServer, tls: ssl.SSLContext) -> AsyncIterator[TokenValidator]:
    async with httpx.AsyncClient(verify=tls) as http:
        yield TokenValidator(POLICY, JwksCache(jwks_server.url, http=http))


async def test_the_genuine_token_is_accepted(kit: Kit, validator: TokenValidator) -> None:
    """The control case: the attacks below differ from this token in one way each."""
    assert (await validator.validate(kit.good()))["sub"] == "user-1"
    assert (await validator.validate(kit.ec.sign(kit.claims())))["sub"] == "user-1"


@pytest.mark.parametrize(("forge_token", "reason"), ATTACKS)
async def test_attack_is_refused(
    kit: Kit,
    validator: TokenValidator,
    jwks_server: JwksServer,
    attacker: JwksServer,
    forge_token: Callable[[Kit], str],
    reason: str,
) -> None:
    token = forge_token(kit)
    with pytest.raises(TokenInvalid) as refusal:
        await validator.validate(token)

    assert reason in refusal.value.reason
    assert len(refusal.value.reason) < 100
    for part in (token, *token.split(".")):
        assert len(part) < 8 or part not in refusal.value.reason
    assert attacker.request_count == 0
    assert jwks_server.request_count == (0 if refusal.value.reason in HEADER_STAGE_REASONS else 1)


def test_attack_table_is_large() -> None:
    assert len(ATTACKS) >= 80


async def test_random_junk_only_ever_raises_token_invalid(
    kit: Kit, validator: TokenValidator, jwks_server: JwksServer
) -> None:
    rng = random.Random(7)
    headers = [{"alg": "RS256"}, {"alg": "RS256", "kid": "rsa-1"}, {"alg": "ES256", "kid": "x"}, {}, []]
    values: list[Any] = [None, 1, -1, 1e308, "", "x", [], {}, [1], True, "rsa-1", ISSUER, AUDIENCE]
    for _ in range(300):
        header = rng.choice(headers)
        if isinstance(header, dict):
            header = {**header, rng.choice(["kid", "alg", "typ", "crit", "b64"]): rng.choice(values)}
        claims = {rng.choice(["iss", "aud", "exp", "iat", "nbf", "sub"]): rng.choice(values)}
        signature = rng.randbytes(rng.choice([0, 1, 64, 256]))
        token = forge(header, claims, signature)
        with pytest.raises(TokenInvalid):
            await validator.validate(token)
    assert jwks_server.request_count <= 1
