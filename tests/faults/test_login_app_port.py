"""The proxy -> login app hop carries passwords: while the supervised login app restarts, no other
local process can take its port and receive them (addons/supervisor.py holds the socket)."""

from __future__ import annotations

import os
import re
import signal
import socket
import threading
import time

import httpx
import pytest

from tests.faults.conftest import ADMIN_PASSWORD, local_gateway, login_app_pids
from tests.support.gateway import server_entry

pytestmark = pytest.mark.timeout(120)


class Impostor:
    """A local process's listener that tries to take a port and records whatever it is sent."""

    def __init__(self) -> None:
        self.listener: socket.socket | None = None
        self.received: list[bytes] = []

    def try_to_bind(self, port: int) -> None:
        candidate = socket.socket()
        try:
            candidate.bind(("127.0.0.1", port))
            candidate.listen(16)
        except OSError:
            candidate.close()
            return
        self.listener = candidate
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        assert self.listener is not None
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(2)
                try:
                    self.received.append(conn.recv(65536))
                except OSError:
                    pass

    def close(self) -> None:
        if self.listener is not None:
            self.listener.close()


def test_a_restarting_login_app_port_cannot_be_taken_by_another_process(tmp_path, upstream_sse_answers):
    impostor = Impostor()
    with local_gateway(tmp_path, [server_entry("currenttime", upstream_sse_answers.url)]) as gw:
        port = int(re.search(r"login app started \(pid \d+\) on (?:http://)?127\.0\.0\.1:(\d+)", gw.log)[1])
        [first] = login_app_pids(gw)
        os.kill(first, signal.SIGKILL)
        statuses = []
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and 303 not in statuses:
                if impostor.listener is None:
                    impostor.try_to_bind(port)
                try:
                    statuses.append(httpx.post(f"{gw.url}/oauth/login/local", headers={"origin": gw.url}, timeout=10,
                                               data={"username": "admin", "password": ADMIN_PASSWORD}).status_code)
                except httpx.HTTPError as exc:  # a hang or a dropped connection is a failure too
                    statuses.append(repr(exc))
                time.sleep(0.1)
        finally:
            impostor.close()

    assert impostor.listener is None, "another local process could bind the login app's port"
    assert not any(ADMIN_PASSWORD.encode() in data for data in impostor.received)
    assert 303 in statuses, f"logins did not work again after the restart: {statuses}"
    assert set(statuses) <= {502, 303}, statuses  # refused clearly while down, then served
