"""Helpers of the hostile-input suites: raw HTTP/1.1 over a socket (for requests no HTTP client
library would send), an open SSE stream of a signed-in user, the gateway's session store."""

from __future__ import annotations

import json
import socket
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator

import httpx

from mcp_gateway.identity import SESSION_COOKIE
from mcp_gateway.sessions import SessionStore, open_store


@dataclass
class RawAnswer:
    status: int
    head: str       # status line and headers, as received
    body: bytes
    rest: bytes     # anything after the first answer (a second, pipelined answer)

    def header(self, name: str) -> str | None:
        for line in self.head.split("\r\n")[1:]:
            key, _, value = line.partition(":")
            if key.strip().lower() == name.lower():
                return value.strip()
        return None

    def json(self) -> Any:
        return json.loads(self.body)


def exchange(port: int, data: bytes, timeout: float = 10.0, quiet: float = 1.0) -> bytes:
    """Send `data`; read until the gateway closes the connection, or nothing more arrived for
    `quiet` seconds after the first bytes (a kept-alive connection), or `timeout` passes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        received = b""
        try:
            while chunk := sock.recv(65536):
                received += chunk
                sock.settimeout(quiet)
        except (TimeoutError, ConnectionResetError):
            pass
    return received


def parse_answer(raw: bytes) -> RawAnswer:
    head, _, after = raw.partition(b"\r\n\r\n")
    text = head.decode("latin-1")
    length = next((int(line.split(":", 1)[1]) for line in text.split("\r\n")[1:]
                   if line.lower().startswith("content-length:")), len(after))
    status = int(text.split(" ", 2)[1]) if text.startswith("HTTP/") else 0
    return RawAnswer(status, text, after[:length], after[length:])


def request(port: int, method: str, target: str, headers: list[tuple[str, str]] | None = None,
            body: bytes = b"", timeout: float = 10.0) -> RawAnswer:
    """One request, sent byte for byte as given (plus Host, Content-Length and Connection: close)."""
    lines = [f"{method} {target} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{name}: {value}" for name, value in headers or []]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    lines.append("Connection: close")
    data = ("\r\n".join(lines) + "\r\n\r\n").encode() + body
    return parse_answer(exchange(port, data, timeout))


def session_cookie(token: str) -> tuple[str, str]:
    return ("Cookie", f"{SESSION_COOKIE}={token}")


def assert_json_refusal(answer: RawAnswer, status: int) -> None:
    """The gateway's own refusal: the status, a JSON body saying it, nothing else."""
    assert answer.status == status, answer.head + "\n" + answer.body[:300].decode("latin-1")
    assert "application/json" in (answer.header("content-type") or ""), answer.head
    payload = answer.json()
    assert payload["status"] == status and payload["message"], payload
    assert b"<html" not in answer.body.lower() and b"Traceback" not in answer.body


def cookie(token: str) -> dict[str, str]:
    return {"cookie": f"{SESSION_COOKIE}={token}"}


@contextmanager
def sse_stream(gw, token: str, server: str = "currenttime") -> Iterator[str]:
    """An open SSE stream of `token`'s user; yields the endpoint path it announced."""
    with httpx.Client(timeout=10) as http:
        with http.stream("GET", gw.sse_url(server), headers=cookie(token)) as stream:
            assert stream.status_code == 200
            lines = stream.iter_lines()  # kept referenced: closing the generator would close the stream
            endpoint = next(line[5:].strip() for line in lines if line.startswith("data:"))
            time.sleep(0.3)  # the binding is written as the endpoint event passes
            yield endpoint


def gateway_store(gw, lifetime: float = 3600) -> SessionStore:
    """The gateway's own SQLite session store, opened beside it (sessions written here are its sessions)."""
    return open_store("sqlite:///sessions.db", base_dir=gw.state_dir, lifetime=lifetime, idle_timeout=3600,
                      secretbox=None)
