"""The server registry: the servers declared in gateway.toml, overridden by runtime changes.

Runtime changes (toggle, edit, register, delete through the registry API) are written by
the program, atomically, with tomli-w, to `<state_dir>/registry.toml`; a person's
gateway.toml is never rewritten. Several gateway instances share the state file: each
re-reads it when its modification time changes, so a toggle on one instance is seen by
all of them within `check_interval`.

Servers may also come from a folder of server definition files (mcp_gateway.server_files,
docs/registry-files.md); changes to those are written back to their files instead.
Reading the registry (`get`, `all`, `names`) never touches the disk: a background thread
checks the state file every `check_interval`, so request hooks on the proxy's event loop
never wait for a stat or a parse. Changes take an exclusive lock on the state file and
fsync; callers on an event loop run them in a thread (addons/registry_api.py). A lock held
elsewhere for longer than LOCK_WAIT gives 503, never a hang.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import tempfile
import threading
import time
import tomllib
import weakref
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, Mapping

import tomli_w

from .config import ConfigError, GatewayConfig, ServerConfig, server_from_mapping
from .registry_fields import CONFIG_ONLY_FIELDS, SETTABLE_FIELDS, FieldProblem, check_body
from .server_files import FileRefused, ServerFiles
from .sessions import is_redis_url

log = logging.getLogger(__name__)

STATE_FILE = "registry.toml"
LOCK_WAIT = 10.0  # seconds a change waits for another process's lock on the state file


class RegistryError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


class Registry:
    def __init__(self, declared: tuple[ServerConfig, ...], state_dir: Path, base_dir: Path,
                 check_interval: float = 1.0, files: ServerFiles | None = None):
        self._declared = {s.name: s for s in declared}
        self._files = files
        self._files_version = files.version if files else 0
        self._state_path = state_dir / STATE_FILE
        self._base_dir = base_dir
        self._check_interval = check_interval
        self._lock = threading.Lock()
        self._overrides: dict[str, dict[str, Any]] = {}
        self._deleted: set[str] = set()
        self._servers: dict[str, ServerConfig] = dict(self._declared)
        self._stamp: tuple[int, int] | None = None
        self._checked_at = 0.0
        self.version = 0
        self._reload(force=True)
        self._stop = threading.Event()
        _watch(weakref.ref(self), self._stop, check_interval)

    def close(self) -> None:
        """Stop watching the state file (it also stops once the registry is garbage)."""
        self._stop.set()

    # -- reading (in memory) ---------------------------------------------------

    def get(self, name: str) -> ServerConfig | None:
        self._refresh_files()
        return self._servers.get(name)

    def all(self) -> list[ServerConfig]:
        self._refresh_files()
        return sorted(self._servers.values(), key=lambda s: s.name)

    def names(self) -> frozenset[str]:
        self._refresh_files()
        return frozenset(self._servers)

    def refresh(self) -> None:
        self._refresh_files()
        now = time.monotonic()
        if now - self._checked_at >= self._check_interval:
            self._checked_at = now
            self._reload()

    def _file_stamp(self) -> tuple[int, int] | None:
        try:
            st = self._state_path.stat()
        except FileNotFoundError:
            return None
        return (st.st_mtime_ns, st.st_size)

    def _reload(self, force: bool = False) -> None:
        stamp = self._file_stamp()
        if not force and stamp == self._stamp:
            return
        with self._lock:
            try:
                overrides, deleted = self._read_state()
                servers = self._merge(overrides, deleted)
            except (OSError, tomllib.TOMLDecodeError, ConfigError, ValueError) as e:
                # The last good registry stays in force; a broken state file must not open or close servers.
                log.error("registry state %s unreadable, keeping the last good registry: %s", self._state_path, e)
                self._stamp = stamp
                return
            self._overrides, self._deleted, self._servers, self._stamp = overrides, deleted, servers, stamp
            self.version += 1

    def _read_document(self) -> dict[str, Any] | None:
        """The stored runtime changes; None when there are none. (mcp_gateway/registry_state.py
        keeps them in Redis instead of the state file.)"""
        if not self._state_path.exists():
            return None
        return tomllib.loads(self._state_path.read_text(encoding="utf-8"))

    def _read_state(self) -> tuple[dict[str, dict[str, Any]], set[str]]:
        data = self._read_document()
        if data is None:
            return {}, set()
        overrides = data.get("servers", {})
        deleted = data.get("deleted", [])
        if not isinstance(overrides, dict) or not isinstance(deleted, list):
            raise ValueError("expected [servers.<name>] tables and a deleted list")
        return {str(k): _settable(str(k), v) for k, v in overrides.items()}, {str(d) for d in deleted}

    def _merge(self, overrides: Mapping[str, Mapping[str, Any]], deleted: set[str]) -> dict[str, ServerConfig]:
        declared = {**self._servers_from_files(overrides), **self._declared}
        servers = {name: s for name, s in declared.items() if name not in deleted}
        for name, fields in overrides.items():
            servers[name] = self._build(name, servers.get(name), fields, f"{self._state_path}: ", f"servers.{name}")
        return servers

    def _build(self, name: str, base: ServerConfig | None, fields: Mapping[str, Any], prefix: str,
               label: str) -> ServerConfig:
        """`base` with `fields` applied. What only configuration sets (credentials, ca_file) is
        taken from the declared entry as it is, never from runtime data."""
        values = {k: v for k, v in asdict(base).items() if k not in CONFIG_ONLY_FIELDS} if base else {}
        server = server_from_mapping({**values, **fields, "name": name}, prefix, label, self._base_dir)
        declared = self._declared.get(name)
        if declared is None:
            return server
        return replace(server, **{k: getattr(declared, k) for k in CONFIG_ONLY_FIELDS})

    # -- changing ------------------------------------------------------------

    def set_enabled(self, name: str, enabled: bool) -> ServerConfig:
        return self._change(name, {"enabled": enabled}, must_exist=True)

    def edit(self, name: str, fields: Mapping[str, Any]) -> ServerConfig:
        _check(fields, with_name=False)
        return self._change(name, dict(fields), must_exist=True)

    def register(self, fields: Mapping[str, Any]) -> ServerConfig:
        name = fields.get("name")
        _check(fields, with_name=True)
        server = self._validate(None, dict(fields), label="new server")
        if self.get(server.name) is not None:
            raise RegistryError(409, f"server {name!r} already exists")
        return self._change(server.name, {k: v for k, v in fields.items() if k != "name"}, must_exist=False)

    def delete(self, name: str) -> None:
        with self._lock, self._file_lock():
            self._reload_locked()
            if name not in self._servers:
                raise RegistryError(404, f"unknown server {name!r}")
            if self._from_file(name):
                return self._write_file(lambda files: files.remove(name))
            overrides = dict(self._overrides)
            overrides.pop(name, None)
            deleted = set(self._deleted)
            if name in self._declared:
                deleted.add(name)
            self._write(overrides, deleted)

    def _validate(self, base: ServerConfig | None, fields: dict[str, Any], label: str) -> ServerConfig:
        try:
            return self._build(fields.get("name") or (base.name if base else ""), base, fields, "", label)
        except ConfigError as e:
            raise RegistryError(400, str(e)) from None

    def _change(self, name: str, fields: dict[str, Any], must_exist: bool) -> ServerConfig:
        with self._lock, self._file_lock():
            self._reload_locked()
            current = self._servers.get(name)
            if must_exist and current is None:
                raise RegistryError(404, f"unknown server {name!r}")
            server = self._validate(current, {**fields, "name": name}, label=f"servers.{name}")
            if self._from_file(name):
                # Written as validated (e.g. "yes" → true), never as sent.
                return self._write_file(lambda files: files.write_back(name, {k: getattr(server, k) for k in fields}))
            overrides = dict(self._overrides)
            overrides[name] = {**overrides.get(name, {}), **fields}
            deleted = set(self._deleted) - {name}
            self._write(overrides, deleted)
            return replace(server)

    @contextlib.contextmanager
    def _file_lock(self):
        # Several gateway processes share the state file: serialise read-modify-write.
        self._state_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self._state_path.with_suffix(".lock"), "a") as lock:
            deadline = time.monotonic() + LOCK_WAIT
            while True:
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        log.error("registry: %s stayed locked for %.0f s; change refused", lock.name, LOCK_WAIT)
                        raise RegistryError(503, "the registry is busy; try again") from None
                    time.sleep(0.05)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _reload_locked(self) -> None:
        overrides, deleted = self._read_state()
        self._servers = self._merge(overrides, deleted)
        self._overrides, self._deleted = overrides, deleted

    def _write(self, overrides: dict[str, dict[str, Any]], deleted: set[str]) -> None:
        servers = self._merge(overrides, deleted)
        self._store_document({"servers": overrides, "deleted": sorted(deleted)})
        self._overrides, self._deleted, self._servers = overrides, deleted, servers
        self._stamp = self._file_stamp()
        self.version += 1

    def _store_document(self, document: dict[str, Any]) -> None:
        self._state_path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".registry-", suffix=".toml", dir=self._state_path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(b"# Written by the MCP Gateway's registry API. Do not edit while it runs.\n")
                tomli_w.dump(document, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self._state_path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    # -- servers from definition files (mcp_gateway.server_files) -------------

    def _refresh_files(self) -> None:
        # The folder is polled off the event loop (addons/server_files_watch.py); here only
        # the in-memory snapshot is compared, so reading the registry never touches the disk.
        if self._files is not None and self._files.version != self._files_version:
            with self._lock:
                self._files_version = self._files.version
                self._servers = self._merge(self._overrides, self._deleted)
                self.version += 1

    def _servers_from_files(self, overrides: Mapping[str, Any]) -> dict[str, ServerConfig]:
        if self._files is None:
            return {}
        # gateway.toml and servers registered through the API win over a file of the same name.
        return {name: entry.server for name, entry in self._files.servers.items()
                if name not in self._declared and name not in overrides}

    def _from_file(self, name: str) -> bool:
        return (self._files is not None and name in self._files.servers
                and name not in self._declared and name not in self._overrides)

    def _write_file(self, write) -> Any:
        try:
            result = write(self._files)
        except FileRefused as e:
            raise RegistryError(e.status, e.message) from None
        except OSError as e:
            log.error("registry: cannot write to servers_dir %s: %s", self._files.folder, e)
            raise RegistryError(503, "the server's definition file cannot be written; see the gateway log") from None
        self._files_version = self._files.version
        self._servers = self._merge(self._overrides, self._deleted)
        self.version += 1
        return result

def _watch(ref: "weakref.ref[Registry]", stop: threading.Event, interval: float) -> None:
    def run() -> None:
        while not stop.wait(interval):
            registry = ref()
            if registry is None:
                return
            try:
                registry._refresh_files()
                registry._reload()
            except Exception:  # noqa: BLE001 — the watcher must survive anything and keep the last good registry
                log.exception("registry: checking the state file and the server files failed")
            del registry

    threading.Thread(target=run, name="registry-watch", daemon=True).start()


def _check(fields: Mapping[str, Any], with_name: bool) -> None:
    try:
        check_body(fields, with_name=with_name)
    except FieldProblem as e:
        raise RegistryError(400, str(e)) from None


def _settable(name: str, fields: Any) -> dict[str, Any]:
    """A server's overrides from the state file, without what only configuration may set
    (a state file written by an older version, or by hand, must not choose credentials)."""
    if not isinstance(fields, dict):
        raise ValueError(f"[servers.{name}] must be a table")
    dropped = sorted(set(fields) & CONFIG_ONLY_FIELDS)
    if dropped:
        log.error("registry state: server %s: ignoring %s (configuration only)", name, ", ".join(dropped))
    return {k: v for k, v in fields.items() if k in SETTABLE_FIELDS}


def registry_for(config: GatewayConfig, files: ServerFiles | None = None) -> Registry:
    """The registry of `config`: its runtime changes in Redis when the session store is Redis
    (mcp_gateway/registry_state.py), else in the state file."""
    if is_redis_url(config.session.store):
        from .registry_state import RedisRegistry  # the client library only when Redis is used
        return RedisRegistry(config.servers, config.state_dir, config.source.parent, config.session.store,
                             files=files)
    return Registry(config.servers, config.state_dir, config.source.parent, files=files)
