"""Validation of JWT bearer and ID tokens issued by the configured identity provider.

Checked, in this order, before any claim is trusted: size and shape, the header's
`alg` against the policy's allow-list (asymmetric algorithms only), no key carried
or referenced by the token itself (`jku`, `x5u`, `jwk`, `x5c`: keys come from the
configured JWKS only), the key named by `kid` fitting that algorithm, the
signature, then `iss`, audience (`aud`, or Cognito's `client_id`), `exp`/`nbf`/`iat`
with the policy's leeway, required claims, `token_use` and `nonce`.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Any

import jwt
from jwt.exceptions import InvalidSubjectError

from mcp_gateway.jwks import KEY_TYPE_FOR_ALGORITHM, JwksCache, JwksUnavailable, TokenInvalid

__all__ = [
    "JwksCache",
    "JwksUnavailable",
    "TokenInvalid",
    "TokenPolicy",
    "TokenValidator",
    "claims_groups",
    "claims_scopes",
]

MAX_TOKEN_LENGTH = 16 * 1024
MAX_KID_LENGTH = 256
_KEY_REFERENCE_HEADERS = ("jku", "x5u", "jwk", "x5c")
_TIME_CLAIMS = ("exp", "nbf", "iat")

# pyjwt's messages are mostly fine to show, but mapping them keeps every reason
# short and guarantees no token material ends up in a log line.
_REASONS: tuple[tuple[type[jwt.PyJWTError], str], ...] = (
    (jwt.ExpiredSignatureError, "token expired"),
    (jwt.ImmatureSignatureError, "token not yet valid (nbf)"),
    (jwt.InvalidIssuerError, "issuer not accepted"),
    (jwt.InvalidSignatureError, "signature verification failed"),
    (jwt.InvalidAlgorithmError, "algorithm not allowed"),
    (jwt.InvalidKeyError, "signing key unusable"),
    (InvalidSubjectError, "subject claim malformed"),
    (jwt.DecodeError, "malformed token claims"),
)


@dataclass(frozen=True)
class TokenPolicy:
    """What a token from this provider must look like to be accepted."""

    issuer: str
    audiences: tuple[str, ...]
    algorithms: tuple[str, ...] = ("RS256", "RS384", "RS512", "ES256", "ES384", "PS256")
    leeway: float = 60
    required_claims: tuple[str, ...] = ("exp", "iat", "iss", "sub")
    # Cognito access tokens carry the app client in `client_id`, not in `aud`.
    audience_claim: str = "aud"
    # Cognito marks its tokens "access" or "id"; None: not checked.
    token_use: str | None = None

    def __post_init__(self) -> None:
        if not self.issuer:
            raise ValueError("token policy: issuer is required")
        if isinstance(self.audiences, str) or not self.audiences or not all(self.audiences):
            raise ValueError("token policy: audiences must be a non-empty tuple of names")
        if not self.algorithms:
            raise ValueError("token policy: at least one algorithm must be allowed")
        refused = [alg for alg in self.algorithms if alg not in KEY_TYPE_FOR_ALGORITHM]
        if refused:
            raise ValueError(
                f"token policy: algorithm(s) {', '.join(map(str, refused))} not allowed;"
                f" choose from {', '.join(KEY_TYPE_FOR_ALGORITHM)}"
            )
        if self.leeway < 0:
            raise ValueError("token policy: leeway must not be negative")


class TokenValidator:
    """Checks tokens against one provider's policy and keys."""

    def __init__(self, policy: TokenPolicy, jwks: JwksCache) -> None:
        self.policy = policy
        self.jwks = jwks

    async def validate(self, token: str, *, nonce: str | None = None) -> dict[str, Any]:
        """The verified claims of `token`, or TokenInvalid saying why not."""
        header = self._checked_header(token)
        key = await self.jwks.key_for(header.get("kid"), header["alg"])
        claims = self._verified_claims(token, key, header["alg"])
        self._check_time_claims(claims)
        self._check_audience(claims)
        if self.policy.token_use is not None and claims.get("token_use") != self.policy.token_use:
            raise TokenInvalid(f"token_use is not {self.policy.token_use!r}")
        if nonce is not None and not _same_text(claims.get("nonce"), nonce):
            raise TokenInvalid("nonce does not match")
        return claims

    def _checked_header(self, token: str) -> dict[str, Any]:
        if not isinstance(token, str):
            raise TokenInvalid("malformed token")
        if len(token) > MAX_TOKEN_LENGTH:
            raise TokenInvalid("token too large")
        if token.count(".") != 2:
            raise TokenInvalid("malformed token (a JWT has three segments)")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise TokenInvalid("malformed token") from None
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self.policy.algorithms:
            raise TokenInvalid("algorithm not allowed")
        if any(name in header for name in _KEY_REFERENCE_HEADERS):
            raise TokenInvalid("token header names its own key (jku/x5u/jwk/x5c); refused")
        if len(header.get("kid") or "") > MAX_KID_LENGTH:
            raise TokenInvalid("malformed token (kid too long)")
        return header

    def _verified_claims(self, token: str, key: jwt.PyJWK, alg: str) -> dict[str, Any]:
        try:
            return jwt.decode(
                token,
                key,
                algorithms=[alg],
                issuer=self.policy.issuer,
                leeway=self.policy.leeway,
                options={
                    "require": list(self.policy.required_claims),
                    "verify_aud": False,  # checked in _check_audience, for either claim
                    "enforce_minimum_key_length": True,
                },
            )
        except jwt.MissingRequiredClaimError as error:
            raise TokenInvalid(f"missing required claim: {error.claim}") from None
        except jwt.PyJWTError as error:
            raise TokenInvalid(_reason(error)) from None
        except (ValueError, TypeError, OverflowError):
            raise TokenInvalid("malformed token claims") from None

    def _check_time_claims(self, claims: dict[str, Any]) -> None:
        # pyjwt reads these with int(), which would take "9999999999" or true.
        for name in _TIME_CLAIMS:
            value = claims.get(name)
            if name in claims and (isinstance(value, bool) or not isinstance(value, int | float)):
                raise TokenInvalid(f"claim {name} must be a number")

    def _check_audience(self, claims: dict[str, Any]) -> None:
        name = self.policy.audience_claim
        value = claims.get(name)
        if value is None or value == "" or value == []:
            raise TokenInvalid(f"missing required claim: {name}")
        values = [value] if isinstance(value, str) else value
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise TokenInvalid(f"claim {name} malformed")
        if not any(v in self.policy.audiences for v in values):
            raise TokenInvalid("audience not accepted")


def claims_groups(claims: dict[str, Any], claim_name: str) -> tuple[str, ...]:
    """The group names in `claims[claim_name]`, in order, without duplicates.

    A list keeps its non-empty strings and ignores anything else. A single string
    is one group, never split: group names may hold spaces or commas, and
    splitting `"guests mcp-admin"` would invent a group the IdP never granted.
    """
    value = claims.get(claim_name)
    items = [value] if isinstance(value, str) else value if isinstance(value, list) else []
    return tuple(dict.fromkeys(item for item in items if isinstance(item, str) and item))


def claims_scopes(claims: dict[str, Any]) -> tuple[str, ...]:
    """The scopes in `scope` (space-separated string) and `scp` (list or string).

    Either claim is read in either form, since providers differ. List items are
    single scope tokens: one holding whitespace is malformed and ignored, as are
    non-strings.
    """
    scopes: list[str] = []
    for name in ("scope", "scp"):
        value = claims.get(name)
        if isinstance(value, str):
            scopes += value.split()
        elif isinstance(value, list):
            scopes += [v for v in value if isinstance(v, str) and v.split() == [v]]
    return tuple(dict.fromkeys(scopes))


def _same_text(claim: Any, expected: str) -> bool:
    if not isinstance(claim, str):
        return False
    return hmac.compare_digest(claim.encode(), expected.encode())


def _reason(error: jwt.PyJWTError) -> str:
    if isinstance(error, jwt.ImmatureSignatureError) and "(iat)" in str(error):
        return "token issued in the future (iat)"
    for kind, reason in _REASONS:
        if isinstance(error, kind):
            return reason
    return "invalid token"
