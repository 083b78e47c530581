"""Per-server credentials the gateway adds when forwarding (never the caller's own).

Where they may come from and what a value may hold: mcp_gateway/credentials.py. A value
that has become unreadable or multi-line since start-up is not sent (the request gets 502).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from mcp_gateway.config import ServerConfig
from mcp_gateway.credentials import CredentialFileCache, CredentialProblem, check_env_name, check_value

log = logging.getLogger(__name__)

_files = CredentialFileCache()


def upstream_credential(server: ServerConfig) -> str | None:
    try:
        if server.upstream_value_env:
            value = os.environ.get(check_env_name(server.upstream_value_env))
            if not value:
                log.error("server %s: environment variable %s is empty or unset", server.name,
                          server.upstream_value_env)
                return None
            return check_value(value) or None
        return _files.read(Path(server.upstream_value_file)) or None
    except CredentialProblem as e:
        log.error("server %s: upstream credential refused: %s", server.name, e)
    except OSError as e:
        log.error("server %s: cannot read upstream credential file: %s", server.name, e.strerror)
    return None
