"""The per-user token vault: each user's tokens for each server with `[servers.upstream_oauth]`.

Kept in the session store (SQLite or Redis, so every gateway and login-app instance sees
the same), under a key made of the server and the user's stable owner (`provider:subject`,
mcp_gateway/identity.py), sealed with SECRET_KEY and bound to that key: a sealed value
copied to another user's key does not open. Refreshed shortly before expiry, one refresh
at a time per user and server in a process; a refused refresh removes the tokens (the user
connects again). Logout does not touch the vault: a connection outlives a browser session.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
import weakref
from collections.abc import Iterable

from .secretbox import SecretBox, SecretBoxError
from .sessions import SessionStore
from .upstream_oauth import GrantRefused, TokenSet, UpstreamOAuth, UpstreamOAuthError, url_origin

log = logging.getLogger(__name__)

KEPT_FOR = 90 * 24 * 3600.0  # a connection unused (never refreshed) this long is forgotten


def vault_key(owner: str, server: str) -> str:
    return f"upstream-token:{server}:{owner}"


class TokenVault:
    def __init__(self, store: SessionStore, secretbox: SecretBox, kept_for: float = KEPT_FOR):
        self._store = store
        self._secretbox = secretbox
        self._kept_for = kept_for
        self._refreshing: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    async def get(self, owner: str, server: str) -> TokenSet | None:
        return (await self._read(owner, server))[1]

    async def _read(self, owner: str, server: str) -> tuple[str | None, TokenSet | None]:
        """The sealed value as stored (to replace it only if unchanged) and what it holds."""
        key = vault_key(owner, server)
        sealed = await self._store.get_value(key)
        tokens = self._open(key, sealed)
        if sealed is not None and tokens is None:
            log.warning("upstream tokens of %s for server %s do not open (SECRET_KEY changed?); forgotten",
                        owner, server)
            await self._store.take_once(key)
            return None, None
        return sealed, tokens

    def _open(self, key: str, sealed: str | None) -> TokenSet | None:
        if sealed is None:
            return None
        try:
            return TokenSet.from_json(self._secretbox.decrypt(sealed, context=key))
        except (SecretBoxError, ValueError, TypeError, KeyError):
            return None

    async def save(self, owner: str, server: str, tokens: TokenSet) -> None:
        key = vault_key(owner, server)
        await self._store.put(key, self._secretbox.encrypt(tokens.to_json(), context=key), self._kept_for)

    async def _replace(self, owner: str, server: str, sealed: str, tokens: TokenSet) -> bool:
        """Store `tokens` only if the connection still holds `sealed`: a disconnect or admin
        revocation made while a refresh was in flight must not be undone by its answer."""
        key = vault_key(owner, server)
        return await self._store.replace_value(key, sealed, self._secretbox.encrypt(tokens.to_json(), context=key),
                                               self._kept_for)

    async def forget(self, owner: str, server: str) -> TokenSet | None:
        """Remove the connection; returns what was stored (to revoke it upstream), None if nothing."""
        key = vault_key(owner, server)
        sealed = await self._store.take_once(key)
        if sealed is None:
            return None
        return self._open(key, sealed) or TokenSet(access_token="")  # gone either way; nothing to revoke

    async def connected(self, owner: str, servers: Iterable[str]) -> dict[str, TokenSet]:
        found = {}
        for server in servers:
            tokens = await self.get(owner, server)
            if tokens is not None:
                found[server] = tokens
        return found

    async def mark_stale(self, owner: str, server: str) -> None:
        """The upstream refused the access token: refresh it before the next use."""
        sealed, tokens = await self._read(owner, server)
        if sealed is not None and tokens is not None and tokens.refresh_token:
            await self._replace(owner, server, sealed, dataclasses.replace(tokens, expires_at=0.0, obtained_at=0.0))
        elif tokens is not None:
            await self.forget(owner, server)

    async def usable(self, owner: str, oauth: UpstreamOAuth) -> TokenSet | None:
        """The user's tokens for the server, refreshed first when due; None: not connected (any more).

        Raises UpstreamOAuthError when a due refresh cannot be done now (the authorization
        server is down) and the access token has expired; StoreUnavailable from the store."""
        server = oauth.server.name
        tokens = await self.get(owner, server)
        if tokens is not None and tokens.upstream is not None and tokens.upstream != url_origin(oauth.server.url):
            # The server's url was edited since the user connected: the token is for the service
            # that was there, never for whatever is there now (docs/end-to-end-tokens.md).
            log.warning("upstream tokens of %s for server %s are for %s, not for its url now; not sent", owner,
                        server, tokens.upstream)
            return None
        if tokens is None or not tokens.due_for_refresh(time.time()):
            return tokens
        key = vault_key(owner, server)
        lock = self._refreshing.get(key)
        if lock is None:
            lock = self._refreshing[key] = asyncio.Lock()
        async with lock:
            sealed, tokens = await self._read(owner, server)  # refreshed meanwhile, here or by another instance?
            if sealed is None or tokens is None or not tokens.due_for_refresh(time.time()):
                return tokens
            return await self._refresh(owner, oauth, tokens, sealed)

    async def _refresh(self, owner: str, oauth: UpstreamOAuth, tokens: TokenSet, sealed: str) -> TokenSet | None:
        server = oauth.server.name
        expired = tokens.expires_at is not None and time.time() >= tokens.expires_at
        if not tokens.refresh_token:
            if expired:
                await self.forget(owner, server)
                log.info("upstream token of %s for server %s expired without a refresh token; connect again",
                         owner, server)
                return None
            return tokens
        try:
            fresh = await oauth.refresh(tokens)
        except GrantRefused as e:
            await self.forget(owner, server)
            log.warning("upstream token refresh refused for %s on server %s (%s); the connection is removed",
                        owner, server, e)
            return None
        except UpstreamOAuthError as e:
            if expired:
                raise
            log.warning("upstream token refresh failed for %s on server %s (%s); the current token is used "
                        "until it expires", owner, server, e)
            return tokens
        fresh = dataclasses.replace(fresh, upstream=tokens.upstream or fresh.upstream)
        if await self._replace(owner, server, sealed, fresh):
            log.info("upstream token refreshed for %s on server %s", owner, server)
            return fresh
        current = await self.get(owner, server)
        log.info("upstream tokens of %s for server %s were %s while being refreshed; the new ones are dropped",
                 owner, server, "replaced" if current is not None else "disconnected")
        if current is None:
            await self._revoke_quietly(oauth, fresh)
        return current

    @staticmethod
    async def _revoke_quietly(oauth: UpstreamOAuth, tokens: TokenSet) -> None:
        try:
            await oauth.revoke(tokens)
        except UpstreamOAuthError as e:
            log.warning("upstream oauth: revocation at %s failed: %s", oauth.server.name, e)
