"""Checks every enabled server on an interval (`[gateway] health_check_interval`) with a real
MCP initialize + tools/list (mcp_gateway.health), off the request path: the checks run as
tasks of their own, each bounded by `health_check_timeout`, so a slow upstream never holds
up the proxy. Results go to the shared store, where the login app's pages read them."""

from __future__ import annotations

import asyncio
import logging

from mcp_gateway.health import HealthBoard, check_server

from .runtime import Runtime
from .upstream_credentials import upstream_credential

log = logging.getLogger(__name__)

def health_board(runtime: Runtime) -> HealthBoard | None:
    return runtime.health


class HealthChecks:
    def __init__(self, runtime: Runtime):
        self.runtime = runtime
        self._task: asyncio.Task | None = None

    def running(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop())

    async def _loop(self) -> None:
        while True:
            config = self.runtime.config
            interval = config.health_check_interval if config else 5.0
            if config is not None and self.runtime.registry is not None and interval > 0:
                try:
                    await self.check_all()
                except Exception:  # a bug here must not stop the checks
                    log.exception("health: a round of checks failed")
            await asyncio.sleep(interval if interval > 0 else 60.0)

    async def check_all(self) -> None:
        config, registry = self.runtime.config, self.runtime.registry
        assert config is not None and registry is not None
        store = self.runtime.store
        board = self.runtime.health
        if board is None or board.store is not store:
            board = self.runtime.health = HealthBoard(store)
        servers = [s for s in registry.all() if s.enabled]

        async def one(server) -> None:
            credential = await asyncio.to_thread(upstream_credential, server) if server.upstream_header else None
            health = await check_server(server, credential, config.health_check_timeout)
            before = board.latest.get(server.name)
            if not health.ok and (before is None or before.error != health.error):  # a change, not every round
                log.warning("health: server %s failing: %s", server.name, health.error)
            elif health.ok and before is not None and not before.ok:
                log.info("health: server %s healthy again", server.name)
            await board.write(health)

        await asyncio.gather(*(one(server) for server in servers))

    def done(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
