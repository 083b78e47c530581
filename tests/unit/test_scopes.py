import pytest

from mcp_gateway.scopes import (
    REGISTRY_ADMIN,
    REGISTRY_READ,
    Scope,
    ScopeError,
    is_scope,
    is_server_name,
    is_tool_name,
    parse_scope,
    server_scope,
    tool_scope,
)


@pytest.mark.parametrize(
    "text, parsed",
    [
        ("mcp:registry:admin", Scope("registry", "admin")),
        ("mcp:registry:read", Scope("registry", "read")),
        ("mcp:server:time:read", Scope("server", "read", server="time")),
        ("mcp:server:a-b_c9:execute", Scope("server", "execute", server="a-b_c9")),
        ("mcp:server:a:toggle", Scope("server", "toggle", server="a")),
        ("mcp:server:a:edit", Scope("server", "edit", server="a")),
        ("mcp:server:a-b:tool:get_time:execute", Scope("tool", "execute", server="a-b", tool="get_time")),
        ("mcp:server:a:tool:Get.Time-2:execute", Scope("tool", "execute", server="a", tool="Get.Time-2")),
    ],
)
def test_valid_scopes_parse_and_round_trip(text, parsed):
    assert parse_scope(text) == parsed
    assert str(parsed) == text
    assert is_scope(text)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "mcp",
        "mcp:registry",
        "mcp:registry:write",
        "MCP:registry:admin",
        "mcp:registry:admin ",
        " mcp:registry:admin",
        "mcp:registry:admin\n",
        "mcp:server:A:read",  # upper case server
        "mcp:server::read",
        "mcp:server:a b:read",
        "mcp:server:a:delete",
        "mcp:server:a:read:extra",
        "mcp:server:a:tool:t",
        "mcp:server:a:tool:t:read",
        "mcp:server:a:tool::execute",
        "mcp:server:a:tool:t/x:execute",
        "mcp:server:a:tool:t x:execute",
        "mcp:server:a:tool:" + "t" * 129 + ":execute",
        "mcp:server:" + "a" * 65 + ":read",
        "mcp:server:{server}:read",
        "mcp:server:a\u0131:read",  # dotless i
        "mcp:server:a:tool:é:execute",
        "urn:mcp:server:a:read",
    ],
)
def test_invalid_scopes_are_refused(text):
    with pytest.raises(ScopeError):
        parse_scope(text)
    assert not is_scope(text)


@pytest.mark.parametrize("value", [None, 1, ["mcp:registry:admin"], b"mcp:registry:admin"])
def test_non_strings_are_not_scopes(value):
    assert not is_scope(value)


@pytest.mark.parametrize(
    "name, ok",
    [("a", True), ("a-b_c", True), ("0", True), ("a" * 64, True), ("a" * 65, False), ("", False),
     ("A", False), ("a.b", False), ("a:b", False), ("a\n", False), ("ä", False), (None, False)],
)
def test_server_names(name, ok):
    assert is_server_name(name) is ok


@pytest.mark.parametrize(
    "name, ok",
    [("echo", True), ("get_time", True), ("Get.Time-2", True), ("t" * 128, True), ("t" * 129, False),
     ("", False), ("a:b", False), ("a b", False), ("a/b", False), ("a,b", False), ("é", False), ("a\n", False)],
)
def test_tool_names_follow_the_mcp_spec(name, ok):
    assert is_tool_name(name) is ok


def test_builders():
    assert REGISTRY_ADMIN == "mcp:registry:admin" and REGISTRY_READ == "mcp:registry:read"
    assert server_scope("a-b", "toggle") == "mcp:server:a-b:toggle"
    assert tool_scope("a-b", "x.y") == "mcp:server:a-b:tool:x.y:execute"


@pytest.mark.parametrize(
    "build",
    [
        lambda: server_scope("A", "read"),
        lambda: server_scope("a", "delete"),
        lambda: server_scope("a:b", "read"),
        lambda: tool_scope("a", "x:execute"),
        lambda: tool_scope("a", ""),
        lambda: tool_scope("", "t"),
    ],
)
def test_builders_refuse_what_would_not_parse(build):
    with pytest.raises(ScopeError):
        build()
