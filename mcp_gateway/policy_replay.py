"""`policy replay`: the decisions of an audit file (the gateway's JSON lines) re-evaluated
against a policy folder; those whose outcome would change are printed.

A record is replayed when it is a policy decision about a person: it names a server, the
scope that decided, and the person's `groups` (recorded since shadow mode; older records
have none and are skipped, with a count). Direct scopes of bearer tokens and the granted
scope of OAuth facade tokens are not recorded, so they are not replayed: the replay asks
what the person's groups allow.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from .authz import Decision, decide_mcp, decide_mcp_connect
from .jsonrpc import RpcMessage
from .policy import PolicySet
from .scopes import is_server_name


class UnreadableAudit(Exception):
    pass


@dataclass(frozen=True)
class Replayed:
    line: int
    record: dict[str, Any]
    decision: Decision

    @property
    def changed(self) -> bool:
        return self.decision.allowed != (self.record.get("decision") == "allowed")


def read_audit(path: Path) -> list[tuple[int, Any]]:
    """(line number, parsed record or None for a line that is not JSON) for every non-empty line."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as error:
        raise UnreadableAudit(f"{path}: cannot read: {error.strerror or error}") from None
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            found.append((number, json.loads(line)))
        except ValueError:
            found.append((number, None))
    return found


def skip_reason(record: Any) -> str | None:
    """Why a record cannot be replayed, or None."""
    if not isinstance(record, dict):
        return "not a JSON object"
    if not is_server_name(str(record.get("server"))) or record.get("scope") in (None, "-"):
        return "not a policy decision on a server"
    if record.get("decision") == "refused" and record.get("status") != 403:
        return "not a policy decision on a server"
    if not isinstance(record.get("groups"), list) or not all(isinstance(g, str) for g in record["groups"]):
        return "without groups (recorded by an older gateway)"
    return None


def replay_record(record: dict[str, Any], policy: PolicySet, servers: Collection[str]) -> Decision:
    scopes = policy.scopes_for(record["groups"], servers).scopes
    server = record["server"]
    method = str(record.get("method") or "-")
    if method == "-":
        return decide_mcp_connect(scopes, server)
    tools = [tool for tool in str(record.get("tool") or "-").split(",") if tool != "-"]
    messages = []
    for name in method.split(","):
        if name == "tools/call":
            messages += [RpcMessage("request", 1, "tools/call", tool, {}) for tool in tools or [""]]
        else:
            messages.append(RpcMessage("request", 1, name, None, {}))
    return decide_mcp(scopes, server, messages)


def replay(path: Path, policy: PolicySet, known_servers: Collection[str], out: TextIO) -> int:
    """Print the records whose outcome would change and a summary; 0 none, 1 some."""
    entries = read_audit(path)
    skipped: Counter[str] = Counter()
    replayable = []
    for number, record in entries:
        reason = skip_reason(record)
        if reason:
            skipped[reason] += 1
        else:
            replayable.append((number, record))
    servers = frozenset(known_servers) | {record["server"] for _, record in replayable}
    changed = 0
    for number, record in replayable:
        replayed = Replayed(number, record, replay_record(record, policy, servers))
        if replayed.changed:
            changed += 1
            print(_describe(path, replayed), file=out)
    summary = f"{len(replayable)} decision(s) replayed, {changed} would change"
    if skipped:
        summary += "; skipped: " + ", ".join(f"{count} {reason}" for reason, count in sorted(skipped.items()))
    print(summary, file=out)
    return 1 if changed else 0


def _describe(path: Path, replayed: Replayed) -> str:
    record, decision = replayed.record, replayed.decision
    what = "connect" if record.get("method") in (None, "-") else record["method"]
    if record.get("tool") not in (None, "-"):
        what += f" {record['tool']}"
    now = "allowed" if decision.allowed else "refused"
    why = f"by scope {decision.scope}" if decision.allowed else f"needs {decision.scope}"
    return (f"{path}:{replayed.line}: {_text(record.get('user'))} {json.dumps(record['groups'])} "
            f"{_text(what)} on {record['server']}: {record.get('decision')} → {now} ({why})")


def _text(value: Any) -> str:
    return str(value).encode("unicode_escape").decode("ascii")
