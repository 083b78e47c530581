"""Which fields of a server entry the registry API may change, and with which scope.

The table (also in docs/registry.md):

| field                                            | PUT/PATCH needs                          |
| ------------------------------------------------ | ---------------------------------------- |
| description, sse_path, streamable_path, tags      | mcp:server:{s}:edit                      |
| enabled                                          | mcp:server:{s}:toggle                    |
| url (http/https)                                 | mcp:registry:admin; mcp:server:{s}:edit when its host is in editor_upstream_hosts and no other server has that origin |
| verify_tls                                       | mcp:registry:admin                       |
| ca_file, upstream_header, upstream_value_env, upstream_value_file, upstream_oauth | nobody: configuration only (400) |
| anything else                                    | 400                                      |

mcp:registry:admin holds every scope of the table. A request needs the scope of every field
it carries, whether or not the value changes: comparing with the current value would race
with a concurrent change.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from .authz import Decision
from .config_schema import canonical_host
from .scopes import REGISTRY_ADMIN, server_scope

EDITOR_FIELDS = frozenset({"description", "sse_path", "streamable_path", "tags"})
CONFIG_ONLY_FIELDS = frozenset({"ca_file", "upstream_header", "upstream_value_env", "upstream_value_file",
                                "upstream_oauth"})
SETTABLE_FIELDS = EDITOR_FIELDS | {"enabled", "url", "verify_tls"}
_TYPES: dict[str, type | tuple[type, ...]] = {
    "name": str, "url": str, "description": str, "sse_path": str, "streamable_path": str,
    "tags": list, "enabled": bool, "verify_tls": bool,
}


class FieldProblem(ValueError):
    """A body the registry API refuses whatever the caller's scopes (400)."""


def check_body(fields: Mapping[str, Any], *, with_name: bool) -> None:
    """Unknown and configuration-only fields, and JSON types: strict (`"false"` is not false)."""
    allowed = SETTABLE_FIELDS | ({"name"} if with_name else set())
    config_only = sorted(set(fields) & CONFIG_ONLY_FIELDS)
    if config_only:
        raise FieldProblem(f"{', '.join(config_only)}: configuration only, never set through the registry API")
    unknown = sorted(set(fields) - allowed)
    if unknown:
        raise FieldProblem(f"unknown fields: {', '.join(unknown)}")
    for name, value in fields.items():
        if not isinstance(value, _TYPES[name]):
            raise FieldProblem(f"{name}: expected {_type_name(_TYPES[name])}")
        if name == "tags" and not all(isinstance(tag, str) for tag in value):
            raise FieldProblem("tags: expected a list of strings")


def _type_name(kind: type | tuple[type, ...]) -> str:
    return {str: "a string", bool: "true or false", list: "a list"}[kind]  # type: ignore[index]


def field_scopes(server: str, fields: Mapping[str, Any], editor_hosts: Iterable[str],
                 other_origins: Iterable[tuple[str, str]]) -> dict[str, str]:
    """The scope each field of an edit needs (admin satisfies every one)."""
    needed = {}
    for name in fields:
        if name in EDITOR_FIELDS or name == "name":
            needed[name] = server_scope(server, "edit")
        elif name == "enabled":
            needed[name] = server_scope(server, "toggle")
        elif name == "url" and editor_may_use(fields[name], editor_hosts, other_origins):
            needed[name] = server_scope(server, "edit")
        else:
            needed[name] = REGISTRY_ADMIN
    return needed


def decide_edit(scopes: frozenset[str], server: str, fields: Mapping[str, Any], editor_hosts: Iterable[str],
                other_origins: Iterable[tuple[str, str]]) -> Decision:
    if not fields:
        fields = {"description": None}  # an empty edit still needs the edit scope
    needed = field_scopes(server, fields, editor_hosts, other_origins)
    if REGISTRY_ADMIN in scopes:
        return Decision(True, 200, REGISTRY_ADMIN, f"registry edit {server!r} allowed")
    for name, scope in sorted(needed.items()):
        if scope not in scopes:
            return Decision(False, 403, scope, f"registry edit {server!r}: changing {name} needs {scope}")
    held = sorted(set(needed.values()))
    return Decision(True, 200, held[0], f"registry edit {server!r} allowed ({', '.join(sorted(needed))})")


def origin_of(url: str) -> tuple[str, str] | None:
    """(scheme, canonical host:port) of an http(s) URL; None when it has none."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        return None
    return scheme, canonical_host(parts.hostname, port or (443 if scheme == "https" else 80))


def editor_may_use(url: object, editor_hosts: Iterable[str], other_origins: Iterable[tuple[str, str]]) -> bool:
    """True when an editor may point a server at `url`: its host is on the operator's list
    (a bare host stands for the scheme's default port) and no other registered server is
    served from the same origin — that would hand out the other server's tools without its scopes."""
    origin = isinstance(url, str) and origin_of(url)
    if not origin:
        return False
    scheme, host = origin
    default = 443 if scheme == "https" else 80
    bare = host.removesuffix(f":{default}")
    hosts = set(editor_hosts)
    return (host in hosts or (bare != host and bare in hosts)) and origin not in set(other_origins)
