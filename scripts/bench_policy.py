#!/usr/bin/env python3
"""Decision time per request: 1,000 servers, 1k and 10k explicit group mappings plus the
conventional rules, a user in 50 groups. Prints µs p50/p99 for scopes_for (cold: fresh
caches; cached) and decide_mcp. Run: .venv/bin/python scripts/bench_policy.py"""

from __future__ import annotations

import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mcp_gateway.authz import decide_mcp  # noqa: E402
from mcp_gateway.jsonrpc import parse_mcp_body  # noqa: E402
from mcp_gateway.policy import PolicySet  # noqa: E402
from mcp_gateway.policy_loader import read_policy_dir  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
SERVERS = frozenset(f"srv-{i}" for i in range(1000))  # hyphenated on purpose
ROUNDS = 300


def write_policy(folder: Path, mappings: int) -> None:
    shutil.copy(REPO / "policies" / "default.toml", folder / "default.toml")
    lines = ["[groups]"]
    for i in range(mappings):
        server = f"srv-{i % 1000}"
        lines.append(f'"team-{i}" = ["mcp:server:{server}:read", "mcp:server:{server}:tool:t{i}:execute"]')
    (folder / "teams.toml").write_text("\n".join(lines) + "\n")


def user_groups(rng: random.Random, mappings: int) -> list[str]:
    """50 groups: 30 explicit mappings, 15 conventional names, 5 unrelated IdP groups."""
    groups = [f"team-{rng.randrange(mappings)}" for _ in range(30)]
    groups += [f"mcp-server-srv-{rng.randrange(1000)}" for _ in range(5)]
    groups += [f"mcp-server-srv-{rng.randrange(1000)}-admin" for _ in range(5)]
    groups += [f"mcp-server-srv-{rng.randrange(1000)}-tool-echo" for _ in range(5)]
    groups += [f"Domain Users {i}" for i in range(5)]
    return groups


def percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"p50 {statistics.median(ordered) * 1e6:8.1f} µs   p99 {p99 * 1e6:8.1f} µs"


def bench(mappings: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        write_policy(Path(folder), mappings)
        loaded = read_policy_dir(folder)
    rng = random.Random(7)
    body = b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{}}}'
    cold, cached, decide = [], [], []
    for _ in range(ROUNDS):
        policy = PolicySet(loaded)  # fresh caches: the first call is a cold one
        groups = user_groups(rng, mappings)
        started = time.perf_counter()
        grant = policy.scopes_for(groups, SERVERS)
        cold.append(time.perf_counter() - started)
        started = time.perf_counter()
        grant = policy.scopes_for(groups, SERVERS)
        cached.append(time.perf_counter() - started)
        messages = parse_mcp_body(body, 1 << 20)
        started = time.perf_counter()
        decide_mcp(grant.scopes, f"srv-{rng.randrange(1000)}", messages)
        decide.append(time.perf_counter() - started)
    print(f"{mappings:>6} mappings, {len(SERVERS)} servers, 50 groups per user, {ROUNDS} rounds")
    print(f"  scopes_for cold    {percentiles(cold)}")
    print(f"  scopes_for cached  {percentiles(cached)}")
    print(f"  decide_mcp         {percentiles(decide)}")


if __name__ == "__main__":
    for count in (1_000, 10_000):
        bench(count)
