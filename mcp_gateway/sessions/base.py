"""The session store interface, and the rules every backend shares.

A session is found by an opaque token (the cookie value, or an access token issued by the
gateway's authorization-server facade). The store keeps only `sha256(token)` as the
session id, so a leaked store leaks no usable credential. Expiry, idle timeout, touch
throttling and refresh-token encryption live here; backends only move records.

A stored record is a flat mapping (the same field names in SQLite columns and Redis hash
fields): text and numbers, lists as JSON text, the refresh token sealed with the SecretBox
(bound to the session id) or absent.
"""

import hashlib
import json
import logging
import re
import secrets
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Final

from mcp_gateway.secretbox import SecretBox, SecretBoxError

log = logging.getLogger(__name__)

# Tokens we issue are 43 urlsafe characters; anything far longer or outside the alphabet is
# refused before hashing so garbage never reaches the backend.
_TOKEN_PATTERN = re.compile(r"[A-Za-z0-9_-]{16,256}")
_SESSION_ID_PATTERN = re.compile(r"[0-9a-f]{64}")
_LIST_FIELDS = ("groups", "scopes", "resources")


class StoreUnavailable(Exception):
    """The backend is down, locked beyond its busy timeout, or corrupt: callers fail closed (503)."""


class _Unchanged:
    def __repr__(self) -> str:
        return "UNCHANGED"


UNCHANGED: Final = _Unchanged()


@dataclass(frozen=True)
class Session:
    """One logged-in identity (kind "browser") or one issued access token (kind "access")."""

    id: str  # sha256 hex of the token; a short prefix is safe to log
    subject: str
    username: str
    email: str | None
    provider: str  # "local", "cognito", "okta", "generic", "oauth-client", ...
    groups: tuple[str, ...]
    scopes: tuple[str, ...]  # direct scopes, on top of those the groups map to
    created_at: float
    expires_at: float
    last_seen_at: float
    groups_refreshed_at: float
    refresh_token: str | None = field(default=None, repr=False)  # plaintext in memory only
    kind: str = "browser"
    client_id: str | None = None
    resources: tuple[str, ...] = ()  # RFC 8707 audiences an access token is bound to


def session_id_for(token: str) -> str:
    """The store key of `token`: its sha256, hex."""
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def key_digest(key: str) -> str:
    """A fixed-length, non-reversible name for a caller-supplied key (codes, state, MCP session ids)."""
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def _session_id_or_none(token: object) -> str | None:
    if isinstance(token, str) and _TOKEN_PATTERN.fullmatch(token):
        return session_id_for(token)
    return None


def _is_session_id(value: object) -> bool:
    return isinstance(value, str) and _SESSION_ID_PATTERN.fullmatch(value) is not None


def positive_seconds(ttl: float) -> float:
    if not ttl > 0:
        raise ValueError(f"ttl must be positive, got {ttl!r}")
    return float(ttl)


def _names(values: Iterable[str]) -> tuple[str, ...]:
    if isinstance(values, (str, bytes)):  # tuple("mcp-admin") would grant one group per letter
        raise TypeError(f"expected a sequence of names, got the single string {values!r}")
    return tuple(values)


class SessionStore(ABC):
    """Sessions plus the small shared state several gateway instances must agree on.

    - `lifetime`: absolute session lifetime in seconds (per-session override in `create`).
    - `idle_timeout`: a session not seen for this long ends. `last_seen_at` is written at
      most once per `touch_interval`, so the effective idle limit may be up to
      `touch_interval` shorter than `idle_timeout`.
    - `secretbox`: seals refresh tokens at rest; without one, refresh tokens are not kept.
      A session whose stored refresh token does not open (SECRET_KEY changed) is treated as
      absent: the person logs in again rather than keeping groups that cannot be refreshed.
    - `clock`: the wall clock every expiry is measured with (`time.time`); tests pass their own
      so expiry is checked without sleeping.

    Every method raises `StoreUnavailable` when the backend cannot answer; never for a bad
    token, which simply finds nothing.
    """

    def __init__(
        self,
        *,
        lifetime: float,
        idle_timeout: float,
        secretbox: SecretBox | None,
        touch_interval: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if lifetime <= 0 or idle_timeout <= 0 or touch_interval < 0:
            raise ValueError("lifetime and idle_timeout must be positive, touch_interval non-negative")
        self.lifetime = float(lifetime)
        self.idle_timeout = float(idle_timeout)
        self.touch_interval = float(touch_interval)
        self._secretbox = secretbox
        self._clock = clock

    # -- sessions --------------------------------------------------------------------------

    async def create(
        self,
        *,
        subject: str,
        username: str,
        provider: str,
        groups: Iterable[str] = (),
        email: str | None = None,
        scopes: Iterable[str] = (),
        refresh_token: str | None = None,
        kind: str = "browser",
        client_id: str | None = None,
        resources: Iterable[str] = (),
        lifetime: float | None = None,
    ) -> tuple[str, Session]:
        """A new session; returns `(token, session)`. The token is shown to nobody but the caller."""
        token = secrets.token_urlsafe(32)
        now = self._clock()
        session = Session(
            id=session_id_for(token), subject=subject, username=username, email=email, provider=provider,
            groups=_names(groups), scopes=_names(scopes), created_at=now,
            expires_at=now + (self.lifetime if lifetime is None else positive_seconds(lifetime)),
            last_seen_at=now, groups_refreshed_at=now, refresh_token=self._keepable(refresh_token),
            kind=kind, client_id=client_id, resources=_names(resources),
        )
        await self._insert(self._to_record(session), self._deadline(session, now))
        return token, session

    async def get(self, token: str) -> Session | None:
        """The live session of `token`, or None (unknown, malformed, expired, idle). Counts as activity."""
        session_id = _session_id_or_none(token)
        if session_id is None:
            return None
        return await self._load_live(session_id, touch=True)

    async def get_by_id(self, session_id: str) -> Session | None:
        """The live session with this id, or None. Not counted as activity."""
        if not _is_session_id(session_id):
            return None
        return await self._load_live(session_id, touch=False)

    async def update(
        self,
        session_id: str,
        *,
        groups: Iterable[str] | None = None,
        scopes: Iterable[str] | None = None,
        refresh_token: str | None | _Unchanged = UNCHANGED,
        groups_refreshed_at: float | None = None,
    ) -> None:
        """Change some fields of a session. A session that no longer exists is left absent."""
        if not _is_session_id(session_id):
            return
        changes: dict[str, Any] = {}
        if groups is not None:
            changes["groups"] = json.dumps(list(_names(groups)))
        if scopes is not None:
            changes["scopes"] = json.dumps(list(_names(scopes)))
        if groups_refreshed_at is not None:
            changes["groups_refreshed_at"] = float(groups_refreshed_at)
        if not isinstance(refresh_token, _Unchanged):
            changes["refresh_token_sealed"] = self._seal(session_id, self._keepable(refresh_token))
        if changes:
            await self._patch(session_id, changes)

    async def delete(self, token: str) -> None:
        """End the session of `token` for every instance sharing this backend."""
        session_id = _session_id_or_none(token)
        if session_id is not None:
            await self._remove(session_id)

    async def delete_by_id(self, session_id: str) -> None:
        if _is_session_id(session_id):
            await self._remove(session_id)

    async def _load_live(self, session_id: str, *, touch: bool) -> Session | None:
        record = await self._load(session_id)
        if record is None:
            return None
        now = self._clock()
        session = self._from_record(record)
        if session is None:
            return None
        if now >= session.expires_at or now - session.last_seen_at > self.idle_timeout:
            await self._remove(session_id)
            return None
        if touch and now - session.last_seen_at >= self.touch_interval:
            session = replace(session, last_seen_at=now)
            await self._patch(session_id, {"last_seen_at": now}, self._deadline(session, now))
        return session

    def _deadline(self, session: Session, now: float) -> float:
        """Seconds from `now` until the session ends unless seen again (backends expire records by it)."""
        return min(session.expires_at, session.last_seen_at + self.idle_timeout) - now

    # -- records ---------------------------------------------------------------------------

    def _keepable(self, refresh_token: str | None) -> str | None:
        if refresh_token is not None and self._secretbox is None:
            log.warning("no SECRET_KEY configured: the refresh token is not kept, groups cannot be refreshed")
            return None
        return refresh_token

    def _seal(self, session_id: str, refresh_token: str | None) -> str | None:
        if refresh_token is None or self._secretbox is None:
            return None
        return self._secretbox.encrypt(refresh_token, context=session_id)

    def _to_record(self, session: Session) -> dict[str, Any]:
        return {
            "id": session.id, "subject": session.subject, "username": session.username, "email": session.email,
            "provider": session.provider, "groups": json.dumps(list(session.groups)),
            "scopes": json.dumps(list(session.scopes)), "created_at": session.created_at,
            "expires_at": session.expires_at, "last_seen_at": session.last_seen_at,
            "groups_refreshed_at": session.groups_refreshed_at,
            "refresh_token_sealed": self._seal(session.id, session.refresh_token), "kind": session.kind,
            "client_id": session.client_id, "resources": json.dumps(list(session.resources)),
        }

    def _from_record(self, record: Mapping[str, Any]) -> Session | None:
        """The session a record holds; None (fail closed) if it is damaged or its token does not open."""
        session_id = record.get("id", "?")
        try:
            lists = {name: tuple(str(item) for item in json.loads(record[name])) for name in _LIST_FIELDS}
            refresh_token = self._open(session_id, record.get("refresh_token_sealed"))
            return Session(
                id=record["id"], subject=record["subject"], username=record["username"],
                email=record.get("email") or None, provider=record["provider"],
                created_at=float(record["created_at"]), expires_at=float(record["expires_at"]),
                last_seen_at=float(record["last_seen_at"]),
                groups_refreshed_at=float(record["groups_refreshed_at"]), refresh_token=refresh_token,
                kind=record["kind"], client_id=record.get("client_id") or None, **lists,
            )
        except (KeyError, TypeError, ValueError) as exc:
            log.warning("session %.8s is unusable and treated as absent: %s", session_id, exc)
            return None

    def _open(self, session_id: str, sealed: str | None) -> str | None:
        if not sealed:
            return None
        if self._secretbox is None:
            raise SecretBoxError("a refresh token is stored but no SECRET_KEY is configured")
        return self._secretbox.decrypt(sealed, context=session_id)

    # -- what a backend provides -----------------------------------------------------------

    @abstractmethod
    async def _insert(self, record: dict[str, Any], ttl: float) -> None:
        """Store a new record that may be forgotten `ttl` seconds from now."""

    @abstractmethod
    async def _load(self, session_id: str) -> Mapping[str, Any] | None: ...

    @abstractmethod
    async def _patch(self, session_id: str, changes: dict[str, Any], ttl: float | None = None) -> None:
        """Set fields (None clears one) of an existing record only; `ttl`, if given, renews its lifetime."""

    @abstractmethod
    async def _remove(self, session_id: str) -> None: ...

    # -- MCP session binding ---------------------------------------------------------------

    @abstractmethod
    async def bind(self, key: str, owner: str, ttl: float) -> str:
        """Bind `key` to `owner` unless already bound; returns the owner in force.

        Atomic across instances: the first owner wins, a different owner gets the first one
        back (and must be refused). The same owner renews the binding for `ttl` seconds.
        """

    @abstractmethod
    async def unbind(self, key: str) -> None: ...

    # -- login throttling ------------------------------------------------------------------

    @abstractmethod
    async def hit(self, key: str, window: float) -> int:
        """Count one event for `key`; the count resets `window` seconds after its first event."""

    @abstractmethod
    async def admit(self, limits: Mapping[str, int], window: float) -> bool:
        """Count one attempt under every key of `limits`, unless one key's count has reached its limit.

        Check and count are one atomic step across instances, so of N concurrent callers at most
        `limit` are admitted: count an attempt before doing the work it limits (verifying a
        password), never after. Each key's count resets `window` seconds after its first attempt.
        Returns False, counting nothing, when a limit is reached.
        """

    @abstractmethod
    async def release(self, key: str) -> None:
        """Take back one attempt counted under `key` (it succeeded and should not count as a failure)."""

    @abstractmethod
    async def hits(self, key: str) -> int:
        """The current count for `key` (0 when none or expired), without counting an event."""

    @abstractmethod
    async def reset_hits(self, key: str) -> None: ...

    # -- single-use values (OAuth state, authorization codes) ------------------------------

    @abstractmethod
    async def put_once(self, key: str, value: str, ttl: float) -> None:
        """Keep `value` under `key` for `ttl` seconds (replacing any previous value)."""

    @abstractmethod
    async def take_once(self, key: str) -> str | None:
        """Atomically read and delete; None if absent or expired. Of concurrent takers, one wins."""

    # -- plain values (registered OAuth clients, token families) ---------------------------

    async def put(self, key: str, value: str, ttl: float) -> None:
        """Keep `value` under `key` for `ttl` seconds, to be read with `get_value` any number of
        times. Same key space as `put_once`: `take_once` removes such a value atomically."""
        await self.put_once(key, value, ttl)

    @abstractmethod
    async def get_value(self, key: str) -> str | None:
        """The value under `key` without taking it; None if absent or expired."""

    @abstractmethod
    async def replace_value(self, key: str, expected: str, value: str, ttl: float) -> bool:
        """Atomically: if `key` still holds `expected`, keep `value` there for `ttl` seconds and
        return True; otherwise (changed, taken or expired meanwhile) change nothing, return False."""

    # -- lifecycle -------------------------------------------------------------------------

    @abstractmethod
    async def ping(self) -> None:
        """Raise StoreUnavailable unless the backend answers."""

    @abstractmethod
    async def close(self) -> None: ...

    async def __aenter__(self) -> "SessionStore":
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
