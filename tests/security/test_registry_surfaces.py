"""The registry's newer surfaces attacked as a black-box suite would: the pages' form posts
with hostile server names and values, the registry MCP server with hostile arguments and on
targets beyond the caller's scopes, what a person learns about servers they may not read, and
health checks fed by an upstream that lies (markup, forged log lines, huge or deeply nested
tool lists). Real gateway, real login app, a real (hostile) HTTP upstream."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from tests.support.accounts import account_hash
from tests.e2e.conftest import ADMIN_PASSWORD, test_policy_dir, wait_for_login_app
from tests.support.gateway import run_gateway, server_entry
from tests.support.hostile_upstream import hostile_upstream
from tests.support.login import cookie_header, kept_session, login_local
from tests.support.mcp_clients import ACCEPT

pytestmark = pytest.mark.timeout(120)

PASSWORD = "surfaces-password-for-tests"
USERS = {
    "reader": ["mcp-user", "registry-caller"],                      # registry read, may call registry tools
    "toggler": ["mcp-server-recorder-toggle", "registry-caller"],    # toggles recorder only
    "rita": ["reader-currenttime", "registry-caller"],               # reads currenttime only
    "eddy": ["mcp-server-recorder-edit"],                            # edits recorder only
}
POLICY = '[groups]\n"registry-caller" = ["mcp:server:registry:execute"]\n'

MARKUP = '<script>alert(1)</script>"><img src=x onerror=alert(2)>{{7*7}}${7*7}'
FORGED = "\nINFO forged: admin signed in\r\n\x1b[31m"
HOSTILE_TOOLS = {"tools": [
    {"name": MARKUP, "description": MARKUP + FORGED, "inputSchema": {"type": "object", "title": "</pre>" + MARKUP}},
    {"name": "ok_tool", "description": {"not": "a string"}, "inputSchema": "not an object"},
    "not a tool", {"name": 5},
]}
BIG_SCHEMA = {"type": "object", "properties": {f"p{i}": {"type": "string", "description": "x" * 1000}
                                               for i in range(100)}}  # ~110 KB
MAX_SCHEMA_CHARS = 16 * 1024


@pytest.fixture(scope="module")
def upstream():
    with hostile_upstream() as up:
        up.tools_answers["/xss/mcp"] = b'"result": ' + json.dumps(HOSTILE_TOOLS).encode()
        up.tools_answers["/bigschema/mcp"] = b'"result": ' + json.dumps(
            {"tools": [{"name": f"t{i}", "description": "big", "inputSchema": BIG_SCHEMA} for i in range(20)]}).encode()
        up.tools_answers["/deep/mcp"] = b'"result": {"tools": [{"name": "d", "inputSchema": ' \
            + b'{"a": ' * 100_000 + b"1" + b"}" * 100_000 + b"}]}"
        up.tools_answers["/oversize/mcp"] = b'"result": {"tools": [{"name": "o", "description": "' \
            + b"o" * (12 * 1024 * 1024) + b'"}]}'
        up.tools_answers["/liar/mcp"] = b'"error": ' + json.dumps({"code": -1, "message": FORGED * 3}).encode()
        yield up


@pytest.fixture(scope="module")
def gw(tmp_path_factory, upstream, upstream_sse_answers, recorder):
    tmp = tmp_path_factory.mktemp("gw-surfaces")
    policies = test_policy_dir(tmp)
    (policies / "60-surfaces.toml").write_text(POLICY)
    accounts = [{"username": u, "password_hash": account_hash(PASSWORD), "groups": g} for u, g in USERS.items()]
    servers = [server_entry("currenttime", upstream_sse_answers.url), server_entry("recorder", recorder.url),
               server_entry("sseonly", upstream_sse_answers.url, streamable_path="/no-streamable-here"),
               *(server_entry(name, upstream.url(name)) for name in ("xss", "bigschema", "deep", "oversize", "liar"))]
    with run_gateway(tmp, servers, auth={"enabled": True, "provider_type": "local", "local": {"accounts": accounts}},
                     gateway={"policy_dir": str(policies), "health_check_interval": "1s", "health_check_timeout": "8s"},
                     env={"ADMIN_USER": "admin", "ADMIN_PASSWORD": ADMIN_PASSWORD}) as gateway:
        wait_for_login_app(gateway)
        yield gateway


def _headers(gw, user: str, fresh: bool = False) -> dict[str, str]:
    """`user`'s kept session on `gw`, or a new one with `fresh` for a test that ends it."""
    password = ADMIN_PASSWORD if user == "admin" else PASSWORD
    token = login_local(gw.url, user, password) if fresh else kept_session(gw.url, user, password)
    return {**cookie_header(token), "origin": gw.url}


def _state(gw) -> dict:
    listing = httpx.get(f"{gw.url}/api/servers", headers=_headers(gw, "admin"), timeout=10).json()["servers"]
    return {s["name"]: (s["enabled"], s["description"], s["url"]) for s in listing}


def _checked(gw, server: str, timeout: float = 40) -> dict:
    """The server's tools once a health check has recorded it (bounded wait)."""
    headers = _headers(gw, "admin")
    deadline = time.monotonic() + timeout
    while True:
        answer = httpx.get(f"{gw.url}/api/servers/{server}/tools", headers=headers, timeout=10).json()
        if answer["health"]["status"] != "unknown" or time.monotonic() > deadline:
            return answer
        time.sleep(0.5)


def _assert_json_refusal(answer: httpx.Response, statuses: tuple[int, ...]) -> None:
    assert answer.status_code in statuses, (answer.status_code, answer.text[:300])
    assert answer.headers["content-type"].startswith("application/json"), answer.text[:300]
    assert answer.json()["status"] == answer.status_code


# --- pages: hostile server names and form values ------------------------------------------------

HOSTILE_NAMES = ["RECORDER", "Recorder", "recorder.", "a" * 65, "r%C3%A9corder", "recorder%20", "recorder%09",
                 "mcp:registry:admin", "recorder:toggle", "%2A", "re~corder"]


@pytest.mark.parametrize("action", ["toggle", "edit", "delete"])
@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_page_posts_naming_no_valid_server_are_refused_never_a_500(gw, action, name):
    before = _state(gw)
    answer = httpx.post(f"{gw.url}/registry/servers/{name}/{action}", data={"description": "defaced"},
                        headers=_headers(gw, "admin"), timeout=10)
    _assert_json_refusal(answer, (400, 403, 404))
    assert _state(gw) == before


@pytest.mark.parametrize("form", [
    {"enabled": "TRUE"}, {"enabled": "1"}, {"enabled": "yes"}, {"enabled": ""}, {"enabled": "off"},
    {"enabled": "false "}, {"enabled": "0"}, "enabled=false&enabled=true", "enabled=true&enabled=true",
], ids=["TRUE", "1", "yes", "empty", "off", "trailing-space", "0", "twice", "twice-alike"])
def test_a_toggle_form_value_other_than_true_or_false_changes_nothing(gw, form):
    before = _state(gw)
    form_type = {"content-type": "application/x-www-form-urlencoded"}
    body = {"content": form, "headers": {**_headers(gw, "admin"), **form_type}} if isinstance(form, str) \
        else {"data": form, "headers": _headers(gw, "admin")}
    answer = httpx.post(f"{gw.url}/registry/servers/recorder/toggle", timeout=10, **body)
    _assert_json_refusal(answer, (400,))
    assert _state(gw) == before


@pytest.mark.parametrize("form", [
    {"description": "x", "enabled": "false"},          # toggle smuggled through edit
    {"description": "x", "verify_tls": "false"},
    {"description": "x", "upstream_value_env": "SECRET_KEY"},
    {"description": "x", "url": "http://127.0.0.1:1"},
    {"DESCRIPTION": "x"},
    {"description": "x", "name": "renamed"},
])
def test_an_editor_cannot_change_more_through_the_page_than_through_the_api(gw, form):
    before = _state(gw)
    answer = httpx.post(f"{gw.url}/registry/servers/recorder/edit", data=form, headers=_headers(gw, "eddy"),
                        timeout=10)
    _assert_json_refusal(answer, (400, 403))
    assert _state(gw) == before


# --- the registry MCP server: hostile arguments, targets beyond one's scopes --------------------

def _call(gw, headers, tool: str, arguments) -> dict:
    body = {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": tool, "arguments": arguments}}
    answer = httpx.post(gw.streamable_url("registry"), json=body, headers={**headers, **ACCEPT}, timeout=10)
    assert answer.status_code == 200, answer.text[:300]
    return answer.json()


HOSTILE_TARGETS = ["currenttime", "../recorder", "recorder/../currenttime", "RECORDER", "recorder ", " recorder",
                   "recorder\u0000", "x" * 10_000, 5, None, ["recorder"], {"name": "recorder"}, True,
                   "mcp:registry:admin", "recorder:toggle", "*", "registry", "r\u0435corder"]


@pytest.mark.parametrize("target", HOSTILE_TARGETS, ids=range(len(HOSTILE_TARGETS)))
def test_toggle_server_beyond_ones_scope_or_with_a_hostile_name_changes_nothing(gw, target):
    headers = _headers(gw, "toggler")
    before = _state(gw)
    answer = _call(gw, headers, "toggle_server", {"server": target, "enabled": False})
    assert answer["result"]["isError"] is True, answer
    text = answer["result"]["content"][0]["text"]
    assert len(text) < 1000 and "Traceback" not in text
    assert _state(gw) == before


@pytest.mark.parametrize("enabled", ["false", 0, None, [], {"v": False}, "False"])
def test_toggle_server_with_a_value_other_than_a_boolean_changes_nothing(gw, enabled):
    before = _state(gw)
    answer = _call(gw, _headers(gw, "toggler"), "toggle_server", {"server": "recorder", "enabled": enabled})
    assert answer["result"]["isError"] is True
    assert _state(gw) == before


@pytest.mark.parametrize("arguments", [[], "recorder", 5, [{"server": "recorder"}]])
def test_tool_arguments_that_are_not_an_object_are_a_json_rpc_error(gw, arguments):
    answer = _call(gw, _headers(gw, "toggler"), "toggle_server", arguments)
    assert answer["error"]["code"] == -32602


def test_the_toggle_scope_on_one_server_does_toggle_it(gw):
    headers = _headers(gw, "toggler")
    try:
        answer = _call(gw, headers, "toggle_server", {"server": "recorder", "enabled": False})
        assert answer["result"]["structuredContent"] == {"server": "recorder", "enabled": False}
    finally:
        _call(gw, headers, "toggle_server", {"server": "recorder", "enabled": True})


# --- what a person learns about servers they may not read ---------------------------------------

def _same_but_the_name(a: str, b: str, name_a: str, name_b: str) -> bool:
    return a.replace(name_a, "NAME") == b.replace(name_b, "NAME")


@pytest.mark.parametrize("unknown", ["nosuchserver", "recorder2"])
def test_unreadable_and_unknown_servers_look_the_same_everywhere(gw, unknown):
    rita = _headers(gw, "rita")
    api = [httpx.get(f"{gw.url}/api/servers/{n}{suffix}", headers=rita, timeout=10)
           for suffix in ("", "/tools") for n in ("recorder", unknown)]
    assert api[0].status_code == api[1].status_code == 403
    assert api[2].status_code == api[3].status_code == 403
    assert _same_but_the_name(api[0].text, api[1].text, "recorder", unknown)
    assert _same_but_the_name(api[2].text, api[3].text, "recorder", unknown)
    pages = [httpx.get(f"{gw.url}/registry/servers/{n}?format=json", headers=rita, timeout=10)
             for n in ("recorder", unknown)]
    assert pages[0].status_code == pages[1].status_code == 404
    assert _same_but_the_name(pages[0].text, pages[1].text, "recorder", unknown)
    tools = [_call(gw, rita, "get_server_tools", {"server": n})["result"] for n in ("recorder", unknown)]
    assert tools[0]["isError"] and tools[1]["isError"]
    assert _same_but_the_name(tools[0]["content"][0]["text"], tools[1]["content"][0]["text"], "recorder", unknown)


def test_listings_and_searches_show_only_readable_servers(gw):
    rita = _headers(gw, "rita")
    listed = _call(gw, rita, "list_servers", {})["result"]["structuredContent"]["servers"]
    assert [s["name"] for s in listed] == ["currenttime"]
    _checked(gw, "xss")
    found = _call(gw, rita, "find_tools", {"query": "o"})["result"]["structuredContent"]["tools"]
    assert {t["server"] for t in found} <= {"currenttime"}
    page = httpx.get(f"{gw.url}/?format=json", headers=rita, timeout=10).json()
    assert [s["name"] for s in page["servers"]] == ["currenttime"]
    access = httpx.get(f"{gw.url}/registry/access?format=json", headers=rita, timeout=10).json()
    assert [s["name"] for s in access["servers"]] == ["currenttime"]


# --- health checks fed by a hostile upstream ----------------------------------------------------

def test_upstream_markup_in_tools_is_escaped_on_every_page(gw):
    tools = _checked(gw, "xss")
    assert tools["health"]["status"] == "ok"
    assert [t["name"] for t in tools["tools"]] == [MARKUP, "ok_tool"]
    headers = _headers(gw, "admin")
    for path in ("/registry/servers/xss", "/", "/registry/access"):
        page = httpx.get(gw.url + path, headers=headers, timeout=10)
        assert page.status_code == 200
        for raw in ("<script>alert", "<img src=x", "</pre><script", "onerror=alert(2)>"):
            assert raw not in page.text, (path, raw)
    shown = httpx.get(f"{gw.url}/registry/servers/xss", headers=headers, timeout=10).text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in shown and "{{7*7}}" in shown  # escaped, not evaluated


def test_upstream_strings_never_forge_a_log_line(gw):
    assert _checked(gw, "liar")["health"]["status"] == "failing"
    _checked(gw, "xss")
    log = gw.log
    assert not any(line.startswith("INFO forged") for line in log.splitlines())
    assert "\x1b[31m" not in log


def test_the_bounded_reads_still_check_an_sse_only_upstream(gw):
    tools = _checked(gw, "sseonly")
    assert tools["health"]["status"] == "ok", tools["health"]
    assert "current_time_by_timezone" in [t["name"] for t in tools["tools"]]


def test_huge_tool_schemas_are_bounded_in_the_record(gw):
    tools = _checked(gw, "bigschema")
    assert tools["health"]["status"] == "ok" and len(tools["tools"]) == 20
    for tool in tools["tools"]:
        assert len(json.dumps(tool["inputSchema"])) <= MAX_SCHEMA_CHARS


@pytest.mark.parametrize("server, says", [("deep", "unreadable"), ("oversize", "larger than")])
def test_an_unreadable_or_oversized_tool_list_is_a_failing_check_not_a_stuck_one(gw, server, says):
    health = _checked(gw, server)["health"]
    assert health["status"] == "failing", health
    assert says in health["error"]
    page = httpx.get(f"{gw.url}/registry/servers/{server}?format=json", headers=_headers(gw, "admin"), timeout=10)
    assert page.status_code == 200 and page.json()["server"]["health"]["status"] == "failing"


# --- reflected values and where a form post sends the browser ----------------------------------

@pytest.mark.parametrize("return_to", ["//evil.example/", "https://evil.example/", "/registry/servers/x/../../evil",
                                       "/\\evil.example", "/registry/servers/recorder\r\nX: y", "javascript:alert(1)"])
def test_a_form_post_sends_the_browser_only_to_a_page_of_the_gateway(gw, return_to):
    current = "true" if _state(gw)["recorder"][0] else "false"  # the same state again: nothing changes
    answer = httpx.post(f"{gw.url}/registry/servers/recorder/toggle", timeout=10, headers=_headers(gw, "admin"),
                        data={"enabled": current, "return_to": return_to}, follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"].split("?")[0] == "/"


@pytest.mark.parametrize("path", ["/", "/registry/servers/recorder", "/registry/access", "/registry/clients"])
def test_query_values_shown_on_a_page_are_escaped(gw, path):
    page = httpx.get(gw.url + path, params={"error": MARKUP, "done": MARKUP}, headers=_headers(gw, "admin"),
                     timeout=10)
    assert page.status_code == 200
    assert "<script>alert" not in page.text and "<img src=x" not in page.text


STATIC_ESCAPES = ["/registry/static/..%2f..%2fapp.py", "/registry/static/%2e%2e/templates/base.html",
                  "/registry/static/../templates/base.html", "/registry/static/..%5c..%5capp.py",
                  "/registry/static/registry.js%00.css", "/registry/static//etc/passwd",
                  "/registry/static/%2fetc%2fpasswd", "/registry/static/.%2e/registry/__init__.py",
                  "/registry/static/..;/registry/actions.py", "/registry/static/%c0%ae%c0%ae/app.py"]


@pytest.mark.parametrize("target", STATIC_ESCAPES)
def test_the_static_folder_serves_nothing_outside_itself(gw, target):
    from tests.security.hostile import request, session_cookie
    token = _headers(gw, "admin")["cookie"].split("=", 1)[1]
    answer = request(gw.port, "GET", target, [session_cookie(token)])
    assert answer.status in (400, 404), answer.head
    assert b"import" not in answer.body and b"root:" not in answer.body and b"{%" not in answer.body


# --- the data plane's rules hold for the built-in registry server too ---------------------------

PING = b'{"jsonrpc": "2.0", "id": 1, "method": "ping"}'
TOGGLE_BODY = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
    "name": "toggle_server", "arguments": {"server": "recorder", "enabled": False}}}).encode()


@pytest.mark.parametrize("method, content_type, body, status", [
    ("POST", "application/json; charset=utf-7", TOGGLE_BODY, 415),
    ("POST", "application/json; charset=utf-16", TOGGLE_BODY.decode().encode("utf-16"), 415),
    ("POST", "text/plain", TOGGLE_BODY, 415),
    ("POST", "application/x-www-form-urlencoded", TOGGLE_BODY, 415),
    ("DELETE", "application/json", TOGGLE_BODY, 400),
    ("GET", "application/json", TOGGLE_BODY, 400),
    ("PUT", "application/json", TOGGLE_BODY, 405),
    ("POST", "application/json", b"\xef\xbb\xbf" + TOGGLE_BODY, 400),
    ("POST", "application/json", TOGGLE_BODY[:-1] + b', "method": "ping"}', 400),   # duplicate key
    ("POST", "application/json", TOGGLE_BODY.replace(b'"method"', b'"Method"', 1), 400),
])
def test_the_registry_server_reads_bodies_as_strictly_as_any_server(gw, method, content_type, body, status):
    from tests.security.hostile import request, session_cookie
    before = _state(gw)
    token = _headers(gw, "admin")["cookie"].split("=", 1)[1]
    answer = request(gw.port, method, "/api/streamable/registry",
                     [session_cookie(token), ("Content-Type", content_type), ("Accept", ACCEPT["accept"])], body)
    assert answer.status == status, answer.head + answer.body[:200].decode("latin-1")
    assert _state(gw) == before


# --- an editor's upstream paths: never a way to another server behind the same origin -----------

UPSTREAM_PATHS = ["/%2e%2e/currenttime/sse", "/%2E%2E/x", "/..%2fx", "/x%2f..%2fy", "/..;/x", "/x/..;/y",
                  "/x%5c..%5cy", "/x%00", "/\u00e9", "/x;jsessionid=1", "/%252e%252e/x", "/x/\u2025/y"]


@pytest.mark.parametrize("field", ["sse_path", "streamable_path"])
@pytest.mark.parametrize("path", UPSTREAM_PATHS)
def test_upstream_paths_another_parser_reads_differently_are_refused(gw, field, path):
    admin = _headers(gw, "admin")
    before = httpx.get(f"{gw.url}/api/servers/recorder", headers=admin, timeout=10).json()
    eddy = _headers(gw, "eddy")
    api = httpx.patch(f"{gw.url}/api/servers/recorder", json={field: path}, headers=eddy, timeout=10)
    _assert_json_refusal(api, (400,))
    page = httpx.post(f"{gw.url}/registry/servers/recorder/edit", data={field: path}, headers=eddy, timeout=10,
                      follow_redirects=False)
    assert page.status_code == 303 and "error=" in page.headers["location"]
    after = httpx.get(f"{gw.url}/api/servers/recorder", headers=admin, timeout=10).json()
    assert {k: v for k, v in after.items() if k != "health"} == {k: v for k, v in before.items() if k != "health"}


# --- after logout ----------------------------------------------------------------------------

def test_after_logout_no_page_opens_and_no_form_post_changes_anything(gw):
    headers = _headers(gw, "admin", fresh=True)
    token = headers["cookie"].split("=", 1)[1]
    csrf = httpx.get(f"{gw.url}/", headers=headers, timeout=10).text.split('name="csrf_token" value="')[1].split('"')[0]
    out = httpx.post(f"{gw.url}/oauth/logout", headers=headers, timeout=10, follow_redirects=False)
    assert out.status_code in (200, 303)
    before = _state(gw)
    for path in ("/", "/registry/servers/recorder", "/registry/access", "/registry/clients", "/oauth/connections"):
        page = httpx.get(gw.url + path + "?format=json", headers=headers, timeout=10, follow_redirects=False)
        assert page.status_code == 302 and page.headers["location"].startswith("/oauth/login"), path
    for path, form in [("/registry/servers/recorder/toggle", {"enabled": "false"}),
                       ("/registry/servers/recorder/edit", {"description": "after logout"}),
                       ("/registry/servers/recorder/delete", {}),
                       ("/registry/servers", {"name": "late", "url": "http://127.0.0.1:9"})]:
        answer = httpx.post(gw.url + path, data={**form, "csrf_token": csrf}, headers=headers, timeout=10)
        assert answer.status_code == 401, (path, answer.status_code)
    toggle = httpx.post(gw.streamable_url("registry"), content=TOGGLE_BODY, timeout=10,
                        headers={**cookie_header(token), "content-type": "application/json", **ACCEPT})
    assert toggle.status_code == 401
    assert _state(gw) == before


@pytest.mark.parametrize("path", ["/registry/servers/recorder/edit", "/registry/servers"])
@pytest.mark.parametrize("body, content_type", [
    ("description=a&description=b", "application/x-www-form-urlencoded"),
    ("name=twice&name=again&url=http%3A%2F%2F127.0.0.1%3A9", "application/x-www-form-urlencoded"),
    ('--b\r\nContent-Disposition: form-data; name="description"; filename="x.txt"\r\n\r\nfile\r\n'
     '--b\r\nContent-Disposition: form-data; name="name"; filename="n.txt"\r\n\r\nfiled\r\n--b--\r\n',
     "multipart/form-data; boundary=b"),
], ids=["description-twice", "name-twice", "file-parts"])
def test_a_form_field_sent_twice_or_as_a_file_is_refused_like_a_duplicate_json_key(gw, path, body, content_type):
    before = _state(gw)
    answer = httpx.post(gw.url + path, content=body.encode(), timeout=10,
                        headers={**_headers(gw, "admin"), "content-type": content_type})
    _assert_json_refusal(answer, (400,))
    assert _state(gw) == before
