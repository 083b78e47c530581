"""Server definition files: the registry format our users come from, read beside gateway.toml.

One JSON file per server in a folder (`[gateway] servers_dir`), plus `server_state.json`
mapping each server's path to its enabled state. The mapping, field by field, and the rules
(bad files, precedence, write-back) are in docs/registry-files.md.

`scan()` does all the disk reading and is meant to run off the event loop; it re-parses only
the files whose modification time or size changed, so a refused file is logged once per
change rather than once per poll. Problems are logged as warnings, not errors: mitmproxy
stops at start-up on any error line, and one bad file must not keep the other servers down. `servers` is replaced whole, never mutated, so readers on
other threads always see one consistent snapshot.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Mapping

from .config import ConfigError, ServerConfig, server_from_mapping
from .config_schema import SERVER_NAME

log = logging.getLogger(__name__)

STATE_FILE = "server_state.json"
MAX_FILE_BYTES = 4 * 1024 * 1024
# Our own keys a file may carry beside the guide's ones (same meaning as in [[servers]]).
EXTENSION_KEYS = ("sse_path", "streamable_path", "verify_tls", "ca_file")
# Credentials are configuration (the environment and the credentials folder), never file content.
CREDENTIAL_KEYS = frozenset({"upstream_header", "upstream_value_env", "upstream_value_file"})
# A registry API field → the file's key it is written to ("enabled" goes to server_state.json).
WRITABLE = {"url": "proxy_pass_url", "description": "description", **{k: k for k in EXTENSION_KEYS}}


class FileRefused(Exception):
    """A server file (or a change to one) that cannot be used; the message names the file."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass(frozen=True)
class ServerFile:
    file: Path
    route: str  # the "path" as written, e.g. "/currenttime"
    server: ServerConfig


def name_from_route(route: object) -> str:
    """"/currenttime" (or "/currenttime/") → "currenttime"; anything else is refused."""
    if not isinstance(route, str):
        raise ValueError(f'"path" must be a string such as "/currenttime", got {type(route).__name__}')
    name = route[1:].rstrip("/") if route.startswith("/") else ""
    if not SERVER_NAME.fullmatch(name):
        raise ValueError(f'"path" must be "/" and 1-64 characters of [a-z0-9_-], got {route!r}')
    return name


def server_from_document(document: object, file: Path, base_dir: Path) -> ServerFile:
    """The server a file declares (enabled; the state file decides later); raises FileRefused."""
    where = f"server file {file}"
    if not isinstance(document, dict):
        raise FileRefused(f"{where}: the top level must be a JSON object")
    for required in ("server_name", "path", "proxy_pass_url"):
        if required not in document:
            raise FileRefused(f"{where}: {required!r} is missing")
    smuggled = sorted(CREDENTIAL_KEYS & set(document))
    if smuggled:
        raise FileRefused(f"{where}: {', '.join(smuggled)} not allowed here; upstream credentials are "
                          "configuration (gateway.toml with MCP_UPSTREAM_* variables or the credentials folder)")
    if not isinstance(document["server_name"], str) or not document["server_name"].strip():
        raise FileRefused(f"{where}: 'server_name' must be a non-empty string")
    try:
        name = name_from_route(document["path"])
    except ValueError as e:
        raise FileRefused(f"{where}: {e}") from None
    description = document.get("description")
    if description in (None, ""):
        description = document["server_name"]
    fields = {"name": name, "url": document["proxy_pass_url"], "description": description,
              **{k: document[k] for k in EXTENSION_KEYS if k in document}}
    try:
        server = server_from_mapping(fields, f"{where}: ", "server", base_dir)
    except ConfigError as e:
        raise FileRefused(str(e)) from None
    return ServerFile(file, document["path"], server)


def read_document(file: Path) -> Any:
    try:
        # Read at most one byte past the limit: a file's size can grow after stat(), and files
        # such as those of /proc report 0.
        with file.open("rb") as f:
            raw = f.read(MAX_FILE_BYTES + 1)
        if len(raw) > MAX_FILE_BYTES:
            raise FileRefused(f"server file {file}: larger than {MAX_FILE_BYTES} bytes")
        return json.loads(raw.decode("utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        raise FileRefused(f"server file {file}: cannot read: {e}") from None
    except json.JSONDecodeError as e:
        raise FileRefused(f"server file {file}: not valid JSON: {e}") from None
    except RecursionError:
        raise FileRefused(f"server file {file}: nested too deeply") from None


def write_json_atomically(file: Path, document: Any) -> None:
    """Replace `file` in one step (readers see the old or the new file, never half of one)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{file.name}.", suffix=".tmp", dir=file.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(document, f, indent=2, ensure_ascii=False)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        try:
            os.chmod(tmp, file.stat().st_mode & 0o777)
        except FileNotFoundError:
            os.chmod(tmp, 0o644)
        os.replace(tmp, file)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _inside(file: Path, folder: Path) -> bool:
    """Links within the folder (a Kubernetes ConfigMap's `..data/`) are followed; links out of it
    (to /proc/self/environ, another service's files) are not."""
    try:
        return file.resolve(strict=True).is_relative_to(folder.resolve(strict=True))
    except (OSError, RuntimeError):
        return False


def _stamp(file: Path) -> tuple[int, int, int] | None:
    try:
        st = file.stat()
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


class ServerFiles:
    def __init__(self, folder: Path, reserved: frozenset[str] = frozenset()):
        self.folder = folder
        self.reserved = reserved  # names declared in gateway.toml, which win over a file
        self.version = 0
        self.servers: dict[str, ServerFile] = {}
        self._lock = threading.Lock()
        self._parsed: dict[Path, tuple[tuple[int, int, int] | None, ServerFile | None]] = {}
        self._state: dict[str, Any] | None = None  # None: never read successfully
        self._state_stamp: object = "unread"
        self._folder_missing_logged = False

    # -- reading -------------------------------------------------------------

    def scan(self) -> bool:
        """Re-read what changed; True when the set of servers may have changed."""
        with self._lock:
            return self._scan_locked()

    def _scan_locked(self) -> bool:
        files = self._listing()
        changed = set(self._parsed) != set(files)
        parsed = {}
        for file in files:
            stamp = _stamp(file)
            previous = self._parsed.get(file)
            if previous is not None and previous[0] == stamp:
                parsed[file] = previous
                continue
            changed = True
            parsed[file] = (stamp, self._parse(file))
        for gone in set(self._parsed) - set(files):
            log.info("server file %s removed", gone)
        changed = self._read_state() or changed
        self._parsed = parsed
        if changed:
            self._publish()
        return changed

    def _listing(self) -> list[Path]:
        try:
            entries = sorted(self.folder.iterdir())
        except FileNotFoundError:
            if not self._folder_missing_logged:
                log.info("servers_dir %s does not exist: no servers from files", self.folder)
                self._folder_missing_logged = True
            return []
        except OSError as e:
            log.warning("servers_dir %s unreadable: %s", self.folder, e)
            return list(self._parsed)
        self._folder_missing_logged = False
        return [e for e in entries if e.suffix == ".json" and e.name != STATE_FILE
                and not e.name.startswith(".") and e.is_file()]

    def _parse(self, file: Path) -> ServerFile | None:
        if not _inside(file, self.folder):
            log.warning("server file %s: a link to %s, outside servers_dir; the file is ignored, other servers "
                        "are unaffected", file, file.resolve())
            return None
        try:
            entry = server_from_document(read_document(file), file, self.folder)
        except FileRefused as e:
            log.warning("%s; the file is ignored, other servers are unaffected", e.message)
            return None
        if entry.server.name in self.reserved:
            log.warning("server file %s: server %r is also declared in gateway.toml, which wins; the file is ignored",
                        file, entry.server.name)
            return None
        log.info("server file %s: server %s -> %s", file, entry.server.name, entry.server.url)
        return entry

    def _read_state(self) -> bool:
        path = self.folder / STATE_FILE
        stamp = _stamp(path)
        if stamp == self._state_stamp:
            return False
        self._state_stamp = stamp
        if stamp is None:
            self._state = {}
            return True
        try:
            state = read_document(path)
            if not isinstance(state, dict):
                raise FileRefused(f"server file {path}: expected an object such as {{\"/currenttime\": true}}")
        except FileRefused as e:
            # Fail closed on a first read; later, the last good state stays in force.
            log.warning("%s; %s", e.message, "keeping the last good state" if self._state is not None
                      else "every server from files is disabled until it is fixed")
            return False
        for route, value in state.items():
            if not isinstance(value, bool):
                log.warning("server file %s: %r must be true or false, got %r; that server is disabled",
                          path, route, value)
        self._state = state
        return True

    def _enabled(self, entry: ServerFile) -> bool:
        if self._state is None:
            return False
        value = self._state.get(entry.route, self._state.get(f"/{entry.server.name}", True))
        return value is True

    def _publish(self) -> None:
        servers: dict[str, ServerFile] = {}
        for file, (_, entry) in self._parsed.items():
            if entry is None:
                continue
            name = entry.server.name
            if name in servers:
                log.warning("server file %s: server %r is already declared by %s; the file is ignored",
                          file, name, servers[name].file)
                continue
            servers[name] = replace(entry, server=replace(entry.server, enabled=self._enabled(entry)))
        self.servers = servers
        self.version += 1

    # -- writing back --------------------------------------------------------

    def write_back(self, name: str, fields: Mapping[str, Any]) -> ServerConfig:
        """Apply registry API changes to the server's own file and to server_state.json."""
        with self._lock:
            entry = self.servers.get(name)
            if entry is None:
                raise FileRefused(f"server {name!r} no longer comes from a file", 409)
            refused = sorted(set(fields) - set(WRITABLE) - {"enabled"})
            if refused:
                raise FileRefused(f"cannot write {', '.join(refused)} to {entry.file.name}: "
                                  "upstream credentials are configuration, not server files")
            changes = {WRITABLE[k]: v for k, v in fields.items() if k in WRITABLE}
            if changes:
                document = read_document(entry.file)
                if not isinstance(document, dict):
                    raise FileRefused(f"server file {entry.file}: the top level must be a JSON object", 409)
                document.update(changes)
                server_from_document(document, entry.file, self.folder)  # refuse before writing
                write_json_atomically(entry.file, document)
            if "enabled" in fields:
                self._write_state(entry.route, fields["enabled"])
            self._scan_locked()
            return self.servers[name].server

    def remove(self, name: str) -> None:
        with self._lock:
            entry = self.servers.get(name)
            if entry is None:
                raise FileRefused(f"server {name!r} no longer comes from a file", 409)
            entry.file.unlink(missing_ok=True)
            self._write_state(entry.route, None)
            self._scan_locked()

    def _write_state(self, route: str, enabled: bool | None) -> None:
        path = self.folder / STATE_FILE
        state = read_document(path) if path.exists() else {}
        if not isinstance(state, dict):
            raise FileRefused(f"server file {path}: not an object; fix it before changing servers", 409)
        if enabled is None:
            state.pop(route, None)
        else:
            state[route] = enabled
        write_json_atomically(path, state)
