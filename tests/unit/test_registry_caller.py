"""The signed caller header the proxy sends to the login app's registry SSE transport: only the
request it was made for, within its lifetime, under the gateway's key, verifies."""

from __future__ import annotations

import base64
import json
import time

import pytest

from mcp_gateway.registry_caller import MAX_AGE_SECONDS, Caller, sign_caller, verify_caller

KEY = "k" * 40
CALLER = Caller("local:alice", "alice", frozenset({"mcp:registry:read"}))
TARGET = "/_gateway/registry-mcp/messages/?session_id=" + "a" * 32
BODY = b'{"jsonrpc":"2.0","id":1,"method":"ping"}'
NOW = time.time()


def _elevated(header: str) -> str:
    payload, mac = header.split(".")
    document = json.loads(base64.urlsafe_b64decode(payload))
    document["scopes"] = ["mcp:registry:admin"]
    return base64.urlsafe_b64encode(json.dumps(document).encode()).decode() + "." + mac


def test_the_request_it_was_made_for_verifies():
    header = sign_caller(KEY, CALLER, "POST", TARGET, BODY, now=NOW)
    assert verify_caller(KEY, header, "POST", TARGET, BODY, now=NOW + 1) == CALLER


VARIANTS = {
    "no header": lambda h: (KEY, None, "POST", TARGET, BODY, NOW),
    "empty": lambda h: (KEY, "", "POST", TARGET, BODY, NOW),
    "no signature": lambda h: (KEY, h.split(".")[0], "POST", TARGET, BODY, NOW),
    "two dots": lambda h: (KEY, h + ".x", "POST", TARGET, BODY, NOW),
    "another key": lambda h: ("x" * 40, h, "POST", TARGET, BODY, NOW),
    "no key": lambda h: ("", h, "POST", TARGET, BODY, NOW),
    "another method": lambda h: (KEY, h, "GET", TARGET, BODY, NOW),
    "another session": lambda h: (KEY, h, "POST", TARGET[:-1] + "b", BODY, NOW),
    "another path": lambda h: (KEY, h, "POST", TARGET.replace("messages", "sse"), BODY, NOW),
    "another body": lambda h: (KEY, h, "POST", TARGET, BODY.replace(b"ping", b"tools/list"), NOW),
    "expired": lambda h: (KEY, h, "POST", TARGET, BODY, NOW + MAX_AGE_SECONDS + 1),
    "scopes raised": lambda h: (KEY, _elevated(h), "POST", TARGET, BODY, NOW),
}


@pytest.mark.parametrize("make", [pytest.param(make, id=name) for name, make in VARIANTS.items()])
def test_anything_else_is_refused(make):
    key, header, method, target, body, now = make(sign_caller(KEY, CALLER, "POST", TARGET, BODY, now=NOW))
    assert verify_caller(key, header, method, target, body, now=now) is None
