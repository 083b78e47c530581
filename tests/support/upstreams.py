"""Upstream MCP servers for the tests: the bundled demo server, built with the `mcp` SDK,
run as real processes on loopback with the SDK's default transport security."""

from __future__ import annotations

import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from .processes import free_port, running


@dataclass
class Upstream:
    name: str
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@contextmanager
def mcp_upstream(tmp: Path, name: str = "currenttime", json_response: bool = False,
                 module: str = "demo.currenttime") -> Iterator[Upstream]:
    port = free_port()
    args = [sys.executable, "-m", module, "--port", str(port), "--name", name]
    if json_response:
        args.append("--json-response")
    with running(args, tmp / f"upstream-{name}-{port}.log", port=port):
        yield Upstream(name, port)
