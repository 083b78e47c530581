"""The registry's runtime changes in Redis, for instances that share no file system.

With `[session] store = "redis://…"` the changes made through the registry API (toggle,
edit, register, delete) are kept in Redis instead of `<state_dir>/registry.toml`: the same
document (as JSON) under `mcpgw:registry:state`, a counter `mcpgw:registry:version` bumped
with every change, and a Redis lock instead of `flock`. A change is published on
`mcpgw:registry:changed`; every instance re-reads the document when told, and its watcher
thread also compares the version every second, so a change is in force everywhere within a
second even if a notification is lost. Reads stay in memory (mcp_gateway/registry.py, whose
`registry_for` picks this class when the session store is Redis).
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import weakref
from pathlib import Path
from typing import Any

import redis
from redis.exceptions import LockError, RedisError

from .config import ServerConfig
from .registry import LOCK_WAIT, Registry, RegistryError
from .server_files import ServerFiles

log = logging.getLogger(__name__)

PREFIX = "mcpgw:registry:"
STATE_KEY, VERSION_KEY, LOCK_KEY, CHANNEL = (PREFIX + name for name in ("state", "version", "lock", "changed"))
LOCK_TIMEOUT = 30.0  # a holder that died releases the lock after this long
RESUBSCRIBE_AFTER = 1.0


class RedisRegistry(Registry):
    def __init__(self, declared: tuple[ServerConfig, ...], state_dir: Path, base_dir: Path, url: str,
                 check_interval: float = 1.0, files: ServerFiles | None = None):
        self._redis = redis.Redis.from_url(url, decode_responses=True, socket_connect_timeout=2.0, socket_timeout=5.0)
        self._unreachable = False
        super().__init__(declared, state_dir, base_dir, check_interval=check_interval, files=files)
        self._subscriber = _subscribe(weakref.ref(self), self._redis, self._stop)

    def __repr__(self) -> str:
        return "RedisRegistry()"

    def _file_stamp(self) -> Any:
        try:
            version = self._redis.get(VERSION_KEY)
        except RedisError as e:
            if not self._unreachable:
                log.error("registry state in redis unreachable, keeping the registry in force: %s", e)
            self._unreachable = True
            return self._stamp
        if self._unreachable:
            log.info("registry state in redis reachable again")
            self._unreachable = False
        return version

    def _read_document(self) -> dict[str, Any] | None:
        try:
            text = self._redis.get(STATE_KEY)
        except RedisError as e:
            raise OSError(f"redis: {e}") from None
        return None if text is None else json.loads(text)

    @contextlib.contextmanager
    def _file_lock(self):
        lock = self._redis.lock(LOCK_KEY, timeout=LOCK_TIMEOUT, blocking_timeout=LOCK_WAIT)
        try:
            acquired = lock.acquire()
        except RedisError as e:
            log.error("registry: redis unreachable; change refused: %s", e)
            raise RegistryError(503, "the registry's store is unavailable; try again") from None
        if not acquired:
            log.error("registry: the redis lock stayed taken for %.0f s; change refused", LOCK_WAIT)
            raise RegistryError(503, "the registry is busy; try again")
        try:
            yield
        finally:
            with contextlib.suppress(LockError, RedisError):
                lock.release()

    def _store_document(self, document: dict[str, Any]) -> None:
        try:
            pipe = self._redis.pipeline(transaction=True)
            pipe.set(STATE_KEY, json.dumps(document, sort_keys=True))
            pipe.incr(VERSION_KEY)
            _, version = pipe.execute()
            self._redis.publish(CHANNEL, str(version))
        except RedisError as e:
            log.error("registry: cannot write the state to redis: %s", e)
            raise RegistryError(503, "the registry's store is unavailable; try again") from None


def _subscribe(ref: "weakref.ref[RedisRegistry]", client: redis.Redis, stop: threading.Event) -> threading.Thread:
    """Re-read the state as soon as any instance announces a change."""

    def run() -> None:
        while not stop.is_set():
            try:
                with client.pubsub(ignore_subscribe_messages=True) as pubsub:
                    pubsub.subscribe(CHANNEL)
                    while not stop.is_set():
                        message = pubsub.get_message(timeout=1.0)
                        registry = ref()
                        if registry is None:
                            return
                        if message is not None:
                            registry._reload()
                        del registry
            except RedisError:
                stop.wait(RESUBSCRIBE_AFTER)  # meanwhile the watcher's once-a-second check applies changes
            except Exception:  # noqa: BLE001 — the subscriber must survive anything
                log.exception("registry: handling a change notification failed")
                stop.wait(RESUBSCRIBE_AFTER)

    thread = threading.Thread(target=run, name="registry-changes", daemon=True)
    thread.start()
    return thread
