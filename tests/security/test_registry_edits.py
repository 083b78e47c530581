"""Registry edits cannot escalate privilege (docs/registry.md has the field-by-scope table).

A real gateway with local accounts: eddy holds mcp:server:recorder:edit, otto
mcp:server:recorder:toggle, admin mcp:registry:admin. The recorder server carries a configured
credential (MCP_UPSTREAM_RECORDER); the gateway's own secrets sit in its environment. Every
hostile edit is refused, the entry stays as it was, and what reaches the recording upstreams
afterwards carries the configured credential and none of the gateway's secrets.
"""

from __future__ import annotations

import json

import httpx
import pytest

from tests.e2e.conftest import ADMIN_PASSWORD, local_accounts, test_policy_dir, wait_for_login_app
from tests.support.gateway import TEST_SECRET_KEY, run_gateway, server_entry
from tests.support.login import cookie_header, login_local
from tests.support.mcp_clients import ACCEPT
from tests.support.processes import free_port
from tests.support.recorder import recording_upstream
from tests.support.waiting import wait_until

pytestmark = pytest.mark.timeout(180)

RECORDER_CREDENTIAL = "recorder-credential-value"
SECRETS = {
    "SECRET_KEY": TEST_SECRET_KEY,
    "ADMIN_PASSWORD": ADMIN_PASSWORD,
    "MCP_AUTH_CLIENT_SECRET": "client-secret-never-upstream",
    "MCP_UPSTREAMX": "no-underscore-never-upstream",
    "mcp_upstream_lower": "lower-case-never-upstream",
    "MCP_UPSTREAM_OTHER": "other-servers-credential-never-here",
}
FILE_SECRET = "file-secret-outside-the-credentials-folder"
PASSWORDS = {"eddy": "eddy-password-for-tests", "otto": "otto-password-for-tests", "admin": ADMIN_PASSWORD}


@pytest.fixture(scope="module")
def setup(tmp_path_factory, upstream_sse_answers):
    tmp = tmp_path_factory.mktemp("gw-registry-edits")
    (tmp / "credentials").mkdir()
    (tmp / "credentials" / "other-token").write_text("Bearer other\n")
    (tmp / "outside-secret").write_text(FILE_SECRET)
    (tmp / "credentials" / "escape").symlink_to(tmp / "outside-secret")
    with recording_upstream() as recorder, recording_upstream() as allowed:
        servers = [
            server_entry("recorder", recorder.url, upstream_header="X-Upstream-Key",
                         upstream_value_env="MCP_UPSTREAM_RECORDER"),
            server_entry("currenttime", upstream_sse_answers.url),
        ]
        with run_gateway(tmp, servers, auth={"enabled": True, "provider_type": "local", "local": local_accounts()},
                         gateway={"policy_dir": str(test_policy_dir(tmp)), "credentials_dir": "credentials",
                                  "editor_upstream_hosts": [f"127.0.0.1:{allowed.port}"]},
                         env={"ADMIN_USER": "admin", "MCP_UPSTREAM_RECORDER": RECORDER_CREDENTIAL, **SECRETS}) as gw:
            wait_for_login_app(gw)
            headers = {user: cookie_header(login_local(gw.url, user, password)) for user, password in PASSWORDS.items()}
            yield gw, headers, recorder, allowed


def entry(gw, headers) -> dict:
    return httpx.get(f"{gw.url}/api/servers/recorder", headers=headers["admin"], timeout=10).json()


def send(gw, headers, user: str, method: str, path: str, body) -> httpx.Response:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.request(method, f"{gw.url}{path}", content=raw, timeout=10,
                         headers={**headers[user], "content-type": "application/json"})


def call_through(gw, headers, server: str = "recorder") -> None:
    answer = httpx.post(gw.streamable_url(server), headers={**headers["admin"], **ACCEPT}, timeout=10,
                        json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
    assert answer.status_code == 200, answer.text


def assert_nothing_leaked(*recorders) -> None:
    forbidden = [*SECRETS.values(), FILE_SECRET, "Bearer other"]
    for recorder in recorders:
        for seen in recorder.requests:
            flat = json.dumps(seen.headers)
            assert not any(secret in flat for secret in forbidden), f"a secret reached the upstream: {seen.headers}"


CREDENTIAL_FIELDS = [
    {"upstream_value_env": "SECRET_KEY"},
    {"upstream_value_env": "ADMIN_PASSWORD"},
    {"upstream_value_env": "MCP_UPSTREAM_OTHER"},
    {"upstream_value_env": "MCP_UPSTREAMX"},
    {"upstream_value_env": "mcp_upstream_lower"},
    {"upstream_header": "X-Leak", "upstream_value_env": "SECRET_KEY"},
    {"upstream_header": "Authorization"},
    {"upstream_header": "X-Upstream-Key\r\nX-Injected: 1"},
    {"upstream_value_file": "/proc/self/environ"},
    {"upstream_value_file": "../outside-secret"},
    {"upstream_value_file": "escape"},
    {"upstream_value_file": "other-token"},
    {"upstream_value_file": "/proc/self/environ", "upstream_header": "X-Leak", "description": "harmless"},
    {"ca_file": "/etc/passwd"},
]
WRITERS = [("eddy", "PATCH"), ("eddy", "PUT"), ("admin", "PATCH"), ("admin", "PUT"), ("admin", "POST")]


@pytest.mark.parametrize("user,method", WRITERS, ids=[f"{u}-{m}" for u, m in WRITERS])
def test_credential_sources_are_never_api_data(setup, user, method):
    gw, headers, recorder, allowed = setup
    before = entry(gw, headers)
    for fields in CREDENTIAL_FIELDS:
        if method == "POST":
            answer = send(gw, headers, user, "POST", "/api/servers",
                          {"name": "leaky", "url": f"http://127.0.0.1:{recorder.port}", **fields})
        else:
            answer = send(gw, headers, user, method, "/api/servers/recorder", fields)
        assert answer.status_code == 400, (fields, answer.text)
        assert "configuration only" in answer.json()["message"]
    assert httpx.get(f"{gw.url}/api/servers/leaky", headers=headers["admin"], timeout=10).status_code == 404
    assert entry(gw, headers) == before
    recorder.requests.clear()
    call_through(gw, headers)
    assert recorder.requests[-1].headers["x-upstream-key"] == RECORDER_CREDENTIAL
    assert_nothing_leaked(recorder, allowed)
    assert "Traceback" not in gw.log


def test_url_changes_need_the_admin_unless_the_host_is_allow_listed(setup, upstream_sse_answers):
    gw, headers, recorder, allowed = setup
    before = entry(gw, headers)
    internal = free_port()
    for url in [
        upstream_sse_answers.url,                         # another registered server's upstream
        upstream_sse_answers.url.replace("127.0.0.1", "localhost"),
        f"http://127.0.0.1:{internal}",                   # any internal port
        f"http://127.0.0.1:{gw.port}",                    # the gateway itself
        f"http://localhost:{allowed.port}",               # the allowed port, another host spelling
        f"http://0x7f.0.0.1:{allowed.port}",
        f"http://[::1]:{allowed.port}",
        f"https://127.0.0.2:{allowed.port}",
        f"http://127.0.0.1:{allowed.port}@evil.example:80",
        "file:///etc/passwd",
        f"gopher://127.0.0.1:{allowed.port}/",
        f"ftp://127.0.0.1:{allowed.port}",
        "http://127.0.0.1",
    ]:
        for method in ("PATCH", "PUT"):
            answer = send(gw, headers, "eddy", method, "/api/servers/recorder", {"url": url})
            assert answer.status_code == 403, (url, answer.text)
            assert answer.json()["scope"] == "mcp:registry:admin"
    # allow-listed host, but not a plain http(s) URL: refused as a bad value
    for url in [f"http://user:pw@127.0.0.1:{allowed.port}", f"http://127.0.0.1:{allowed.port}#x",
                f"http://127.0.0.1:{allowed.port}/?q=1"]:
        assert send(gw, headers, "eddy", "PATCH", "/api/servers/recorder", {"url": url}).status_code == 400, url
    # the admin may not use other schemes or userinfo either
    for url in ["file:///etc/passwd", f"gopher://127.0.0.1:{allowed.port}/", "http://u:p@127.0.0.1:1",
                "javascript:alert(1)", "http://127.0.0.1:1#frag"]:
        assert send(gw, headers, "admin", "PATCH", "/api/servers/recorder", {"url": url}).status_code == 400, url
    assert entry(gw, headers) == before
    # an allow-listed host, in any letter case, is the editor's to choose
    moved = send(gw, headers, "eddy", "PATCH", "/api/servers/recorder", {"url": f"HTTP://127.0.0.1:{allowed.port}"})
    assert moved.status_code == 200, moved.text
    try:
        call_through(gw, headers)
        assert allowed.requests and allowed.requests[-1].headers["x-upstream-key"] == RECORDER_CREDENTIAL
    finally:
        restored = send(gw, headers, "admin", "PATCH", "/api/servers/recorder", {"url": recorder.url})
        assert restored.status_code == 200
    assert_nothing_leaked(recorder, allowed)


def page_edit(gw, headers, user: str, form: dict) -> httpx.Response:
    html = httpx.get(f"{gw.url}/", headers=headers[user], timeout=10).text  # eddy may edit, not read: no cards
    csrf = html.split('name="csrf_token" value="')[1].split('"')[0]
    return httpx.post(f"{gw.url}/registry/servers/recorder/edit", data={**form, "csrf_token": csrf},
                      headers={**headers[user], "origin": gw.url}, timeout=10)


def test_the_edit_page_takes_an_editors_url_by_the_same_host_rule(setup, upstream_sse_answers):
    gw, headers, recorder, allowed = setup
    before = entry(gw, headers)
    for url in [upstream_sse_answers.url, f"http://127.0.0.1:{gw.port}", f"http://localhost:{allowed.port}"]:
        refused = page_edit(gw, headers, "eddy", {"url": url})
        assert refused.status_code == 403 and "mcp:registry:admin" in refused.json()["message"], (url, refused.text)
    assert entry(gw, headers) == before
    moved = page_edit(gw, headers, "eddy", {"url": f"http://127.0.0.1:{allowed.port}"})
    try:
        assert moved.status_code == 303 and "done=saved" in moved.headers["location"], moved.headers.get("location")
        # the login app wrote it; the proxy re-reads the registry state within a second
        wait_until(lambda: entry(gw, headers)["url"] == f"http://127.0.0.1:{allowed.port}", 10, "the proxy sees the edit")
    finally:
        assert send(gw, headers, "admin", "PATCH", "/api/servers/recorder", {"url": recorder.url}).status_code == 200


ENABLED_BODIES = [
    {"enabled": False},
    {"enabled": False, "description": "just a description"},
    {"description": "x", "enabled": True},
]


def test_enabled_needs_toggle_on_every_route(setup):
    gw, headers, recorder, allowed = setup
    for body in ENABLED_BODIES:
        for method in ("PATCH", "PUT"):
            answer = send(gw, headers, "eddy", method, "/api/servers/recorder", body)
            assert answer.status_code == 403, (body, answer.text)
            assert answer.json()["scope"] == "mcp:server:recorder:toggle"
            assert entry(gw, headers)["enabled"] is True
    # toggle alone changes enabled, and nothing else
    assert send(gw, headers, "otto", "PATCH", "/api/servers/recorder", {"description": "x"}).status_code == 403
    assert send(gw, headers, "otto", "PATCH", "/api/servers/recorder", {"enabled": False, "tags": ["a"]}
                ).status_code == 403
    off = send(gw, headers, "otto", "PATCH", "/api/servers/recorder", {"enabled": False})
    assert off.status_code == 200 and off.json()["enabled"] is False
    on = send(gw, headers, "otto", "PUT", "/api/servers/recorder", {"enabled": True})
    assert on.status_code == 200 and on.json()["enabled"] is True
    # the editor's own fields
    edited = send(gw, headers, "eddy", "PATCH", "/api/servers/recorder",
                  {"description": "records", "tags": ["test", "recorder"], "sse_path": "/sse"})
    assert edited.status_code == 200 and edited.json()["tags"] == ["test", "recorder"]
    assert send(gw, headers, "eddy", "PATCH", "/api/servers/recorder", {"verify_tls": False}).json()["scope"] \
        == "mcp:registry:admin"


CONFUSED_BODIES = [
    b'{"enabled": "false"}',
    b'{"enabled": 0}',
    b'{"enabled": null}',
    b'{"enabled": {"value": false}}',
    b'{"enabled": [false]}',
    b'{"enabled": true, "enabled": false}',
    b'{"description": "a", "description": "b"}',
    b'{"description": ["x"]}',
    b'{"description": {"$set": "x"}}',
    b'{"tags": "a,b"}',
    b'{"tags": [1, 2]}',
    b'{"url": ["http://127.0.0.1:1"]}',
    b'{"sse_path": "//evil.example/sse"}',
    b'{"sse_path": "/../admin"}',
    b'{"Upstream_Header": "X-Leak"}',
    b'{"upstream_header ": "X-Leak"}',
    b'{"endpoints": {"sse": "http://evil"}}',
    b'{"name": "currenttime", "description": "x"}',
    b'{"server": {"upstream_value_env": "SECRET_KEY"}}',
    b'[{"description": "x"}]',
    b'"description"',
    b'{"description": "x"',
    # JSON another parser would read otherwise (mcp_gateway/strict_json.py)
    b'{"description": "a", "Description": "b"}',
    b'{"description": NaN}',
    b'{"tags": [1e400]}',
    b'\xef\xbb\xbf{"description": "x"}',
    '{"description": "x"}'.encode("utf-16"),
    b'{"description": "\\ud800"}',
    b'{"description": "x"} {"enabled": false}',
]


@pytest.mark.parametrize("user", ["eddy", "admin"])
def test_body_type_confusion_is_refused(setup, user):
    gw, headers, recorder, allowed = setup
    before = entry(gw, headers)
    for raw in CONFUSED_BODIES:
        answer = send(gw, headers, user, "PATCH", "/api/servers/recorder", raw)
        # a body is read and checked before any scope is: the same 400 for the editor and the admin
        assert answer.status_code == 400, (raw, answer.text)
        assert answer.headers["content-type"].startswith("application/json") and answer.json()["message"]
    assert entry(gw, headers) == before
    assert "Traceback" not in gw.log
