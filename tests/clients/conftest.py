"""Third-party MCP clients (npm: tests/clients/package.json; PyPI: fastmcp) against the real gateway.

The gateway and its upstreams are the end-to-end suite's (tests/e2e/conftest.py): local accounts,
the shipped policy. The people these tests sign in as:

- tina may call only `current_time_by_timezone` on currenttime (group
  `mcp-server-currenttime-tool-current_time_by_timezone`): `countdown` is refused by her groups;
- bob has no access to the currenttime server at all (`mcp-user`: registry read only).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from mcp_gateway.identity import SESSION_COOKIE
from tests.e2e.conftest import (ACCOUNTS, auth_gateway, recorder, upstream_json_answers,  # noqa: F401 (fixtures)
                                upstream_sse_answers)
from tests.support.login import login_local
from tests.support.processes import REPO, VENV_BIN

CLIENTS = REPO / "tests" / "clients"
NODE_BIN = CLIENTS / "node_modules" / ".bin"
SERVER = "currenttime"
ALLOWED = {"name": "current_time_by_timezone", "arguments": {"timezone": "UTC"}}
REFUSED = {"name": "countdown", "arguments": {"steps": 1, "interval": 0.01}}
# What a refusal must name: the scope that would allow the call.
REFUSED_SCOPES = ("mcp:server:currenttime:execute", "mcp:server:currenttime:tool:countdown:execute")
# Bounds: a client that loops or hangs on a refusal fails the test instead.
CLIENT_TIMEOUT = 90


def password(username: str) -> str:
    return ACCOUNTS[username][0]


def cookie_for(gateway, username: str) -> str:
    return f"{SESSION_COOKIE}={login_local(gateway.url, username, password(username))}"


def names_refused_scope(message: str) -> bool:
    return any(scope in message for scope in REFUSED_SCOPES)


@dataclass
class Browser:
    """The program a client opens for authorization (tests/clients/browser.py) and what it saw."""

    program: Path
    log: Path

    def opens(self, expected: int = 1, timeout: float = 20) -> list[dict]:
        """Every opening so far, once `expected` of them have finished (bounded wait: it runs detached)."""
        deadline = time.monotonic() + timeout
        while len(seen := self._finished()) < expected and time.monotonic() < deadline:
            time.sleep(0.1)
        return seen

    @property
    def openings(self) -> int:
        return sum(1 for line in self._lines() if "opened" in line)

    def _finished(self) -> list[dict]:
        return [line for line in self._lines() if "opened" not in line]

    def _lines(self) -> list[dict]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.strip()]

    def outcomes(self, expected: int = 1) -> list[tuple]:
        """(decision, error, code received) of each finished opening; asserts nobody opened it more often."""
        finished = self.opens(expected)
        assert self.openings == len(finished), finished
        return [(o.get("decision"), o.get("error"), o.get("has_code"), o.get("failure")) for o in finished]


@pytest.fixture
def browser_for(tmp_path):
    def make(username: str) -> Browser:
        log = tmp_path / f"browser-{username}.jsonl"
        program = tmp_path / f"browser-{username}"
        # Detached, as a browser is: clients such as fastmcp wait for the opener to exit before
        # they start listening for the redirect.
        program.write_text("#!/bin/sh\n"
                           f"echo '{{\"opened\": true}}' >> '{log}'\n"
                           f"export PYTHONPATH='{REPO}' BROWSER_USER='{username}' "
                           f"BROWSER_PASSWORD='{password(username)}' BROWSER_LOG='{log}'\n"
                           f"'{VENV_BIN / 'python'}' -m tests.clients.browser \"$1\" </dev/null >>'{log}.out' 2>&1 &\n")
        program.chmod(0o755)
        return Browser(program, log)
    return make


def node_env() -> dict[str, str]:
    """Without a display, so nothing can reach a real browser."""
    return {k: v for k, v in os.environ.items() if k not in {"DISPLAY", "WAYLAND_DISPLAY", "BROWSER"}}


def url_of(gateway, transport: str) -> str:
    return gateway.streamable_url(SERVER) if transport == "streamable" else gateway.sse_url(SERVER)


def run_driver(script: str, options: dict) -> dict:
    """Run a driver (tests/clients/*.mjs with node, *.py with Python) with its options; its JSON report."""
    if script.endswith(".py"):
        command = [sys.executable, "-m", f"tests.clients.{script.removesuffix('.py')}"]
    else:
        command = [shutil.which("node"), str(CLIENTS / script)]
    done = subprocess.run([*command, json.dumps(options)], capture_output=True, text=True,
                          timeout=CLIENT_TIMEOUT, env=node_env(), cwd=REPO)
    lines = done.stdout.strip().splitlines()
    assert done.returncode == 0 and lines, f"{script} failed ({done.returncode}):\n{done.stdout}\n{done.stderr[-3000:]}"
    return json.loads(lines[-1])
