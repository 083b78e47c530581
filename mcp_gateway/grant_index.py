"""The OAuth clients a person has authorized, by subject: what "my OAuth clients" lists.

The store has no way to search grants by person, so every time a grant gets tokens (the code
exchange, each refresh) its family is recorded under the person's subject with the client,
scope, resources and the time ("last use": the last time the client got a token). Revoking
one ends the family (mcp_gateway.oauth_grants.Grants.revoke_family: its access tokens are
deleted at once, its refresh token refused) and drops it from the list. See docs/registry-ui.md.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from .sessions import SessionStore

log = logging.getLogger(__name__)

MAX_CLIENTS = 50


def _key(subject: str, provider: str) -> str:
    return f"oauth-user-grants:{provider}:{subject}"


class GrantIndex:
    def __init__(self, store: SessionStore) -> None:
        self.store = store

    async def entries(self, subject: str, provider: str) -> dict[str, dict[str, Any]]:
        raw = await self.store.get_value(_key(subject, provider))
        try:
            entries = json.loads(raw) if raw else {}
        except ValueError:
            log.warning("oauth grants of a user: stored index unreadable, treated as empty")
            return {}
        now = time.time()
        return {family: e for family, e in entries.items() if isinstance(e, dict) and e.get("expires_at", 0) > now}

    async def record(self, grant) -> None:
        """`grant` is a mcp_gateway.oauth_grants.Grant that just got tokens."""
        entries = await self.entries(grant.subject, grant.provider)
        now = time.time()
        first = entries.get(grant.family, {}).get("granted_at", now)
        entries[grant.family] = {"client_id": grant.client_id, "scope": grant.scope, "resources": list(grant.resources),
                                 "granted_at": first, "last_used": now, "expires_at": grant.expires_at}
        kept = dict(sorted(entries.items(), key=lambda item: item[1]["last_used"])[-MAX_CLIENTS:])
        ttl = max(e["expires_at"] for e in kept.values()) - now
        if ttl > 0:
            await self.store.put(_key(grant.subject, grant.provider), json.dumps(kept), ttl)

    async def forget(self, subject: str, provider: str, family: str) -> bool:
        entries = await self.entries(subject, provider)
        if entries.pop(family, None) is None:
            return False
        if entries:
            ttl = max(e["expires_at"] for e in entries.values()) - time.time()
            await self.store.put(_key(subject, provider), json.dumps(entries), max(ttl, 1.0))
        else:
            await self.store.take_once(_key(subject, provider))
        return True
