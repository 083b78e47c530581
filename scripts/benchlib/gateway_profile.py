"""Reads the profiled launcher's cProfile output (the tools/call load phase only): where its
time goes per request, by part of the program; the gateway's own functions (addons/,
mcp_gateway/) by cumulative time; and the whole process's hottest functions by own time."""

from __future__ import annotations

import pstats
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
GATEWAY_PACKAGES = ("addons", "mcp_gateway")
REQUEST_COUNTER = ("addons/router.py", "requestheaders")  # runs once per request
MIN_CALLS = 10
# Where mitmproxy hands a request to the gateway: the addons' hooks, plus the two entry points
# that are not hooks — error_pages' check of each request head (patched into mitmproxy's
# HTTP/1 reader) and the session store's work on its thread pool.
HOOKS = frozenset({"requestheaders", "request", "responseheaders", "response", "error", "client_connected",
                   "client_disconnected", "server_connect", "server_connected", "server_disconnected"})
OTHER_ENTRIES = frozenset({("addons/error_pages.py", "_refusal"), ("mcp_gateway/sessions/sqlite.py", "_in_thread")})
OTHER_PYTHON = "other Python (stdlib, dataclasses, contextlib, …)"
IDLE = "<method 'poll' of 'select.epoll' objects>"
THREAD_WAITS = ("<method 'acquire' of '_thread.lock' objects>", "<method 'get' of '_queue.SimpleQueue' objects>")
# (bucket, test on the file path); the first that matches wins.
BUCKETS: tuple[tuple[str, str], ...] = (
    ("gateway addons (addons/)", "/addons/"),
    ("gateway core (mcp_gateway/)", "/mcp_gateway/"),
    ("mitmproxy", "/mitmproxy/"),
    ("asyncio", "/asyncio/"),
    ("logging", "/logging/"),
    ("sqlite3 (the session store's threads)", "/sqlite3/"),
    ("threads, queues, executors", "/concurrent/"),
    ("threads, queues, executors", "/threading.py"),
    ("json", "/json/"),
)


def _relative(filename: str) -> str | None:
    try:
        return str(Path(filename).resolve().relative_to(REPO))
    except (ValueError, OSError):
        return None


def _is_gateway_code(filename: str) -> bool:
    relative = _relative(filename)
    return relative is not None and relative.split("/", 1)[0] in GATEWAY_PACKAGES


def _where(filename: str, line: int, function: str) -> str:
    shown = _relative(filename)
    if shown is None:
        parts = Path(filename).parts
        shown = "/".join(parts[parts.index("site-packages") + 1:]) if "site-packages" in parts else Path(filename).name
    return f"{shown}:{line}({function})"


def _bucket(filename: str, function: str) -> str:
    if filename == "~":
        return "C built-ins (socket I/O, str/bytes, sqlite calls, …)"
    relative = _relative(filename)
    probe = "/" + relative if relative is not None else filename
    return next((name for name, marker in BUCKETS if marker in probe), OTHER_PYTHON)


def _requests(stats: dict) -> int:
    for (filename, _, function), (_, calls, *_rest) in stats.items():
        if filename.endswith(REQUEST_COUNTER[0]) and function == REQUEST_COUNTER[1]:
            return calls
    return 0


def _busy(key: tuple[str, int, str]) -> bool:
    return key[2] != IDLE and key[2] not in THREAD_WAITS


def _rows(stats: dict, keep, sort_index: int, limit: int, requests: int) -> list[str]:
    # values: (primitive calls, total calls, own time, cumulative time, callers)
    entries = sorted(((key, value) for key, value in stats.items() if value[1] >= MIN_CALLS and keep(key)),
                     key=lambda item: item[1][sort_index], reverse=True)[:limit]
    lines = [f"{'calls':>9} {'own s':>7} {'cum s':>7} {'own µs/req':>10} {'cum µs/req':>10}  function"]
    for (filename, line, function), (_, calls, own, cumulative, _) in entries:
        lines.append(f"{calls:>9} {own:>7.3f} {cumulative:>7.3f} {own / requests * 1e6:>10.1f} "
                     f"{cumulative / requests * 1e6:>10.1f}  {_where(filename, line, function)}")
    return lines


def _is_entry(key: tuple[str, int, str]) -> bool:
    relative = _relative(key[0])
    if relative is None:
        return False
    return (relative.startswith("addons/") and key[2] in HOOKS) or (relative, key[2]) in OTHER_ENTRIES


def _entries(stats: dict, requests: int) -> list[str]:
    rows = sorted(((value[3], key) for key, value in stats.items() if _is_entry(key)), reverse=True)
    lines = [f"{'cum µs/req':>10}  entry point"]
    lines += [f"{cumulative / requests * 1e6:>10.0f}  {_where(*key)}" for cumulative, key in rows
              if cumulative / requests * 1e6 >= 1]
    busy = sum(value[2] for key, value in stats.items() if _busy(key))
    total = sum(cumulative for cumulative, _ in rows)
    lines.append(f"{total / requests * 1e6:>10.0f}  all of them: {total / busy:.0%} of the process's busy time")
    return lines


def _breakdown(stats: dict, requests: int) -> list[str]:
    own: dict[str, float] = defaultdict(float)
    for key, value in stats.items():
        if _busy(key):
            own[_bucket(key[0], key[2])] += value[2]
    total = sum(own.values())
    lines = [f"{'µs/req':>8} {'share':>6}  part of the program (own time, waiting in epoll and on locks left out)"]
    for name, seconds in sorted(own.items(), key=lambda item: item[1], reverse=True):
        lines.append(f"{seconds / requests * 1e6:>8.0f} {seconds / total:>6.1%}  {name}")
    lines.append(f"{total / requests * 1e6:>8.0f} {1:>6.0%}  total")
    return lines


def profile_summary(path: Path, limit: int = 25) -> str:
    if not path.exists():
        return f"no profile written at {path} (did the launcher exit cleanly?)"
    stats = pstats.Stats(str(path)).stats  # type: ignore[attr-defined]
    requests = _requests(stats)
    if not requests:
        return f"the profile at {path} holds no request"
    out = [f"Profile of launcher-1 during its tools/call cells: {path}",
           f"{requests} requests profiled (calls of {REQUEST_COUNTER[0]} {REQUEST_COUNTER[1]}). cProfile roughly "
           "doubles the cost of Python calls: read shares, not absolute times.", "",
           "Where the time goes, per request:"]
    out += _breakdown(stats, requests)
    out += ["", "The gateway's entry points (its addons' hooks, the request-head check, the session store's "
                "thread), cumulative: their own code plus the mitmproxy and library calls they make:"]
    out += _entries(stats, requests)
    out += ["", f"The gateway's own functions ({', '.join(GATEWAY_PACKAGES)}), by cumulative time "
                "(cumulative includes what they call, mitmproxy's and the store's included):"]
    out += _rows(stats, lambda key: _is_gateway_code(key[0]), 3, limit, requests)
    out += ["", "Whole process by own time, waiting left out:"]
    out += _rows(stats, _busy, 2, limit, requests)
    return "\n".join(out)
