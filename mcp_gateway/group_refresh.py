"""Re-reading a session's groups from the IdP every `refresh_interval` (docs/architecture.md, "Identity").

    session = await refresh_if_due(store, session, provider, config.session.refresh_interval)
    if session is None: ...   # the IdP refused the refresh token: the session has ended

- Due when `refresh_interval` has passed since `groups_refreshed_at`.
- Of concurrent requests (on any instance sharing the store) one refreshes; the others go
  on with the groups they have. A refresh token may be single-use (rotation), so two
  refreshes with it would make the IdP refuse the second and end a valid session.
- An explicit refusal (invalid_grant, or a different subject) ends the session.
- The IdP down or answering nonsense: the session keeps its groups, a warning is logged, and
  the refresh is retried after `RETRY_AFTER` seconds (not on every request).
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import replace

from mcp_gateway.providers.base import Provider, ProviderError, RefreshRefused
from mcp_gateway.sessions import UNCHANGED, Session, SessionStore

log = logging.getLogger(__name__)

LOCK_TTL = 30.0  # longer than one IdP round trip; a crashed holder frees it after this
RETRY_AFTER = 30.0


async def refresh_if_due(store: SessionStore, session: Session, provider: Provider | None, interval: float, *,
                         clock: Callable[[], float] = time.time) -> Session | None:
    """The session with current groups, unchanged when not due (or not refreshable), None when ended.
    Raises StoreUnavailable when the store cannot answer (the caller refuses the request: 503)."""
    if provider is None or not session.refresh_token or not _due(session, interval, clock()):
        return session
    if await store.hits(_retry_key(session)):
        return session  # a recent attempt failed; wait before asking the IdP again
    lock, holder = f"refresh:{session.id}", secrets.token_urlsafe(12)
    if await store.bind(lock, holder, LOCK_TTL) != holder:
        return session  # another request is refreshing this session right now
    try:
        # Re-read under the lock: the previous holder may have just refreshed (and rotated the token).
        current = await store.get_by_id(session.id)
        if current is None or not current.refresh_token or not _due(current, interval, clock()):
            return current
        return await _refresh(store, current, provider, clock())
    finally:
        await store.unbind(lock)


async def _refresh(store: SessionStore, session: Session, provider: Provider, now: float) -> Session | None:
    try:
        identity = await provider.refresh(session.refresh_token or "")
    except RefreshRefused as refused:
        return await _end(store, session, refused.reason)
    except ProviderError as error:
        await store.hit(_retry_key(session), RETRY_AFTER)
        log.warning("auth: group refresh for user=%s provider=%s failed, groups kept, retry in %ds: %s",
                    session.username, session.provider, RETRY_AFTER, error.reason)
        return session
    if identity.subject != session.subject:
        return await _end(store, session, "the refreshed identity has another subject")
    rotated = identity.refresh_token not in (None, session.refresh_token)
    refresh_token = identity.refresh_token if rotated else UNCHANGED
    await store.update(session.id, groups=identity.groups, refresh_token=refresh_token, groups_refreshed_at=now)
    if identity.groups != session.groups:
        log.info("auth: groups changed user=%s provider=%s groups=%s (were %s)", session.username, session.provider,
                 ",".join(identity.groups), ",".join(session.groups))
    return replace(session, groups=identity.groups, groups_refreshed_at=now,
                   refresh_token=identity.refresh_token or session.refresh_token)


async def _end(store: SessionStore, session: Session, reason: str) -> None:
    await store.delete_by_id(session.id)
    log.info("auth: session ended user=%s provider=%s session=%s: group refresh refused: %s",
             session.username, session.provider, session.id[:12], reason)
    return None


def _due(session: Session, interval: float, now: float) -> bool:
    return now - session.groups_refreshed_at >= interval


def _retry_key(session: Session) -> str:
    return f"refresh-failed:{session.id}"
