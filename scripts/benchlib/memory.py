"""Memory per idle SSE stream: open many SSE streams through a proxy, each with the logged-in
session's cookie, wait for each one's `endpoint` event, and compare the proxy's resident memory
(VmRSS from /proc) before and while they are open. The login app is counted apart: it serves
no stream."""

from __future__ import annotations

import asyncio
import logging
import resource
from dataclasses import dataclass
from pathlib import Path

from .cpu import descendants
from .light_client import ClientConnection
from .stack import Target

log = logging.getLogger(__name__)

OPENING_AT_ONCE = 32     # streams being opened concurrently (a burst of 1,000 would be a different test)
OPEN_TIMEOUT = 30.0
SETTLE_SECONDS = 1.0     # after the last stream opened, before reading RSS
FDS_PER_STREAM = 2       # the client's connection and the one to the upstream
FD_HEADROOM = 256
SSE_ACCEPT = {"accept": "text/event-stream", "cache-control": "no-store"}


@dataclass
class IdleMemory:
    target: str
    wanted: int
    opened: int = 0
    first_error: str | None = None
    proxy_before_kib: int = 0
    proxy_after_kib: int = 0
    login_before_kib: int = 0
    login_after_kib: int = 0
    proxy_processes: int = 0
    login_processes: int = 0
    fd_limit: int | None = None   # the lowest soft RLIMIT_NOFILE among the proxy's processes

    @property
    def kib_per_stream(self) -> float:
        return (self.proxy_after_kib - self.proxy_before_kib) / self.opened if self.opened else float("nan")


def raise_open_files_limit(wanted: int) -> int:
    """Raise this process's soft fd limit (the proxies started later inherit it); the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as e:
            log.warning("could not raise the open-files limit from %d to %d: %s", soft, target, e)
    return soft


def fds_needed(streams: int) -> int:
    return streams * FDS_PER_STREAM + FD_HEADROOM


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""


def rss_kib(pid: int) -> int:
    for line in _read(Path(f"/proc/{pid}/status")).splitlines():
        if line.startswith(b"VmRSS:"):
            return int(line.split()[1])
    return 0


def _is_login_app(pid: int) -> bool:
    return b"login_app" in _read(Path(f"/proc/{pid}/cmdline"))


def open_files_limit(pid: int) -> int | None:
    for line in _read(Path(f"/proc/{pid}/limits")).splitlines():
        if line.startswith(b"Max open files"):
            soft = line.split()[3]
            return None if soft == b"unlimited" else int(soft)
    return None


def _processes(pid: int) -> tuple[set[int], set[int]]:
    """(the proxy's processes, the login app's) under `pid`."""
    tree = descendants(pid)
    login = {member for member in tree if _is_login_app(member)}
    return tree - login, login


def _sum_rss(pids: set[int]) -> int:
    return sum(rss_kib(pid) for pid in pids)


async def _open_stream(target: Target, gate: asyncio.Semaphore) -> ClientConnection:
    connection = ClientConnection(target.idle_sse_url)
    async with gate:
        try:
            async with asyncio.timeout(OPEN_TIMEOUT):
                head = await connection.send_head("GET", connection.path, {**SSE_ACCEPT, **target.headers})
                if head.status_code != 200:
                    raise ConnectionError(f"HTTP {head.status_code}")
                received = b""
                while b"\n\n" not in received.replace(b"\r\n", b"\n"):
                    chunk = await connection.read_chunk()
                    if not chunk:
                        raise ConnectionError("the stream ended before its endpoint event")
                    received += chunk
        except BaseException:
            await connection.close()
            raise
    return connection


async def measure_idle_memory(target: Target, streams: int) -> IdleMemory:
    assert target.proxy_pid is not None
    result = IdleMemory(target.name, streams)
    proxy, login = _processes(target.proxy_pid)
    limits = [limit for limit in map(open_files_limit, proxy) if limit is not None]
    result.fd_limit = min(limits) if limits else None
    result.proxy_processes, result.login_processes = len(proxy), len(login)
    result.proxy_before_kib, result.login_before_kib = _sum_rss(proxy), _sum_rss(login)
    gate = asyncio.Semaphore(OPENING_AT_ONCE)
    outcomes = await asyncio.gather(*(_open_stream(target, gate) for _ in range(streams)), return_exceptions=True)
    opened = [o for o in outcomes if isinstance(o, ClientConnection)]
    errors = [o for o in outcomes if not isinstance(o, ClientConnection)]
    try:
        result.opened = len(opened)
        if errors:
            result.first_error = f"{type(errors[0]).__name__}: {errors[0]}"
        await asyncio.sleep(SETTLE_SECONDS)
        result.proxy_after_kib, result.login_after_kib = _sum_rss(proxy), _sum_rss(login)
    finally:
        await asyncio.gather(*(c.close() for c in opened))
    return result
