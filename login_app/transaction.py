"""The login transaction: what the callback needs from the start of an IdP login.

`state`, `nonce`, the PKCE verifier, `next` and the provider travel in a short-lived cookie
signed with SECRET_KEY (itsdangerous), so the callback only accepts the login this browser
started. `state` is also written once to the store: a replayed callback fails even when it
carries the cookie, and on every instance sharing the store.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

from itsdangerous import BadData, SignatureExpired, URLSafeTimedSerializer
from starlette.requests import Request
from starlette.responses import Response

from mcp_gateway.config import GatewayConfig
from mcp_gateway.sessions import SessionStore

TRANSACTION_COOKIE = "mcp_gateway_login"
TRANSACTION_MAX_AGE = 600  # seconds from the login page to the callback
COOKIE_PATH = "/oauth/callback"  # covers /oauth/callback and /oauth/callback/{provider}
_SALT = "mcp-gateway login transaction v1"
MAX_COOKIE_LENGTH = 4096


class TransactionError(Exception):
    """The callback does not belong to a login this browser started. `reason` is safe to show."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class LoginTransaction:
    state: str
    nonce: str
    code_verifier: str  # PKCE (RFC 7636): 64 characters of the unreserved alphabet
    next_path: str
    provider: str
    created: float

    @classmethod
    def start(cls, provider: str, next_path: str, *, now: float | None = None) -> LoginTransaction:
        return cls(state=secrets.token_urlsafe(32), nonce=secrets.token_urlsafe(32),
                   code_verifier=secrets.token_urlsafe(48), next_path=next_path, provider=provider,
                   created=time.time() if now is None else now)


class TransactionCodec:
    """Signs transactions into cookie values and reads them back, refusing old or forged ones."""

    def __init__(self, secret_key: str, *, max_age: float = TRANSACTION_MAX_AGE,
                 clock: Callable[[], float] = time.time) -> None:
        self._serializer = URLSafeTimedSerializer(secret_key, salt=_SALT)
        self._max_age = max_age
        self._clock = clock

    def dumps(self, transaction: LoginTransaction) -> str:
        return self._serializer.dumps(asdict(transaction))

    def loads(self, value: str | None) -> LoginTransaction:
        if not value:
            raise TransactionError("no sign-in was started in this browser, or its cookie was blocked")
        if len(value) > MAX_COOKIE_LENGTH:
            raise TransactionError("the sign-in cookie is not valid")
        try:
            data = self._serializer.loads(value, max_age=int(self._max_age))
            transaction = LoginTransaction(**data)
        except SignatureExpired:
            raise TransactionError("the sign-in took too long; start again") from None
        except (BadData, TypeError, ValueError):
            raise TransactionError("the sign-in cookie is not valid") from None
        if not all(isinstance(v, str) for v in (transaction.state, transaction.nonce, transaction.code_verifier,
                                                 transaction.next_path, transaction.provider)):
            raise TransactionError("the sign-in cookie is not valid")
        if not isinstance(transaction.created, int | float) or self._clock() - transaction.created > self._max_age:
            raise TransactionError("the sign-in took too long; start again")
        return transaction


def state_key(state: str) -> str:
    return f"oauth-state:{state}"


async def remember(store: SessionStore, transaction: LoginTransaction) -> None:
    await store.put_once(state_key(transaction.state), transaction.provider, TRANSACTION_MAX_AGE)


async def claim(store: SessionStore, transaction: LoginTransaction, provider: str, state: str | None) -> None:
    """Accept the callback's `state` once for this browser's transaction; TransactionError otherwise.
    Raises StoreUnavailable when the store cannot answer."""
    if transaction.provider != provider:
        raise TransactionError("the sign-in was started with another identity provider")
    if not state:
        raise TransactionError("the identity provider's answer has no state")
    if not hmac.compare_digest(state.encode(), transaction.state.encode()):
        raise TransactionError("the identity provider's answer belongs to another sign-in (state mismatch)")
    if await store.take_once(state_key(transaction.state)) != provider:
        raise TransactionError("this sign-in was already completed or has expired; start again")


def transaction_cookie(request: Request) -> str | None:
    return request.cookies.get(TRANSACTION_COOKIE)


def set_transaction_cookie(response: Response, config: GatewayConfig, value: str) -> None:
    # SameSite=Lax: the IdP's redirect back is a top-level GET, which still carries it.
    response.set_cookie(TRANSACTION_COOKIE, value, max_age=TRANSACTION_MAX_AGE, path=COOKIE_PATH,
                        httponly=True, samesite="lax", secure=config.secure_cookies)


def clear_transaction_cookie(response: Response, config: GatewayConfig) -> None:
    response.delete_cookie(TRANSACTION_COOKIE, path=COOKIE_PATH, httponly=True, samesite="lax",
                           secure=config.secure_cookies)
