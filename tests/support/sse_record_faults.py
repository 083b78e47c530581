"""A mitmproxy script loaded beside addons/gateway.py in fault tests: while the file named by
MCP_TEST_SSE_RECORD_FAULT exists, the session store fails to write SSE stream records (keys
`sse:…`) — the store going away between a stream's opening and its endpoint event."""

import os
from pathlib import Path

from mcp_gateway.sessions import StoreUnavailable
from mcp_gateway.sessions.sqlite import SqliteSessionStore

_original = SqliteSessionStore.put_once


async def _faulty_put_once(self, key, value, ttl):
    flag = os.environ.get("MCP_TEST_SSE_RECORD_FAULT")
    if key.startswith("sse:") and flag and Path(flag).exists():
        raise StoreUnavailable("fault injected by tests/support/sse_record_faults.py")
    return await _original(self, key, value, ttl)


SqliteSessionStore.put_once = _faulty_put_once
addons = []
