"""Reads the gateway's cProfile output: the gateway's own functions (addons/, mcp_gateway/)
by cumulative time, and the whole process's hottest functions by own time."""

from __future__ import annotations

import pstats
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
GATEWAY_PACKAGES = ("addons", "mcp_gateway")
# Start-up and shut-down code (imports, configure, done) runs a handful of times; per-request
# code runs hundreds of times in any run.
MIN_CALLS = 10
IDLE = "<method 'poll' of 'select.epoll' objects>"


def _is_gateway_code(filename: str) -> bool:
    path = Path(filename)
    try:
        relative = path.resolve().relative_to(REPO)
    except (ValueError, OSError):
        return False
    return bool(relative.parts) and relative.parts[0] in GATEWAY_PACKAGES


def _where(filename: str, line: int, function: str) -> str:
    path = Path(filename)
    try:
        shown = str(path.resolve().relative_to(REPO))
    except (ValueError, OSError):
        parts = path.parts
        shown = "/".join(parts[parts.index("site-packages") + 1:]) if "site-packages" in parts else path.name
    return f"{shown}:{line}({function})"


def _rows(stats: dict, keep, sort_index: int, limit: int) -> list[str]:
    # keys: (file, line, function); values: (primitive calls, total calls, own time, cumulative time, callers)
    entries = sorted(((key, value) for key, value in stats.items() if value[1] >= MIN_CALLS and keep(key)),
                     key=lambda item: item[1][sort_index], reverse=True)[:limit]
    lines = [f"{'calls':>9} {'own s':>8} {'cum s':>8} {'cum µs/call':>12}  function"]
    for (filename, line, function), (_, calls, own, cumulative, _) in entries:
        lines.append(f"{calls:>9} {own:>8.3f} {cumulative:>8.3f} {cumulative / calls * 1e6 if calls else 0:>12.1f}  "
                     f"{_where(filename, line, function)}")
    return lines


def profile_summary(path: Path, limit: int = 25) -> str:
    if not path.exists():
        return f"no profile written at {path} (did the gateway exit cleanly?)"
    stats = pstats.Stats(str(path)).stats  # type: ignore[attr-defined]
    total = max(value[3] for value in stats.values())
    out = [f"Gateway profile: {path}",
           "cProfile (on Python 3.12 it sees every thread, the session store's included); cumulative times of "
           "functions that wait (queue gets, epoll) are mostly waiting, not CPU.",
           f"largest cumulative time: {total:.2f} s", "",
           f"The gateway's own functions ({', '.join(GATEWAY_PACKAGES)}) called at least {MIN_CALLS} times, "
           "by cumulative time:"]
    out += _rows(stats, lambda key: _is_gateway_code(key[0]), 3, limit)
    out += ["", "Whole process by own time, idle waiting in epoll left out (where the CPU goes):"]
    out += _rows(stats, lambda key: key[2] != IDLE, 2, limit)
    return "\n".join(out)
