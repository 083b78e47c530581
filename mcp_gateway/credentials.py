"""Per-server upstream credentials: where they may come from, and what a value may hold.

A server's credential is configuration, never registry-API data (docs/configuration.md,
"Upstream credentials"). It may come only from an environment variable named
`MCP_UPSTREAM_*` or from a file under `[gateway] credentials_dir`, so no configuration
can point it at the gateway's own secrets (SECRET_KEY, client secrets, /proc/self/environ).
Values are single header lines: a control character (CR, LF, NUL, ...) would let a value
inject further headers, so such a value is refused at start-up and never sent.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from pathlib import Path
from typing import Any, Mapping

log = logging.getLogger(__name__)

ENV_PREFIX = "MCP_UPSTREAM_"
_ENV_NAME = re.compile(r"MCP_UPSTREAM_[A-Z0-9_]+")
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
# Headers the gateway or mitmproxy own on the upstream hop; a credential may not replace them.
_RESERVED_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection", "upgrade", "te",
                               "trailer", "keep-alive", "proxy-connection", "content-type", "cookie",
                               "mcp-session-id"})
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class CredentialProblem(ValueError):
    """A credential source or value that is not allowed; the message names the rule, `key` the setting."""

    def __init__(self, message: str, key: str = ""):
        super().__init__(message)
        self.key = key


def checked_sources(values: Mapping[str, Any], credentials_dir: Path | None) -> dict[str, str]:
    """A server entry's credential settings, checked; the file path resolved inside credentials_dir."""
    header, env_name, file = values["upstream_header"], values["upstream_value_env"], values["upstream_value_file"]
    if env_name and file:
        raise CredentialProblem("give upstream_value_env or upstream_value_file, not both", "upstream_value_file")
    if bool(header) != bool(env_name or file):
        raise CredentialProblem("give it together with upstream_value_env or upstream_value_file", "upstream_header")
    for key, check in (("upstream_header", check_header_name), ("upstream_value_env", check_env_name)):
        try:
            values[key] and check(values[key])
        except CredentialProblem as e:
            raise CredentialProblem(str(e), key) from None
    if not file:
        return {}
    try:
        return {"upstream_value_file": str(credential_file(file, credentials_dir))}
    except CredentialProblem as e:
        raise CredentialProblem(str(e), "upstream_value_file") from None


def check_configured_value(server, env: Mapping[str, str]) -> None:
    """A credential that is there must be a single line; one that is missing is reported at
    start (requests to that server get 502 until it appears)."""
    if server.upstream_value_env:
        if env.get(server.upstream_value_env) is None:
            log.warning("server %s: %s is not set; its requests get 502 until it is", server.name,
                        server.upstream_value_env)
            return
        try:
            check_value(env[server.upstream_value_env])
        except CredentialProblem as e:
            raise CredentialProblem(f"{server.upstream_value_env} {e}", "upstream_value_env") from None
    elif server.upstream_value_file:
        if not Path(server.upstream_value_file).exists():
            log.warning("server %s: %s does not exist; its requests get 502 until it does", server.name,
                        server.upstream_value_file)
            return
        try:
            read_credential_file(Path(server.upstream_value_file))
        except CredentialProblem as e:
            raise CredentialProblem(str(e), "upstream_value_file") from None


def check_env_name(name: str) -> str:
    if not _ENV_NAME.fullmatch(name):
        raise CredentialProblem(f"must name an environment variable MCP_UPSTREAM_<NAME> (A-Z, 0-9, _), got {name!r}")
    return name


def check_header_name(name: str) -> str:
    if not _HEADER_NAME.fullmatch(name) or name.lower() in _RESERVED_HEADERS:
        raise CredentialProblem(f"not a header name a credential may set: {name!r}")
    return name


def check_value(value: str) -> str:
    """A header value: one line, no control characters; surrounding whitespace is dropped."""
    text = value.strip()
    if _CONTROL.search(text):
        raise CredentialProblem("holds a control character (CR, LF, NUL, ...): a header value is one line")
    return text


def credential_file(value: str, credentials_dir: Path | None) -> Path:
    """The resolved path of a credential file, which must lie inside `credentials_dir`
    (relative paths resolve against it; `..` and symlinks are resolved before the check)."""
    if credentials_dir is None:
        raise CredentialProblem("set [gateway] credentials_dir: credential files are read only from that folder")
    root = credentials_dir.resolve()
    path = (root / value).resolve()
    if not path.is_relative_to(root) or path == root:
        raise CredentialProblem(f"{value!r} is outside [gateway] credentials_dir ({root})")
    return path


def read_credential_file(path: Path) -> str:
    """The value of a file resolved by credential_file(). Checked again at read time: if the
    file or a folder above it has become a symlink since, it is refused."""
    real = Path(os.path.realpath(path))
    if real != path:
        raise CredentialProblem(f"{path} has become a link to {real}; refusing to read it")
    try:
        raw = real.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise CredentialProblem(f"cannot read {real}: {getattr(e, 'strerror', None) or e}") from None
    return check_value(raw)


class CredentialFileCache:
    """File credentials, re-read only when the file's modification time or size changes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[Path, tuple[tuple[int, ...], str]] = {}

    def read(self, path: Path) -> str:
        link, target = os.lstat(path), os.stat(path)  # a swapped symlink changes the first
        stamp = (link.st_mtime_ns, link.st_ino, target.st_mtime_ns, target.st_size)
        with self._lock:
            cached = self._entries.get(path)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        value = read_credential_file(path)
        with self._lock:
            self._entries[path] = (stamp, value)
        return value
