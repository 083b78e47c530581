"""Runs the login app as a supervised child process on a loopback port.

Started when the gateway is running, restarted (with back-off) if it dies, stopped when
mitmproxy stops. Skipped when `login_app_url` names an external login app.
"""

from __future__ import annotations

import asyncio
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


def _free_loopback_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LoginAppSupervisor:
    def __init__(self, runtime: Runtime):
        self.runtime = runtime
        self.process: subprocess.Popen | None = None
        self._task: asyncio.Task | None = None
        self._port: int | None = None
        self.restarts = 0

    def running(self) -> None:
        config = self.runtime.config
        if config is None or not config.auth.enabled or config.login_app_url or self._task is not None:
            return
        self._port = config.login_app_port or _free_loopback_port()
        self.runtime.login_app_url = f"http://127.0.0.1:{self._port}"
        self._start()
        self._task = asyncio.get_running_loop().create_task(self._watch())

    def _start(self) -> None:
        config = self.runtime.config
        assert config is not None and self._port is not None
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "login_app", "--config", str(config.source), "--host", "127.0.0.1",
             "--port", str(self._port)],
            cwd=REPO, env=env,
        )
        log.info("login app started (pid %d) on 127.0.0.1:%d", self.process.pid, self._port)

    async def _watch(self) -> None:
        backoff = 0.5
        while True:
            await asyncio.sleep(CHECK_INTERVAL)
            if self.process is None or self.process.poll() is None:
                continue
            log.error("login app exited with code %s; restarting in %.1fs", self.process.returncode, backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF)
            self.restarts += 1
            self._start()

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
