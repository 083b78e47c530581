"""Writes the access lines (one per request, from the auditor) to `<log_dir>/access.log` too.

Only when `[gateway] log_dir` (MCP_GATEWAY_LOG_DIR) is set — the container sets /app/logs so a
mounted folder collects the access log beside the audit log. The console keeps its lines.
"""

from __future__ import annotations

import logging
from pathlib import Path

from .runtime import Runtime

log = logging.getLogger(__name__)

ACCESS_LOGGER = "mcp_gateway.access"  # the auditor's access lines
FORMAT = "%(asctime)s %(levelname)s %(message)s"


class AccessLogFile:
    def __init__(self, runtime: Runtime):
        self.runtime = runtime
        self._handler: logging.FileHandler | None = None
        self._path: Path | None = None

    def configure(self, updated: set[str]) -> None:
        config = self.runtime.config
        path = config.access_log if config is not None else None
        if path == self._path:
            return
        self.done()
        if path is None:
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            handler = logging.FileHandler(path, encoding="utf-8")
        except OSError as e:
            log.error("cannot write the access log %s: %s", path, e.strerror or e)
            return
        handler.setFormatter(logging.Formatter(FORMAT))
        handler.setLevel(logging.INFO)
        logging.getLogger(ACCESS_LOGGER).addHandler(handler)
        self._handler, self._path = handler, path
        log.info("access log: %s", path)

    def done(self) -> None:
        if self._handler is not None:
            logging.getLogger(ACCESS_LOGGER).removeHandler(self._handler)
            self._handler.close()
        self._handler, self._path = None, None
