"""Watches the folder of server definition files (`[gateway] servers_dir`) while the gateway runs.

Every second the folder is re-scanned in a worker thread, so a slow or large folder never
stalls the proxy's event loop; the registry picks up the new snapshot on its next read.
A new file adds a server, an edited file applies, a deleted file removes it
(docs/registry-files.md).
"""

from __future__ import annotations

import asyncio
import logging

from .runtime import Runtime

log = logging.getLogger(__name__)

POLL_INTERVAL = 1.0


class ServerFilesWatch:
    def __init__(self, runtime: Runtime, interval: float = POLL_INTERVAL):
        self.runtime = runtime
        self.interval = interval
        self._task: asyncio.Task | None = None

    def running(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._poll())

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            files = self.runtime.server_files
            if files is None:
                continue
            try:
                await asyncio.to_thread(files.scan)
            except Exception:  # a bug here must not stop watching; the last snapshot stays in force
                log.exception("scanning servers_dir %s failed", files.folder)

    def done(self) -> None:
        # Sync on purpose, like Settings.done: mitmproxy calls it synchronously on a hot reload.
        if self._task is not None:
            self._task.cancel()
            self._task = None
