"""The policy engine: which scopes a set of IdP groups gets.

Resolution of one group name, against the servers the registry knows:

1. Every [groups] mapping and every [[rules]] rule has a specificity: the number of
   literal characters in its group name or pattern. A [groups] mapping (or a rule without
   placeholders) is all literal, so it is always the most specific match of its name.
2. Entries are tried from the most specific down. The first level at which the name
   matches with {server} bound to a known server (and {tool} to a valid tool name) decides;
   less specific entries are not consulted.
3. At that level, all matches must agree on one binding (the same server and tool). They
   then all apply, their scopes united. If they disagree, the name is ambiguous and grants
   nothing.
4. A name that fits a pattern only with an unknown server grants nothing.

Ambiguous and unknown names are logged as warnings, once per group name per policy version.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict, defaultdict
from collections.abc import Collection, Hashable, Iterable
from dataclasses import dataclass, field
from itertools import count
from pathlib import Path
from typing import Any, NamedTuple

from .policy_loader import LoadedPolicy, PolicyEntry, PolicyError, PolicyProblem, read_policy_dir
from .policy_patterns import Binding
from .scopes import is_scope

__all__ = ["Grant", "GrantSource", "GroupResolution", "PolicyError", "PolicyProblem", "PolicySet", "load_policy"]

log = logging.getLogger(__name__)

_GRANT_CACHE_SIZE = 4096
_RESOLUTION_CACHE_SIZE = 65536
_MAX_WARNED_NAMES = 10_000
_versions = count(1)


class GrantSource(NamedTuple):
    """The mapping or rule that granted a scope, and the caller's group that matched it."""

    file: str
    line: int | None
    entry: str  # '[groups] "data-science"' or "[[rules]] #3 group = 'mcp-server-{server}'"
    group: str
    binding: Binding = ()

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        bound = ", ".join(f"{name}={value}" for name, value in self.binding)
        return f"{where}: {self.entry} via group {self.group!r}" + (f" ({bound})" if bound else "")


class GroupResolution(NamedTuple):
    """What one group name grants: (scope, source) pairs, or why it grants nothing."""

    grants: tuple[tuple[str, GrantSource], ...] = ()
    scopes: frozenset[str] = frozenset()
    problem: str | None = None  # set when the name fits a pattern yet grants nothing


@dataclass(frozen=True)
class Grant:
    """The scopes a set of groups gets; `sources` and `unresolved` explain it."""

    scopes: frozenset[str]
    resolutions: tuple[tuple[str, GroupResolution], ...] = field(default=(), compare=False, repr=False)

    @property
    def sources(self) -> dict[str, tuple[GrantSource, ...]]:
        """scope → every mapping or rule that granted it."""
        found: dict[str, list[GrantSource]] = defaultdict(list)
        for _, resolution in self.resolutions:
            for scope, source in resolution.grants:
                found[scope].append(source)
        return {scope: tuple(sources) for scope, sources in found.items()}

    @property
    def unresolved(self) -> dict[str, str]:
        """group → why it grants nothing (ambiguous, or no known server)."""
        return {group: resolution.problem for group, resolution in self.resolutions if resolution.problem}


_NOTHING = GroupResolution()


class _BoundedCache:
    """A thread-safe least-recently-used cache."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._items: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> Any:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: Hashable, value: Any) -> None:
        with self._lock:
            self._items[key] = value
            if len(self._items) > self._size:
                self._items.popitem(last=False)


class PolicySet:
    """An immutable, loaded policy. Build with load_policy() or PolicySet(LoadedPolicy)."""

    def __init__(self, loaded: LoadedPolicy) -> None:
        self.version = next(_versions)
        self.files = loaded.files
        self.loaded = loaded
        # The shadow view: the policy as it would be with the shadow files and rules
        # enforcing (docs/policies.md, "Shadow mode"). It decides nothing, it is only reported.
        view = loaded.shadow_view()
        self.shadow: PolicySet | None = PolicySet(view) if view is not None else None
        loaded = loaded.enforcing()
        self.entries = loaded.entries
        exact: dict[str, list[PolicyEntry]] = defaultdict(list)
        levels: dict[int, list[PolicyEntry]] = defaultdict(list)
        for entry in loaded.entries:
            if entry.pattern.placeholders:
                levels[entry.pattern.specificity].append(entry)
            else:
                exact[entry.pattern.text].append(entry)
        # All-literal names resolve the same whatever the registry holds: render them once.
        self._exact = {name: _granting(name, [(entry, ()) for entry in found]) for name, found in exact.items()}
        self._levels = [levels[specificity] for specificity in sorted(levels, reverse=True)]
        self._direct_matchers = [template.matcher() for template in loaded.direct_scopes]
        self._grants = _BoundedCache(_GRANT_CACHE_SIZE)
        self._resolutions = _BoundedCache(_RESOLUTION_CACHE_SIZE)
        self._warned: set[str] = set()
        self._warned_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<PolicySet v{self.version}: {len(self.files)} files, {len(self.entries)} entries>"

    # --- public ------------------------------------------------------------------------------

    def scopes_for(self, groups: Iterable[str], known_servers: Collection[str]) -> Grant:
        """The scopes `groups` grant. Pass the registry's names as a frozenset that is
        replaced (not mutated) when the registry changes: it is part of the cache key."""
        servers = known_servers if isinstance(known_servers, frozenset) else frozenset(known_servers)
        key = (tuple(sorted(set(groups))), servers)
        grant = self._grants.get(key)
        if grant is None:
            grant = self._grant(key[0], servers)
            self._grants.put(key, grant)
        return grant

    def resolve_group(self, group: str, known_servers: Collection[str]) -> GroupResolution:
        exact = self._exact.get(group)
        if exact is not None:
            return exact
        servers = known_servers if isinstance(known_servers, frozenset) else frozenset(known_servers)
        key = (group, servers)
        resolution = self._resolutions.get(key)
        if resolution is None:
            resolution = self._resolve_pattern(group, servers)
            self._resolutions.put(key, resolution)
        return resolution

    def direct_scopes(self, token_scopes: Iterable[str]) -> frozenset[str]:
        """The scopes of a bearer token's scope/scp claim that [direct_scopes] allow."""
        return frozenset(
            scope
            for scope in token_scopes
            if is_scope(scope) and any(matcher.fullmatch(scope) for matcher in self._direct_matchers)
        )

    def lint(self, known_servers: Collection[str]) -> list[str]:
        """Warnings about the conventional group names of known servers that would not
        resolve to their own server (a hyphenated name shadowed or made ambiguous by another
        server's name). Only rules whose sole placeholder is {server} are checked."""
        servers = frozenset(known_servers)
        warnings = []
        for entry in (entry for level in self._levels for entry in level):
            if entry.pattern.placeholders != ("server",):
                continue
            for server in sorted(servers):
                group = entry.pattern.render({"server": server})
                resolution = self.resolve_group(group, servers)
                bindings = {source.binding for _, source in resolution.grants}
                if bindings == {()}:
                    continue  # an explicit mapping of the name: deliberate
                if resolution.problem:
                    warnings.append(f"{entry.where}: group {group!r} for server {server!r}: {resolution.problem}")
                elif bindings and bindings != {(("server", server),)}:
                    other = ", ".join(f"{k}={v}" for binding in sorted(bindings) for k, v in binding)
                    warnings.append(
                        f"{entry.where}: group {group!r} for server {server!r} resolves to {other} "
                        "through a more specific entry"
                    )
        return warnings

    # --- resolution ----------------------------------------------------------------------

    def _grant(self, groups: tuple[str, ...], servers: frozenset[str]) -> Grant:
        resolutions = tuple((group, self.resolve_group(group, servers)) for group in groups)
        for group, resolution in resolutions:
            if resolution.problem:
                self._warn_once(group, f"grants no scope: {resolution.problem}")
        return Grant(frozenset().union(*(resolution.scopes for _, resolution in resolutions)), resolutions)

    def _resolve_pattern(self, group: str, servers: frozenset[str]) -> GroupResolution:
        fits_unknown_server = False
        for level in self._levels:
            matches = []
            for entry in level:
                for binding in entry.pattern.bindings(group):
                    if all(value in servers for name, value in binding if name == "server"):
                        matches.append((entry, binding))
                    else:
                        fits_unknown_server = True
            if not matches:
                continue
            distinct = sorted({binding for _, binding in matches})
            if len(distinct) > 1:
                readings = "; ".join(", ".join(f"{k}={v}" for k, v in binding) for binding in distinct)
                return GroupResolution(problem=f"ambiguous group name: equally specific readings {readings}")
            return _granting(group, matches)
        if fits_unknown_server:
            return GroupResolution(problem="fits a pattern rule, but names no known server")
        return _NOTHING

    def _warn_once(self, group: str, problem: str) -> None:
        with self._warned_lock:
            if group in self._warned or len(self._warned) >= _MAX_WARNED_NAMES:
                return
            self._warned.add(group)
        log.warning("policy: group %r %s", group, problem)


def _granting(group: str, matches: list[tuple[PolicyEntry, Binding]]) -> GroupResolution:
    grants: list[tuple[str, GrantSource]] = []
    for entry, binding in matches:
        source = GrantSource(entry.file, entry.line, entry.label, group, binding)
        values = dict(binding)
        grants += ((template.render(values), source) for template in entry.scopes)
    return GroupResolution(tuple(grants), frozenset(scope for scope, _ in grants))


def load_policy(policy_dir: Path | str) -> PolicySet:
    """Read and validate the policy folder; raises PolicyError listing every problem."""
    policy = PolicySet(read_policy_dir(policy_dir))
    if not policy.files:
        log.warning("policy: no *.toml files in %s: no group grants any scope", policy_dir)
    return policy
