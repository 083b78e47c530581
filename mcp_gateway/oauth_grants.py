"""What a person granted an MCP client, from the authorization code to the last refresh token.

A grant is one consent: one client, the resource(s) it asked for, and a copy of the person's
identity (taken from their browser session). It travels in single-use values of the shared
store: first the authorization code (PKCE S256, one minute), then one refresh token after
another (each used once and replaced: rotation). Access tokens are sessions of kind "access"
bound to the client and the resources, so the proxy reads them like any session.

Every code and refresh token belongs to a family: the grant's id. A spent one is remembered
(its hash, with the family) while the grant lasts, so a replayed code or a refresh token used
a second time — proof that a copy is in the wrong hands — revokes the whole family: its access
tokens are deleted and its current refresh token refused (OAuth 2.1 §4.3.1, RFC 6819 §5.2.2.3).
A made-up token finds nothing and changes nothing. A grant ends at the session lifetime after consent;
on each refresh the person's groups are re-read from their browser session while it lives.

An access token's session keeps, in its `scopes`, the scope the token was granted — what the
person's groups allowed for its resources when it was issued (the `scope` of the token
response). The proxy lets it use those scopes only while the groups still allow them; a
refresh computes the scope anew.

Logout ends the grants made in that browser session: each consent links its family to the
browser session's id, and `revoke_browser_session` revokes every linked family (codes not yet
redeemed, refresh tokens and access tokens alike).
"""

from __future__ import annotations

import hmac
import json
import logging
import re
import secrets
import time
from dataclasses import asdict, dataclass, replace

from .grant_index import GrantIndex
from .oauth_errors import OAuthError
from .pkce import s256_challenge
from .sessions import Session, SessionStore

log = logging.getLogger(__name__)

CODE_TTL = 60.0
ACCESS_TOKEN_LIFETIME = 3600.0
MAX_FAMILY_ACCESS_TOKENS = 10
_VERIFIER = re.compile(r"[A-Za-z0-9._~-]{43,128}")  # RFC 7636 §4.1
_CHALLENGE = re.compile(r"[A-Za-z0-9_-]{43}")       # base64url(sha256), no padding


class GrantError(OAuthError):
    """A refused code or token (invalid_grant, unauthorized_client)."""


@dataclass(frozen=True)
class Grant:
    client_id: str
    resources: tuple[str, ...]
    subject: str
    username: str
    provider: str
    groups: tuple[str, ...]
    direct_scopes: tuple[str, ...]
    email: str | None
    browser_session: str  # the id (a hash) of the browser session consent was given in
    family: str
    expires_at: float
    scope: str | None = None  # what the client asked for, kept for the record
    redirect_uri: str = ""    # codes only: where the code was sent
    redirect_uri_sent: bool = True  # codes only: the authorization request named redirect_uri
    code_challenge: str = ""  # codes only

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, raw: str) -> Grant:
        fields = json.loads(raw)
        for name in ("resources", "groups", "direct_scopes"):
            fields[name] = tuple(fields[name])
        return cls(**fields)


@dataclass(frozen=True)
class IssuedTokens:
    access_token: str
    expires_in: int
    refresh_token: str | None
    session: Session


def new_family() -> str:
    return secrets.token_urlsafe(16)


def is_code_challenge(value: str) -> bool:
    return bool(_CHALLENGE.fullmatch(value))


def verifier_matches(verifier: str, challenge: str) -> bool:
    if not _VERIFIER.fullmatch(verifier):
        return False
    return hmac.compare_digest(s256_challenge(verifier), challenge)


def _code_key(code: str) -> str:
    return f"oauth-code:{code}"


def _refresh_key(token: str) -> str:
    return f"oauth-refresh:{token}"


def _family_key(family: str) -> str:
    return f"oauth-family:{family}"


def _spent_key(token: str) -> str:
    return f"oauth-spent:{token}"


def _browser_key(session_id: str) -> str:
    return f"oauth-browser-grants:{session_id}"


class Grants:
    def __init__(self, store: SessionStore, *, code_ttl: float = CODE_TTL,
                 access_lifetime: float = ACCESS_TOKEN_LIFETIME) -> None:
        self.store = store
        self.code_ttl = code_ttl
        self.access_lifetime = access_lifetime

    # -- codes -----------------------------------------------------------------------------

    async def issue_code(self, grant: Grant) -> str:
        """A code for a new grant, whose family is linked to the browser session consent was given in."""
        code = secrets.token_urlsafe(32)
        remaining = grant.expires_at - time.time()
        await self.store.put(_family_key(grant.family), json.dumps({"access": []}), remaining)
        await self._link_to_browser_session(grant.browser_session, grant.family, remaining)
        await self.store.put_once(_code_key(code), grant.to_json(), self.code_ttl)
        return code

    async def redeem_code(self, code: str) -> Grant:
        """The grant of `code`, which is spent whatever the caller does next."""
        grant = await self._redeem(_code_key(code), code, "authorization code replayed",
                                   "the authorization code is unknown, expired or already used")
        if await self.store.get_value(_family_key(grant.family)) is None:
            raise GrantError("invalid_grant", "this authorization was revoked (signed out); authorize the client again")
        return grant

    # -- tokens ----------------------------------------------------------------------------

    async def issue_tokens(self, grant: Grant, *, with_refresh_token: bool, granted_scopes: tuple[str, ...] = (),
                           access_resources: tuple[str, ...] | None = None) -> IssuedTokens:
        """An access token (for `access_resources`, by default all of the grant's) granted
        `granted_scopes`, and, if asked, the grant's next refresh token."""
        remaining = grant.expires_at - time.time()
        if remaining <= 1:
            raise GrantError("invalid_grant", "this authorization has expired; authorize the client again")
        lifetime = min(self.access_lifetime, remaining)
        token, session = await self.store.create(
            kind="access", client_id=grant.client_id, resources=access_resources or grant.resources,
            subject=grant.subject, username=grant.username, provider=grant.provider, groups=grant.groups,
            scopes=granted_scopes, email=grant.email, lifetime=lifetime)
        refresh_token = None
        if with_refresh_token:
            refresh_token = secrets.token_urlsafe(32)
            kept = replace(grant, redirect_uri="", code_challenge="")
            await self.store.put_once(_refresh_key(refresh_token), kept.to_json(), remaining)
        await self._remember_access_token(grant.family, session.id, remaining)
        await GrantIndex(self.store).record(grant)  # "my OAuth clients" (docs/registry-ui.md)
        return IssuedTokens(token, int(lifetime), refresh_token, session)

    async def redeem_refresh_token(self, token: str) -> Grant:
        """The grant behind a refresh token, which is spent (the caller issues its successor)."""
        grant = await self._redeem(_refresh_key(token), token, "refresh token used twice",
                                   "the refresh token is unknown, expired, revoked or already used")
        if await self.store.get_value(_family_key(grant.family)) is None:
            raise GrantError("invalid_grant", "this authorization was revoked; authorize the client again")
        browser = await self.store.get_by_id(grant.browser_session)
        if browser is not None:  # the browser session's groups are kept fresh from the IdP
            grant = replace(grant, groups=browser.groups, direct_scopes=browser.scopes)
        return grant

    # -- revocation ------------------------------------------------------------------------

    async def revoke(self, token: str, client_id: str) -> None:
        """RFC 7009: end an access token, or a refresh token's whole grant. Unknown tokens are ignored;
        a token of another client raises GrantError."""
        raw = await self.store.get_value(_refresh_key(token))
        if raw is not None:
            grant = Grant.from_json(raw)
            if grant.client_id != client_id:
                raise GrantError("unauthorized_client", "this token was not issued to this client")
            await self.revoke_family(grant.family)
            return
        session = await self.store.get(token)
        if session is None or session.kind != "access":
            return
        if session.client_id != client_id:
            raise GrantError("unauthorized_client", "this token was not issued to this client")
        await self.store.delete(token)

    async def revoke_browser_session(self, session_id: str) -> int:
        """Revoke every grant made through consent in the browser session `session_id`; how many."""
        raw = await self.store.take_once(_browser_key(session_id))
        families = json.loads(raw) if raw else []
        for family in families:
            await self.revoke_family(family)
        return len(families)

    async def _link_to_browser_session(self, session_id: str, family: str, ttl: float) -> None:
        raw = await self.store.get_value(_browser_key(session_id))
        families = [*(json.loads(raw) if raw else []), family]
        await self.store.put(_browser_key(session_id), json.dumps(families), ttl)

    async def revoke_family(self, family: str) -> None:
        raw = await self.store.take_once(_family_key(family))
        for session_id in json.loads(raw)["access"] if raw else ():
            await self.store.delete_by_id(session_id)

    async def _redeem(self, key: str, token: str, replay: str, refusal: str) -> Grant:
        """Take a single-use code or token; a spent one (remembered while its grant lasts) revokes its family."""
        raw = await self.store.take_once(key)
        if raw is None:
            family = await self.store.get_value(_spent_key(token))
            if family is not None:
                log.warning("auth: %s: revoking every token of that authorization (family %.8s)", replay, family)
                await self.revoke_family(family)
            raise GrantError("invalid_grant", refusal)
        grant = Grant.from_json(raw)
        remaining = grant.expires_at - time.time()
        if remaining > 0:
            await self.store.put(_spent_key(token), grant.family, remaining)
        return grant

    async def _remember_access_token(self, family: str, session_id: str, ttl: float) -> None:
        raw = await self.store.get_value(_family_key(family))
        known = json.loads(raw)["access"] if raw else []
        known = [*known, session_id][-MAX_FAMILY_ACCESS_TOKENS:]
        await self.store.put(_family_key(family), json.dumps({"access": known}), ttl)
