"""The login app crashes: the supervisor restarts it; while it is down, logins fail at once with
a clear JSON 502 (never a hang), signed-in people keep using their MCP servers (the proxy reads
the session store itself), and logins work again once it is back."""

from __future__ import annotations

import os
import signal
import time

import httpx
import pytest

from tests.faults.conftest import ACCEPT, ADMIN_PASSWORD, INIT, local_gateway, login_app_pids, status_of
from tests.support.gateway import server_entry
from tests.support.login import cookie_header, login_local
from tests.support.waiting import wait_until

pytestmark = pytest.mark.timeout(120)


def test_a_crashed_login_app_is_restarted_and_fails_clearly_meanwhile(tmp_path, upstream_sse_answers):
    with local_gateway(tmp_path, [server_entry("currenttime", upstream_sse_answers.url)]) as gw:
        headers = cookie_header(login_local(gw.url, "admin", ADMIN_PASSWORD))
        [first] = login_app_pids(gw)

        os.kill(first, signal.SIGKILL)
        started = time.monotonic()
        login = httpx.post(f"{gw.url}/oauth/login/local", headers={"origin": gw.url}, timeout=15,
                           data={"username": "admin", "password": ADMIN_PASSWORD, "next": "/"})
        assert time.monotonic() - started < 5
        assert login.status_code == 502 and login.json()["error"] == "bad_gateway"
        assert "127.0.0.1" not in login.text  # no internal address in the answer
        # the data plane does not need the login app
        mcp = httpx.post(gw.streamable_url("currenttime"), json=INIT, headers={**headers, **ACCEPT}, timeout=10)
        assert mcp.status_code == 200

        wait_until(lambda: status_of("GET", f"{gw.url}/oauth/healthz") == 200, 30, "the login app is back")
        pids = login_app_pids(gw)
        assert len(pids) == 2 and pids[1] != first
        assert "login app exited with code -9; restarting" in gw.log
        assert login_local(gw.url, "admin", ADMIN_PASSWORD)
        assert status_of("GET", f"{gw.url}/oauth/me", headers=headers) == 200, "sessions outlive the login app"
