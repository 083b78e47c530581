"""`policy diff OLD NEW`: what an edit of the policy folder changes for people — per group,
the scopes added and removed, and for the known servers and tools, which calls become
allowed or refused.

OLD and NEW are folders, or `REV:PATH` (a git revision and the policy folder's path from
the repository's root, as `git show` takes them: `HEAD~1:policies`, `main:policies`).
Group names compared: every literal name of either policy, and every pattern rule of
either policy rendered for each known server (and, for {tool}, each of its known tools).
"""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from .policy import PolicySet
from .policy_actions import decide_action, describe

Registry = Mapping[str, Sequence[str]]  # server → its tools
SERVER_ACTIONS = ("connect", "resources/read", "read", "toggle", "edit", "delete")


class DiffProblem(Exception):
    pass


@contextmanager
def policy_folder(spec: str) -> Iterator[Path]:
    """A folder as it is, or `REV:PATH` written out of git into a temporary folder (its
    *.toml files and those of its tests/ folder)."""
    if Path(spec).is_dir():
        yield Path(spec)
        return
    if ":" not in spec:
        raise DiffProblem(f"{spec}: not a folder, nor REV:PATH (e.g. HEAD~1:policies)")
    revision, path = spec.split(":", 1)
    path = path.strip("/") or "."
    with tempfile.TemporaryDirectory(prefix="policy-diff-") as temporary:
        folder = Path(temporary)
        for sub in ("", "tests"):
            tree = f"{path}/{sub}".rstrip("/") if sub else path
            names = _git("ls-tree", "--name-only", "-z", f"{revision}:{tree}", missing_ok=bool(sub))
            for name in filter(None, names.decode("utf-8", "replace").split("\0")):
                if name.endswith(".toml"):
                    (folder / sub).mkdir(exist_ok=True)
                    (folder / sub / name).write_bytes(_git("show", f"{revision}:{tree}/{name}"))
        yield folder


def _git(*args: str, missing_ok: bool = False) -> bytes:
    try:
        done = subprocess.run(["git", *args], capture_output=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise DiffProblem(f"git {' '.join(args)}: {error}") from None
    if done.returncode != 0:
        if missing_ok:
            return b""
        message = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise DiffProblem(f"git {' '.join(args)}: {message[-1] if message else 'failed'}")
    return done.stdout


@dataclass(frozen=True)
class GroupChange:
    group: str
    added: frozenset[str]
    removed: frozenset[str]
    allowed: tuple[str, ...]  # calls that become allowed
    refused: tuple[str, ...]  # calls that become refused


def group_names(policies: Sequence[PolicySet], registry: Registry) -> list[str]:
    names: set[str] = set()
    for policy in policies:
        for entry in policy.entries:
            pattern = entry.pattern
            if not pattern.placeholders:
                names.add(pattern.text)
                continue
            for server, tools in registry.items():
                if "tool" in pattern.placeholders:
                    names.update(pattern.render({"server": server, "tool": tool}) for tool in tools)
                elif "server" in pattern.placeholders:
                    names.add(pattern.render({"server": server}))
    return sorted(names)


def diff(old: PolicySet, new: PolicySet, registry: Registry) -> list[GroupChange]:
    servers = frozenset(registry)
    changes = []
    for group in group_names((old, new), registry):
        before, after = old.scopes_for([group], servers).scopes, new.scopes_for([group], servers).scopes
        if before == after:
            continue
        allowed, refused = [], []
        for action, server, tool in _calls(registry):
            was = decide_action(before, server, action, tool).allowed
            now = decide_action(after, server, action, tool).allowed
            if was != now:
                (allowed if now else refused).append(describe(action, server, tool))
        changes.append(GroupChange(group, after - before, before - after, tuple(allowed), tuple(refused)))
    return changes


def _calls(registry: Registry) -> Iterator[tuple[str, str | None, str | None]]:
    yield "register", None, None
    for server in sorted(registry):
        for action in SERVER_ACTIONS:
            yield action, server, None
        for tool in sorted(registry[server]):
            yield "call", server, tool


def print_diff(changes: list[GroupChange], old_name: str, new_name: str, registry: Registry, out: TextIO) -> int:
    """0 when nothing changes, 1 otherwise (like diff)."""
    print(f"--- {old_name}", file=out)
    print(f"+++ {new_name}", file=out)
    for change in changes:
        print(f"group {change.group}", file=out)
        for scope in sorted(change.added):
            print(f"  + {scope}", file=out)
        for scope in sorted(change.removed):
            print(f"  - {scope}", file=out)
        for call in change.allowed:
            print(f"  now allowed: {call}", file=out)
        for call in change.refused:
            print(f"  now refused: {call}", file=out)
    allowed = sum(len(change.allowed) for change in changes)
    refused = sum(len(change.refused) for change in changes)
    known = f"{len(registry)} known server(s), {sum(len(tools) for tools in registry.values())} tool(s)"
    print(f"{len(changes)} group(s) changed; {allowed} call(s) become allowed, {refused} refused ({known})",
          file=out)
    return 1 if changes else 0
