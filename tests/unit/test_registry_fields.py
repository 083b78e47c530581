"""The registry API's field-by-scope table (mcp_gateway/registry_fields.py, docs/registry.md)."""

from __future__ import annotations

import pytest

from mcp_gateway.registry_fields import FieldProblem, check_body, decide_edit, editor_may_use

EDIT, TOGGLE, ADMIN = "mcp:server:s:edit", "mcp:server:s:toggle", "mcp:registry:admin"
HOSTS = ("mcp.internal", "10.0.0.5:8000", "[::1]:9000")
OTHERS = [("http", "10.0.0.5:8000")]


@pytest.mark.parametrize("url,allowed", [
    ("http://mcp.internal", True),
    ("https://MCP.Internal/", True),
    ("http://mcp.internal:80/base", True),
    ("https://mcp.internal:443", True),
    ("http://mcp.internal:8080", False),          # a bare host means the default port only
    ("https://mcp.internal:80", False),
    ("https://10.0.0.5:8000", True),              # listed, and no other server on https there
    ("http://10.0.0.5:8000", False),              # listed, but another server's origin
    ("http://[::1]:9000", True),
    ("http://[0:0::1]:9000", False),              # compared as written after parsing, not as an address
    ("http://mcp.internal.evil.example", False),
    ("http://evil.example#@mcp.internal", False),
    ("http://mcp.internal@evil.example", False),
    ("http://mcp.internal:99999", False),
    ("ftp://mcp.internal", False),
    ("file:///etc/passwd", False),
    ("//mcp.internal", False),
    ("", False),
    (None, False),
    (["http://mcp.internal"], False),
])
def test_editor_upstream_hosts(url, allowed):
    assert editor_may_use(url, HOSTS, OTHERS) is allowed


@pytest.mark.parametrize("fields,scopes,allowed,missing", [
    ({"description": "x"}, {EDIT}, True, None),
    ({"description": "x", "tags": ["a"], "sse_path": "/sse", "streamable_path": "/mcp"}, {EDIT}, True, None),
    ({"enabled": False}, {EDIT}, False, TOGGLE),
    ({"enabled": False}, {TOGGLE}, True, None),
    ({"enabled": False, "description": "x"}, {TOGGLE}, False, EDIT),
    ({"enabled": False, "description": "x"}, {TOGGLE, EDIT}, True, None),
    ({"url": "http://127.0.0.1:1"}, {EDIT, TOGGLE}, False, ADMIN),
    ({"url": "http://mcp.internal"}, {EDIT}, True, None),
    ({"url": "http://mcp.internal"}, {TOGGLE}, False, EDIT),
    ({"verify_tls": False}, {EDIT, TOGGLE}, False, ADMIN),
    ({}, {TOGGLE}, False, EDIT),
    ({"url": "http://127.0.0.1:1", "verify_tls": False, "enabled": True}, {ADMIN}, True, None),
])
def test_each_field_needs_its_scope(fields, scopes, allowed, missing):
    decision = decide_edit(frozenset(scopes), "s", fields, HOSTS, OTHERS)
    assert decision.allowed is allowed
    if not allowed:
        assert decision.status == 403 and decision.scope == missing


@pytest.mark.parametrize("fields", [
    {"upstream_header": "X"}, {"upstream_value_env": "MCP_UPSTREAM_X"}, {"upstream_value_file": "t"},
    {"ca_file": "ca.pem"}, {"unknown": 1}, {"Enabled": True}, {"enabled": "false"}, {"enabled": 0},
    {"enabled": None}, {"description": 1}, {"tags": "a"}, {"tags": [1]}, {"url": None}, {"verify_tls": "no"},
    {"name": "s"},
])
def test_bodies_refused_for_everyone(fields):
    with pytest.raises(FieldProblem):
        check_body(fields, with_name=False)
