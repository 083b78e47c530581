"""Starting and stopping the real processes the end-to-end tests run."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _test_ports() -> range:
    """This test process's share of the ports just below the kernel's ephemeral range.

    Below it, because a port taken from the ephemeral range (bind to port 0) can be given to
    any process's outgoing connection between this pick and the server's own bind; shared out
    by pytest-xdist worker, so two workers never pick the same port."""
    low = _ephemeral_low()
    start = max(1024, low - 12000)
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1)
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")[2:]
    index = int(worker) if worker.isdigit() else 0
    share = (low - start) // max(workers, 1)
    return range(start + index * share, start + (index + 1) * share)


_port_lock = threading.Lock()
_port_cursor: int | None = None


def free_port() -> int:
    """A port nothing listens on, never handed out before in this test process."""
    global _port_cursor
    ports = _test_ports()
    with _port_lock:
        if _port_cursor is None:
            _port_cursor = random.randrange(len(ports))
        for _ in range(len(ports)):
            port = ports[_port_cursor % len(ports)]
            _port_cursor += 1
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    continue
            return port
    raise RuntimeError(f"no free port left in {ports}")


def wait_for_port(port: int, proc: subprocess.Popen | None = None, timeout: float = 30.0, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            output = log.read_text(errors="replace")[-4000:] if log else ""
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}:\n{output}")
        with socket.socket() as s:
            s.settimeout(0.2)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    output = log.read_text(errors="replace")[-4000:] if log else ""
    raise TimeoutError(f"nothing listened on 127.0.0.1:{port} within {timeout}s:\n{output}")


class Process:
    def __init__(self, args: Sequence[str], log: Path, env: dict[str, str] | None = None, cwd: Path = REPO):
        self.args = list(args)
        self.log_path = log
        self._log = open(log, "ab")
        self.proc = subprocess.Popen(
            self.args, stdout=self._log, stderr=subprocess.STDOUT, cwd=cwd,
            env={**os.environ, **(env or {})}, start_new_session=True,
        )

    @property
    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self._log.close()

    def wait_exit(self, timeout: float = 30.0) -> int:
        try:
            return self.proc.wait(timeout)
        finally:
            self._log.close()


@contextmanager
def running(args: Sequence[str], log: Path, port: int | None = None, env: dict[str, str] | None = None,
            timeout: float = 30.0) -> Iterator[Process]:
    process = Process(args, log, env)
    try:
        if port is not None:
            wait_for_port(port, process.proc, timeout, log)
        yield process
    finally:
        process.stop()
