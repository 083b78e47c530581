"""A real, throw-away `redis-server` on a free loopback port, for tests.

    from tests.support.redis_server import RedisServer, redis_server  # noqa: F401  (the pytest fixture)

    def test_x(redis_server):
        client = redis.Redis.from_url(redis_server.url)

    with RedisServer(tmp_path / "redis") as server:   # where a fixture does not fit
        ...

No persistence (no RDB, no AOF), files kept in a temporary folder, stopped afterwards. A
missing `redis-server` binary fails the test with a message saying how to install it:
the Redis store is part of the contract, so it must not be skipped silently.
"""

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .processes import free_port

_START_TIMEOUT = 10.0
_INSTALL_HINT = "redis-server is not installed (Debian/Ubuntu: apt-get install -y redis-server)"


def _answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """One redis-server process; `start()` and `stop()` may be called more than once.

    As a context manager it is started on entry and stopped on exit.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail(_INSTALL_HINT, pytrace=False)
        self.directory.mkdir(parents=True, exist_ok=True)
        for _ in range(3):  # the free port can be taken between picking and binding it
            self.port = free_port()
            self.process = subprocess.Popen(
                [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                 "--dir", str(self.directory), "--logfile", str(self.directory / "redis.log"), "--daemonize", "no"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
            if self._wait_ready():
                return
            self.stop()
        log_file = self.directory / "redis.log"
        log_tail = log_file.read_text(errors="replace")[-2000:] if log_file.exists() else "(no log)"
        raise RuntimeError(f"redis-server did not start; its log ends with:\n{log_tail}")

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + _START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                return False
            if _answers_ping(self.port):
                return True
            time.sleep(0.02)
        return False

    def __enter__(self) -> "RedisServer":
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self.process = None


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A fresh redis-server for one test."""
    with RedisServer(tmp_path / "redis") as server:
        yield server
