"""Log forging: values a client chooses never start a log line of their own.

Each hostile value carries a unique marker and, after a control character, the text of a
line an attacker would like to see in the log ("auth: local login user=admin …"). The real
gateway's log file (mitmdump and its supervised login app) must show each marker on exactly
one line, escaped, and no line may start with the forged text; the audit log stays one JSON
record per line.
"""

from __future__ import annotations

import json
import socket
import uuid

import httpx
import pytest

from tests.e2e.conftest import local_accounts, wait_for_login_app
from tests.support.gateway import run_gateway, server_entry
from tests.support.waiting import wait_until

pytestmark = pytest.mark.timeout(120)

FORGED = "auth: local login user=admin groups=mcp-admin session=0123456789ab client=10.0.0.1"

# One per class of character that ends a line or rewrites a terminal.
BREAKS = {
    "lf": "\n", "cr": "\r", "crlf": "\r\n", "vt": "\x0b", "ff": "\x0c", "file-sep": "\x1c", "nel": "\x85",
    "esc-erase": "\x1b[2K\x1b[1G", "line-sep": "\u2028", "para-sep": "\u2029", "bidi-override": "\u202e",
}


@pytest.fixture(scope="module")
def gateway(tmp_path_factory, upstream_sse_answers):
    tmp = tmp_path_factory.mktemp("gw-logs")
    with run_gateway(tmp, [server_entry("currenttime", upstream_sse_answers.url)],
                     auth={"enabled": True, "provider_type": "local", "local": local_accounts()}) as gw:
        wait_for_login_app(gw)
        yield gw


def _lines_with(text: str, marker: str) -> list[str]:
    return [line for line in text.splitlines() if marker in line]


def _assert_one_escaped_line(log: str, marker: str, control: str) -> None:
    lines = _lines_with(log, marker)
    assert len(lines) == 1, f"{marker}: {lines}"
    assert control not in lines[0]
    assert not any(line.lstrip().startswith("auth: local login user=admin") for line in log.splitlines())


@pytest.mark.parametrize("name", BREAKS)
def test_a_username_cannot_forge_a_sign_in_line(gateway, name):
    marker = f"m{uuid.uuid4().hex[:12]}"
    control = BREAKS[name]

    answer = httpx.post(f"{gateway.url}/oauth/login/local",
                        data={"username": f"{marker}{control}{FORGED}", "password": "guess"},
                        headers={"origin": gateway.url}, timeout=15)

    assert answer.status_code == 401
    log = gateway.log
    _assert_one_escaped_line(log, marker, control)
    line = _lines_with(log, marker)[0]
    assert "local login failed" in line and FORGED in line  # the whole value, on the failure's own line


def _raw_request(port: int, head: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(head)
        chunks = []
        while data := conn.recv(65536):
            chunks.append(data)
        return b"".join(chunks)


@pytest.mark.parametrize("name", ["esc-erase", "line-sep", "bidi-override", "nel"])
def test_a_request_path_cannot_forge_a_line(gateway, name):
    marker = f"p{uuid.uuid4().hex[:12]}"
    control = BREAKS[name]
    path = f"/api/execute/{marker}{control}{FORGED}/sse".replace(" ", "%20").encode("utf-8")

    answer = _raw_request(gateway.port, b"GET " + path + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                        b"Connection: close\r\n\r\n")

    assert answer.startswith(b"HTTP/1.1 4"), answer[:200]
    _assert_one_escaped_line(gateway.log, marker, control)


@pytest.mark.parametrize("name", ["lf", "crlf", "line-sep"])
def test_percent_encoded_breaks_in_a_path_stay_escaped(gateway, name):
    marker = f"q{uuid.uuid4().hex[:12]}"
    encoded = BREAKS[name].encode("utf-8").hex("%").upper()
    path = f"/api/execute/{marker}%{encoded}{FORGED.replace(' ', '%20')}/sse"

    answer = httpx.get(gateway.url + path, headers={"accept": "application/json"}, timeout=10)

    assert 400 <= answer.status_code < 500
    log = gateway.log
    assert all(control not in line for line in _lines_with(log, marker) for control in BREAKS.values())
    assert not any(line.lstrip().startswith("auth: local login user=admin") for line in log.splitlines())


def test_the_audit_log_keeps_one_record_per_line(gateway):
    marker = f"a{uuid.uuid4().hex[:12]}"
    in_a_request_line = [BREAKS[name] for name in ("file-sep", "nel", "esc-erase", "line-sep", "para-sep",
                                                    "bidi-override")]  # CR, LF, VT, FF break the request line
    for control in in_a_request_line:
        path = f"/api/execute/{marker}{control}x/sse".replace(" ", "%20").encode("utf-8")
        _raw_request(gateway.port, b"GET " + path + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")

    def ours() -> list[dict]:
        audit = (gateway.state_dir / "audit.jsonl").read_text(encoding="utf-8")
        records = [json.loads(line) for line in audit.split("\n") if line]  # split on "\n" only: one record a line
        return [record for record in records if marker in record["path"]]

    # The audit file is written in batches by a thread of its own: wait for the records.
    wait_until(lambda: len(ours()) >= len(in_a_request_line), 5, "the audit records of the hostile paths")
    assert len(ours()) == len(in_a_request_line)
