"""Session stores: SQLite (one file, default) and Redis (several instances), one interface.

    store = open_store("sqlite:///sessions.db", base_dir=state_dir, lifetime=8 * 3600,
                       idle_timeout=3600, secretbox=SecretBox(secret_key))
    token, session = await store.create(subject="u1", username="ada", provider="local")
    session = await store.get(token)    # None once expired, idle, deleted or unknown
"""

from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from mcp_gateway.secretbox import SecretBox
from mcp_gateway.sessions.base import UNCHANGED, Session, SessionStore, StoreUnavailable, session_id_for
from mcp_gateway.sessions.sqlite import SqliteSessionStore

__all__ = [
    "UNCHANGED", "Session", "SessionStore", "SqliteSessionStore", "StoreUnavailable",
    "is_redis_url", "open_store", "session_id_for",
]

_REDIS_SCHEMES = ("redis", "rediss", "unix")


def is_redis_url(url: str) -> bool:
    """A store URL naming Redis; the registry and rate limits follow the session store there."""
    return url.split(":", 1)[0].lower() in _REDIS_SCHEMES


def open_store(
    url: str,
    *,
    base_dir: Path,
    lifetime: float,
    idle_timeout: float,
    secretbox: SecretBox | None,
    touch_interval: float = 30.0,
    **backend_options: Any,
) -> SessionStore:
    """The store `url` names. Nothing is connected yet: the first operation does that.

    - `sqlite:///sessions.db`: a path relative to `base_dir` (the gateway passes its state_dir);
    - `sqlite:////abs/path/sessions.db`: an absolute path;
    - `redis://host:port/db`, `rediss://…` (TLS), `unix:///path/redis.sock`: Redis.

    `backend_options` go to the backend (e.g. `busy_timeout` for SQLite, `key_prefix` for
    Redis). Anything else raises ValueError naming the problem.
    """
    common = {"lifetime": lifetime, "idle_timeout": idle_timeout, "secretbox": secretbox,
              "touch_interval": touch_interval, **backend_options}
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if scheme == "sqlite":
        return SqliteSessionStore(_sqlite_path(url, base_dir), **common)
    if is_redis_url(url):
        # Imported for a Redis URL only: a gateway on SQLite never loads the client library.
        from mcp_gateway.sessions.redis import RedisSessionStore
        return RedisSessionStore(url, **common)
    raise ValueError(
        f"session store {url!r} is not supported: use sqlite:///relative/path.db, "
        "sqlite:////absolute/path.db or redis://host:port/db"
    )


def _sqlite_path(url: str, base_dir: Path) -> Path:
    parts = urlsplit(url)
    if parts.netloc or parts.query or parts.fragment:
        raise ValueError(f"session store {url!r}: write sqlite:///relative/path.db or sqlite:////absolute/path.db")
    raw = unquote(parts.path)[1:]  # "sqlite:///x" -> "/x" -> "x"; "sqlite:////x" -> "//x" -> "/x"
    if not raw or raw.endswith("/") or raw == ":memory:":
        raise ValueError(f"session store {url!r} names no database file (an in-memory database cannot be shared)")
    path = Path(raw)
    return path if path.is_absolute() else Path(base_dir) / path
