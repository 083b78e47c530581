"""Per-server credentials the gateway adds when forwarding (never the caller's own)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from mcp_gateway.config import ServerConfig

log = logging.getLogger(__name__)


def upstream_credential(server: ServerConfig) -> str | None:
    if server.upstream_value_env:
        value = os.environ.get(server.upstream_value_env)
        if not value:
            log.error("server %s: environment variable %s is empty or unset", server.name, server.upstream_value_env)
        return value or None
    try:
        return Path(server.upstream_value_file).read_text(encoding="utf-8").strip() or None
    except OSError as e:
        log.error("server %s: cannot read upstream credential file: %s", server.name, e.strerror)
        return None
