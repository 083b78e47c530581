import pytest

from mcp_gateway.authz import (
    Decision,
    decide_mcp,
    decide_mcp_connect,
    decide_registry,
    filter_tools_list_result,
    is_read_only_method,
    readable_servers,
    refused_unreadable,
    tool_filter,
)
from mcp_gateway.jsonrpc import RpcMessage

S = "a-b"
ADMIN = "mcp:registry:admin"
REG_READ = "mcp:registry:read"
READ = f"mcp:server:{S}:read"
EXECUTE = f"mcp:server:{S}:execute"
TOGGLE = f"mcp:server:{S}:toggle"
EDIT = f"mcp:server:{S}:edit"
TOOL_ECHO = f"mcp:server:{S}:tool:echo:execute"
# the same scopes on look-alike servers never count for S
DECOYS = {"mcp:server:a:read", "mcp:server:a:execute", "mcp:server:a-b-c:execute", "mcp:server:a:tool:echo:execute",
          "mcp:server:a-b-c:tool:echo:execute", "mcp:server:b:toggle", "mcp:server:a-bc:edit"}


def request(method, tool=None, id=1):
    return RpcMessage("request", id, method, tool, {})


def notification(method):
    return RpcMessage("notification", None, method, None, {})


RESPONSE = RpcMessage("response", 5, None, None, {})

READ_ONLY = ["initialize", "ping", "server/discover", "notifications/initialized", "notifications/cancelled",
             "notifications/roots/list_changed", "tools/list", "resources/list", "resources/templates/list",
             "prompts/list", "tasks/list"]
EXECUTE_ONLY = ["resources/read", "prompts/get", "completion/complete", "logging/setLevel", "resources/subscribe",
                "resources/unsubscribe", "tasks/get", "tasks/result", "tasks/cancel", "subscriptions/listen",
                "sampling/createMessage", "custom/method",
                # names that only look read-only
                "Tools/List", "tools/list ", "tools/call\x00/list", "notifications", "notifications/", "ping\n",
                "INITIALIZE", "tools/call/../list", "tools/list/x"]


# --- the "what each request needs" table, every row allowed and refused ----------------------

MCP_ROWS = [
    # (messages, scopes that allow, scopes that do not, missing scope named)
    *[([request(m)], [READ, EXECUTE, TOOL_ECHO, ADMIN], [REG_READ, TOGGLE, EDIT], READ) for m in READ_ONLY],
    *[([notification(m)], [READ, EXECUTE, TOOL_ECHO, ADMIN], [REG_READ, TOGGLE, EDIT], READ)
      for m in READ_ONLY if m.startswith("notifications/")],
    ([RESPONSE], [READ, EXECUTE, TOOL_ECHO, ADMIN], [REG_READ, TOGGLE, EDIT], READ),
    ([request("tools/call", "echo")], [EXECUTE, TOOL_ECHO, ADMIN], [READ, REG_READ, TOGGLE, EDIT], TOOL_ECHO),
    ([request("tools/call", "other")], [EXECUTE, ADMIN], [READ, TOOL_ECHO, REG_READ], f"mcp:server:{S}:tool:other:execute"),
    # a tool name outside the MCP alphabet cannot have a tool scope: only execute allows it
    ([request("tools/call", "echo:execute")], [EXECUTE, ADMIN], [READ, TOOL_ECHO], EXECUTE),
    ([request("tools/call", "")], [EXECUTE, ADMIN], [READ, TOOL_ECHO], EXECUTE),
    *[([request(m)], [EXECUTE, ADMIN], [READ, TOOL_ECHO, REG_READ, TOGGLE, EDIT], EXECUTE) for m in EXECUTE_ONLY],
]


@pytest.mark.parametrize("messages, allowing, refusing, missing", MCP_ROWS)
def test_mcp_requests_need_their_scope(messages, allowing, refusing, missing):
    for scope in allowing:
        decision = decide_mcp(frozenset({scope} | DECOYS), S, messages)
        assert decision.allowed and decision.status == 200, (scope, decision)
        assert decision.scope == scope
    for scopes in [set(), DECOYS, set(refusing) | DECOYS]:
        decision = decide_mcp(frozenset(scopes), S, messages)
        assert not decision.allowed and decision.status == 403, (scopes, decision)
        assert decision.scope == missing
        assert missing in decision.reason


@pytest.mark.parametrize("allowing", [READ, EXECUTE, TOOL_ECHO, f"mcp:server:{S}:tool:x.y:execute", ADMIN])
def test_connect_needs_any_scope_of_the_server(allowing):
    decision = decide_mcp_connect(frozenset({allowing}), S)
    assert decision.allowed and decision.scope == allowing


@pytest.mark.parametrize("scopes", [set(), DECOYS, {REG_READ, TOGGLE, EDIT} | DECOYS])
def test_connect_refused_names_the_read_scope(scopes):
    decision = decide_mcp_connect(frozenset(scopes), S)
    assert (decision.allowed, decision.status, decision.scope) == (False, 403, READ)


REGISTRY_ROWS = [
    # (action, scopes that allow, scopes that do not, missing scope)
    ("read", [REG_READ, READ, ADMIN], [EXECUTE, TOOL_ECHO, TOGGLE, EDIT], READ),
    ("toggle", [TOGGLE, ADMIN], [READ, EXECUTE, EDIT, REG_READ], TOGGLE),
    ("edit", [EDIT, ADMIN], [READ, EXECUTE, TOGGLE, REG_READ], EDIT),
    ("register", [ADMIN], [REG_READ, READ, EXECUTE, TOGGLE, EDIT], ADMIN),
    ("delete", [ADMIN], [REG_READ, READ, EXECUTE, TOGGLE, EDIT], ADMIN),
]


@pytest.mark.parametrize("action, allowing, refusing, missing", REGISTRY_ROWS)
def test_registry_requests_need_their_scope(action, allowing, refusing, missing):
    for scope in allowing:
        decision = decide_registry(frozenset({scope}), action, S)
        assert decision.allowed and decision.scope == scope, (scope, decision)
    decision = decide_registry(frozenset(set(refusing) | DECOYS), action, S)
    assert (decision.allowed, decision.status, decision.scope) == (False, 403, missing)


def test_registry_list_is_allowed_and_filtered():
    servers = ["a", "a-b", "a-b-c", "z"]
    assert decide_registry(frozenset({REG_READ}), "list", None).scope == REG_READ
    assert readable_servers(frozenset({REG_READ}), servers) == set(servers)
    assert readable_servers(frozenset({ADMIN}), servers) == set(servers)
    limited = decide_registry(frozenset({READ}), "list", None)
    assert limited.allowed and limited.scope is None
    assert readable_servers(frozenset({READ, EXECUTE.replace(S, "z"), TOOL_ECHO.replace(S, "a")}), servers) == {S}
    assert readable_servers(frozenset(), servers) == set()


def test_registry_action_needing_a_server_without_one_is_a_programming_error():
    with pytest.raises(ValueError):
        decide_registry(frozenset({ADMIN}), "toggle", None)
    with pytest.raises(ValueError):
        decide_registry(frozenset({ADMIN}), "launch", S)  # type: ignore[arg-type]


# --- batches ------------------------------------------------------------------------------


def test_batch_is_allowed_only_if_every_message_is():
    scopes = frozenset({TOOL_ECHO})
    good = [request("initialize"), notification("notifications/initialized"), request("tools/call", "echo", id=2)]
    decision = decide_mcp(scopes, S, good)
    assert decision.allowed
    assert decision.scope == TOOL_ECHO  # the one scope that decided every message
    refused = decide_mcp(scopes, S, good + [request("tools/call", "rm", id=3), request("resources/read", id=4)])
    assert not refused.allowed and refused.status == 403
    assert refused.scope == f"mcp:server:{S}:tool:rm:execute"  # the first missing scope
    assert refused.tool == "rm"


def test_allowed_batch_summarises_scopes_methods_and_tools():
    decision = decide_mcp(frozenset({READ, EXECUTE}), S, [request("ping"), request("tools/call", "echo", id=2)])
    assert decision.scope == f"{READ} {EXECUTE}"
    assert decision.method == "ping,tools/call" and decision.tool == "echo"


def test_no_messages_is_refused():
    assert decide_mcp(frozenset({ADMIN}), S, []).status == 400
    assert refused_unreadable("duplicate key", 400) == Decision(False, 400, None, "unreadable MCP body: duplicate key")


def test_narrowest_held_scope_is_reported():
    scopes = frozenset({ADMIN, EXECUTE, TOOL_ECHO, READ})
    assert decide_mcp(scopes, S, [request("tools/call", "echo")]).scope == TOOL_ECHO
    assert decide_mcp(scopes, S, [request("tools/call", "x")]).scope == EXECUTE
    assert decide_mcp(scopes, S, [request("ping")]).scope == READ
    assert decide_mcp_connect(frozenset({ADMIN, TOOL_ECHO}), S).scope == TOOL_ECHO


def test_reason_quotes_client_supplied_names():
    decision = decide_mcp(frozenset(), S, [request("tools/call", "x\n" + "y" * 500)])
    assert "\n" not in decision.reason and len(decision.reason) < 300


@pytest.mark.parametrize("method", READ_ONLY)
def test_read_only_methods(method):
    assert is_read_only_method(method)


@pytest.mark.parametrize("method", EXECUTE_ONLY + ["tools/call"])
def test_not_read_only_methods(method):
    assert not is_read_only_method(method)


# --- tools/list filtering -----------------------------------------------------------------


@pytest.mark.parametrize(
    "scopes, expected",
    [
        ({ADMIN}, None),
        ({EXECUTE}, None),
        ({EXECUTE, TOOL_ECHO}, None),
        ({TOOL_ECHO, f"mcp:server:{S}:tool:x.y:execute"}, frozenset({"echo", "x.y"})),
        ({READ}, frozenset()),
        (DECOYS, frozenset()),
        ({READ, TOOL_ECHO} | DECOYS, frozenset({"echo"})),
    ],
)
def test_tool_filter(scopes, expected):
    assert tool_filter(frozenset(scopes), S) == expected


def test_filter_tools_list_result():
    message = {
        "jsonrpc": "2.0",
        "id": 3,
        "result": {
            "tools": [
                {"name": "echo", "inputSchema": {}},
                {"name": "rm", "inputSchema": {}},
                {"name": ["echo"]},
                {"title": "no name"},
                "echo",
                {"name": "ECHO"},
            ],
            "nextCursor": "c2",
        },
    }
    filtered = filter_tools_list_result(message, frozenset({"echo"}))
    assert filtered["result"] == {"tools": [{"name": "echo", "inputSchema": {}}], "nextCursor": "c2"}
    assert filtered["id"] == 3
    assert len(message["result"]["tools"]) == 6  # the original is untouched
    assert filter_tools_list_result(message, frozenset())["result"]["tools"] == []


@pytest.mark.parametrize(
    "message",
    [
        {"jsonrpc": "2.0", "id": 1, "error": {"code": 1, "message": "x"}},
        {"jsonrpc": "2.0", "id": 1, "result": {"resources": []}},
        {"jsonrpc": "2.0", "id": 1, "result": {"tools": "all"}},
        {"jsonrpc": "2.0", "method": "notifications/tools/list_changed"},
    ],
)
def test_filter_leaves_other_messages_alone(message):
    assert filter_tools_list_result(message, frozenset()) == message


@pytest.mark.parametrize("scope,group", [
    ("mcp:registry:admin", "mcp-admin"), ("mcp:registry:read", "mcp-user"),
    ("mcp:server:a-b:read", "mcp-server-a-b"), ("mcp:server:a-b:execute", "mcp-server-a-b"),
    ("mcp:server:a-b:toggle", "mcp-server-a-b-toggle"), ("mcp:server:a-b:edit", "mcp-server-a-b-edit"),
    ("mcp:server:a-b:tool:x.y:execute", "mcp-server-a-b-tool-x.y"),
    ("not a scope", None), ("mcp:server:A:read", None),
])
def test_refusals_name_the_conventional_group_of_each_scope(scope, group):
    from mcp_gateway.authz import conventional_group, granting_groups
    assert conventional_group(scope) == group
    if ":tool:" in scope:
        assert granting_groups(scope) == [group, "mcp-server-a-b"]


def test_a_refused_tool_call_names_both_scopes_and_their_groups():
    reason = decide_mcp(frozenset(), S, [request("tools/call", "echo")]).reason
    assert f"mcp:server:{S}:tool:echo:execute (group mcp-server-{S}-tool-echo)" in reason
    assert f"mcp:server:{S}:execute (group mcp-server-{S})" in reason
