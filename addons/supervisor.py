"""Runs the login app as a supervised child process on a loopback port.

Started when the gateway is running, restarted (with back-off) if it dies, stopped when
mitmproxy stops. Skipped when `login_app_url` names an external login app.

The hop from proxy to login app carries passwords, so its port must never be free for
another local process to bind, not even while the login app restarts. mitmproxy connects
upstream only over TCP (no Unix sockets), so the supervisor binds the listening socket
itself, once, and hands it to each login app it starts (uvicorn's `--fd`): the port stays
held by the gateway from start to stop. While no login app serves (dead, or restarted and
not yet ready: it reports readiness on a pipe), the supervisor takes waiting connections off
the socket and closes them, so logins fail at once with a 502 rather than wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import subprocess
import sys
from pathlib import Path

from .runtime import Runtime

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parent.parent
CHECK_INTERVAL = 0.5
MAX_BACKOFF = 10.0


def _listening_socket(port: int) -> socket.socket:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        listener.bind(("127.0.0.1", port))
        listener.listen(128)
        listener.set_inheritable(True)
    except BaseException:
        listener.close()
        raise
    return listener


async def _until_ready(ready: int) -> None:
    """Wait until the login app reports it serves, or exits (the pipe's end closes either way)."""
    try:
        await asyncio.to_thread(os.read, ready, 1)
    finally:
        os.close(ready)


class LoginAppSupervisor:
    def __init__(self, runtime: Runtime):
        self.runtime = runtime
        self.process: subprocess.Popen | None = None
        self._task: asyncio.Task | None = None
        self._listener: socket.socket | None = None
        self.restarts = 0

    def running(self) -> None:
        config = self.runtime.config
        if config is None or not config.auth.enabled or config.login_app_url or self._task is not None:
            return
        self._listener = _listening_socket(config.login_app_port or 0)
        port = self._listener.getsockname()[1]
        self.runtime.login_app_url = f"http://127.0.0.1:{port}"
        ready = self._start()  # connections made before it is ready wait in the socket's backlog
        self._task = asyncio.get_running_loop().create_task(self._watch(ready))

    def _start(self) -> int:
        """Start a login app on the held socket; returns the pipe it reports readiness on."""
        config = self.runtime.config
        assert config is not None and self._listener is not None
        fd = self._listener.fileno()
        ready_read, ready_write = os.pipe()
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "login_app", "--config", str(config.source), "--fd", str(fd),
                 "--ready-fd", str(ready_write)],
                cwd=REPO, env=env, pass_fds=(fd, ready_write),
            )
        finally:
            os.close(ready_write)
        log.info("login app started (pid %d) on %s", self.process.pid, self.runtime.login_app_url)
        return ready_read

    async def _watch(self, ready: int) -> None:
        await _until_ready(ready)
        backoff = 0.5
        while True:
            await asyncio.sleep(CHECK_INTERVAL)
            if self.process is None or self.process.poll() is None:
                continue
            log.error("login app exited with code %s; restarting in %.1fs", self.process.returncode, backoff)
            refusing = asyncio.get_running_loop().create_task(self._refuse_while_down())
            try:
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
                self.restarts += 1
                await _until_ready(self._start())
            finally:
                refusing.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await refusing

    async def _refuse_while_down(self) -> None:
        """Close every connection that arrives while no login app serves: the proxy answers 502 at once."""
        assert self._listener is not None
        self._listener.setblocking(False)
        loop = asyncio.get_running_loop()
        while True:
            conn, _ = await loop.sock_accept(self._listener)
            # A plain close: mitmproxy answers 502 at once. (A reset during its connect left the
            # flow waiting until the connect timeout on mitmproxy 12.)
            conn.close()

    def done(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.process = None
        if self._listener is not None:
            self._listener.close()
            self._listener = None
