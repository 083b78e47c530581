import logging
import os
import shutil
from pathlib import Path

import pytest

from mcp_gateway.policy import PolicyError, PolicySet, load_policy
from mcp_gateway.policy_loader import read_policy_dir
from mcp_gateway.policy_patterns import GroupPattern
from mcp_gateway.policy_repository import PolicyRepository

REPO = Path(__file__).resolve().parents[2]
DEFAULT = REPO / "policies" / "default.toml"
SERVERS = frozenset({"a", "a-b", "a-b-c", "time"})


def server_scopes(server, *actions):
    return {f"mcp:server:{server}:{action}" for action in actions}


@pytest.fixture
def policy_dir(tmp_path):
    folder = tmp_path / "policies"
    folder.mkdir()
    shutil.copy(DEFAULT, folder / "default.toml")
    return folder


@pytest.fixture
def default_policy(policy_dir):
    return load_policy(policy_dir)


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


# --- the conventional groups of policies/default.toml ---------------------------------------

CONVENTIONAL = [
    ("mcp-admin", {"mcp:registry:admin"}),
    ("mcp-user", {"mcp:registry:read"}),
    ("mcp-server-time", server_scopes("time", "read", "execute")),
    ("mcp-server-time-admin", server_scopes("time", "read", "execute", "toggle", "edit")),
    ("mcp-server-time-toggle", server_scopes("time", "toggle")),
    ("mcp-server-time-edit", server_scopes("time", "edit")),
    ("mcp-server-time-tool-get_time", {"mcp:server:time:tool:get_time:execute"}),
    ("mcp-server-time-tool-x.y-z", {"mcp:server:time:tool:x.y-z:execute"}),
    # hyphenated server names resolve to the known server
    ("mcp-server-a", server_scopes("a", "read", "execute")),
    ("mcp-server-a-b", server_scopes("a-b", "read", "execute")),
    ("mcp-server-a-b-c", server_scopes("a-b-c", "read", "execute")),
    ("mcp-server-a-b-admin", server_scopes("a-b", "read", "execute", "toggle", "edit")),
    ("mcp-server-a-b-c-admin", server_scopes("a-b-c", "read", "execute", "toggle", "edit")),
    ("mcp-server-a-admin", server_scopes("a", "read", "execute", "toggle", "edit")),
    ("mcp-server-a-b-toggle", server_scopes("a-b", "toggle")),
    ("mcp-server-a-b-c-edit", server_scopes("a-b-c", "edit")),
    ("mcp-server-a-b-tool-echo", {"mcp:server:a-b:tool:echo:execute"}),
    ("mcp-server-a-b-c-tool-b-c", {"mcp:server:a-b-c:tool:b-c:execute"}),
    ("mcp-server-a-tool-b-c", {"mcp:server:a:tool:b-c:execute"}),
]


@pytest.mark.parametrize("group, scopes", CONVENTIONAL)
def test_conventional_groups(default_policy, group, scopes):
    assert default_policy.scopes_for([group], SERVERS).scopes == scopes


NOTHING = [
    # unknown servers
    "mcp-server-zz", "mcp-server-a-b-c-d", "mcp-server-zz-admin", "mcp-server-zz-tool-echo", "mcp-server-A",
    "mcp-server-a-b-", "mcp-server--admin", "mcp-server-",
    # names that match no rule
    "mcp-admins", "MCP-ADMIN", "mcp-admin ", " mcp-admin", "mcp-user-a", "Domain Users", "", "mcp-server",
    # tool names outside the MCP alphabet
    "mcp-server-a-tool-", "mcp-server-a-tool-x y", "mcp-server-a-tool-x:y",
]


@pytest.mark.parametrize("group", NOTHING)
def test_unknown_and_unrelated_names_grant_nothing(default_policy, group):
    assert default_policy.scopes_for([group], SERVERS).scopes == frozenset()


def test_most_literal_characters_win(default_policy):
    # "a-admin" is also a known server: mcp-server-{server}-admin (17 literal characters)
    # beats mcp-server-{server} (11), so the group means "admin of a".
    servers = SERVERS | {"a-admin"}
    grant = default_policy.scopes_for(["mcp-server-a-admin"], servers)
    assert grant.scopes == server_scopes("a", "read", "execute", "toggle", "edit")
    [warning] = default_policy.lint(servers)
    assert warning.endswith(
        "default.toml:21: group 'mcp-server-a-admin' for server 'a-admin' resolves to server=a through a more specific entry"
    )


def test_equally_specific_readings_are_ambiguous_and_logged_once(default_policy, caplog):
    # -admin (17 literal characters) reads server "x-tool-y"; -tool-{tool} (17) reads server
    # "x", tool "y-admin": two different bindings at the top specificity.
    servers = SERVERS | {"x", "x-tool-y"}
    with caplog.at_level(logging.WARNING, logger="mcp_gateway.policy"):
        for groups in (["mcp-server-x-tool-y-admin"], ["mcp-server-x-tool-y-admin", "mcp-user"]):
            grant = default_policy.scopes_for(groups, servers)
            assert not any(scope.startswith("mcp:server:") for scope in grant.scopes)
            assert "ambiguous" in grant.unresolved["mcp-server-x-tool-y-admin"]
    warnings = [record.getMessage() for record in caplog.records]
    assert len(warnings) == 1 and "mcp-server-x-tool-y-admin" in warnings[0] and "ambiguous" in warnings[0]


def test_one_rule_binding_two_ways_is_ambiguous(default_policy):
    # -tool-{tool} reads (a, "b-tool-c") and (a-tool-b, "c")
    servers = SERVERS | {"a-tool-b"}
    grant = default_policy.scopes_for(["mcp-server-a-tool-b-tool-c"], servers)
    assert grant.scopes == frozenset() and "ambiguous" in grant.unresolved["mcp-server-a-tool-b-tool-c"]
    assert default_policy.scopes_for(["mcp-server-a-tool-b-tool-c"], SERVERS).scopes == {
        "mcp:server:a:tool:b-tool-c:execute"
    }


def test_unknown_server_is_logged_once_per_policy_version(policy_dir, caplog):
    with caplog.at_level(logging.WARNING, logger="mcp_gateway.policy"):
        first = load_policy(policy_dir)
        for _ in range(3):
            first.scopes_for(["mcp-server-gone"], SERVERS)
            first.scopes_for(["mcp-server-gone", "mcp-user"], SERVERS)
        assert len(caplog.records) == 1
        assert "mcp-server-gone" in caplog.records[0].getMessage()
        load_policy(policy_dir).scopes_for(["mcp-server-gone"], SERVERS)  # a new version warns again
        assert len(caplog.records) == 2
        first.scopes_for(["Domain Users", "mcp-admin"], SERVERS)  # unrelated names are not logged
        assert len(caplog.records) == 2


def test_explicit_mapping_beats_patterns_and_can_take_scopes_away(policy_dir):
    write(policy_dir, "site.toml", '[groups]\n"mcp-server-a-b" = ["mcp:server:a-b:read"]\n"mcp-server-time" = []\n')
    policy = load_policy(policy_dir)
    assert policy.scopes_for(["mcp-server-a-b"], SERVERS).scopes == server_scopes("a-b", "read")
    assert policy.scopes_for(["mcp-server-time"], SERVERS).scopes == frozenset()
    assert policy.scopes_for(["mcp-server-a-b-c"], SERVERS).scopes == server_scopes("a-b-c", "read", "execute")


def test_same_name_or_pattern_in_several_files_unite(policy_dir):
    write(policy_dir, "a.toml", '[groups]\nops = ["mcp:server:a:read"]\n')
    write(policy_dir, "b.toml", '[groups]\nops = ["mcp:server:a-b:read"]\n'
          '[[rules]]\ngroup = "mcp-server-{server}"\nscopes = ["mcp:server:{server}:toggle"]\n')
    policy = load_policy(policy_dir)
    assert [Path(file).name for file in policy.files] == ["a.toml", "b.toml", "default.toml"]
    assert policy.scopes_for(["ops"], SERVERS).scopes == {"mcp:server:a:read", "mcp:server:a-b:read"}
    assert policy.scopes_for(["mcp-server-a-b"], SERVERS).scopes == server_scopes("a-b", "read", "execute", "toggle")


def test_grant_explains_every_scope(policy_dir):
    write(policy_dir, "teams.toml", '# teams\n[groups]\n"data-science" = ["mcp:registry:read", "mcp:server:time:execute"]\n')
    grant = load_policy(policy_dir).scopes_for(["data-science", "mcp-server-time", "mcp-server-nope"], SERVERS)
    [by_mapping] = grant.sources["mcp:registry:read"]
    assert Path(by_mapping.file).name == "teams.toml" and by_mapping.line == 3
    assert by_mapping.group == "data-science" and "[groups]" in by_mapping.entry
    by_both = grant.sources["mcp:server:time:execute"]
    assert {source.group for source in by_both} == {"data-science", "mcp-server-time"}
    [by_rule] = grant.sources["mcp:server:time:read"]
    assert by_rule.binding == (("server", "time"),)
    assert "default.toml:21: [[rules]] #3" in str(by_rule) and "server=time" in str(by_rule)
    assert set(grant.unresolved) == {"mcp-server-nope"}


def test_registry_changes_apply_without_a_reload(default_policy):
    assert default_policy.scopes_for(["mcp-server-new"], SERVERS).scopes == frozenset()
    assert default_policy.scopes_for(["mcp-server-new"], SERVERS | {"new"}).scopes == server_scopes("new", "read", "execute")
    assert default_policy.scopes_for(["mcp-server-new"], list(SERVERS)).scopes == frozenset()


def test_results_are_cached_and_order_of_groups_does_not_matter(default_policy):
    first = default_policy.scopes_for(["mcp-user", "mcp-server-a"], SERVERS)
    assert default_policy.scopes_for(("mcp-server-a", "mcp-user", "mcp-user"), SERVERS) is first


def test_direct_scopes_only_where_the_policy_allows(policy_dir):
    token = ["mcp:server:a:read", "mcp:server:b:execute", "mcp:registry:admin", "mcp:server:a:tool:t:execute", "junk",
             "mcp:server:{server}:read"]
    assert load_policy(policy_dir).direct_scopes(token) == frozenset()
    write(policy_dir, "m2m.toml", '[direct_scopes]\nallow = ["mcp:server:{server}:read", "mcp:server:a:tool:{tool}:execute"]\n')
    assert load_policy(policy_dir).direct_scopes(token) == {"mcp:server:a:read", "mcp:server:a:tool:t:execute"}


def test_decision_cost_does_not_grow_with_mappings(tmp_path, monkeypatch):
    # Counted, not timed: explicit [groups] mappings are one dict lookup each, so resolving the
    # same groups tries exactly as many pattern matches with 10,000 mappings as with 100.
    servers = frozenset(f"srv-{i}" for i in range(1000))
    groups = [f"team-{i}" for i in range(50)] + ["mcp-server-srv-5-admin", "Domain Users"]  # all mapped in both
    tried = []
    real_bindings = GroupPattern.bindings
    monkeypatch.setattr(GroupPattern, "bindings", lambda self, name: tried.append(name) or real_bindings(self, name))
    counts = {}
    for count in (100, 10_000):
        folder = tmp_path / str(count)
        folder.mkdir()
        shutil.copy(DEFAULT, folder)
        lines = ["[groups]"] + [f'"team-{i}" = ["mcp:server:srv-{i % 1000}:read"]' for i in range(count)]
        write(folder, "teams.toml", "\n".join(lines))
        tried.clear()
        grant = PolicySet(read_policy_dir(folder)).scopes_for(groups, servers)  # cold caches
        assert "mcp:server:srv-5:edit" in grant.scopes and "mcp:server:srv-7:read" in grant.scopes
        counts[count] = len(tried)
    assert counts[10_000] == counts[100] and not any(name.startswith("team-") for name in tried), counts


# --- validation -----------------------------------------------------------------------------

BROKEN = [
    # (file text, line, words the problem must contain)
    ('[groups]\n"x" = ["mcp:registry:read"\n', 2, ["TOML syntax error"]),
    ("[[rules]]\ngroup = 'a'\nscopes = ['mcp:registry:read']\nscopes = []\n", 4, ["TOML syntax error"]),
    ('[group]\n"x" = []\n', 1, ["unknown key 'group'"]),
    ('[groups]\n"x" = ["mcp:registry:read"]\n"y" = "mcp:registry:read"\n', 3, ["'y'", "array"]),
    ('[groups]\n"x" = [1]\n', 2, ["'x'", "string"]),
    ('[groups]\n\n"ops" = ["mcp:server:a:write"]\n', 3, ["ops", "invalid scope 'mcp:server:a:write'"]),
    ('[groups]\n"ops" = ["mcp:server:A:read"]\n', 2, ["server name 'A'"]),
    ('[groups]\n"ops-{server}" = ["mcp:server:{server}:read"]\n', 2, ["[[rules]]"]),
    ('[groups]\n"ops" = ["mcp:server:{server}:read"]\n', 2, ["{server}", "does not bind"]),
    ('groups = ["x"]\n', 1, ["groups must be a table"]),
    ('rules = {group = "x"}\n', 1, ["array of tables"]),
    ('[[rules]]\ngroup = "mcp-{server}"\nscopes = ["mcp:server:{server}:read"]\ncomment = "x"\n', 4, ["unknown key 'comment'"]),
    ('[[rules]]\ngroup = "x"\n', 1, ["#1", "missing 'scopes'"]),
    ('[[rules]]\nscopes = []\n', 1, ["missing 'group'"]),
    ('[[rules]]\ngroup = 7\nscopes = []\n', 2, ["group must be a string"]),
    ('[[rules]]\ngroup = "x"\nscopes = "mcp:registry:read"\n', 3, ["array"]),
    ('[[rules]]\ngroup = "x"\nscopes = []\ndescription = 5\n', 4, ["description"]),
    ('[[rules]]\ngroup = ""\nscopes = []\n', 2, ["empty"]),
    ('[[rules]]\ngroup = "g-{srv}"\nscopes = []\n', 2, ["unknown placeholder {srv}"]),
    ('[[rules]]\ngroup = "g-{server}-{server}"\nscopes = []\n', 2, ["twice"]),
    ('[[rules]]\ngroup = "g-{server}{tool}"\nscopes = []\n', 2, ["literal text between"]),
    ('[[rules]]\ngroup = "g-{server"\nscopes = []\n', 2, ["brace"]),
    ('[[rules]]\ngroup = "g-{server}"\nscopes = ["mcp:server:{server}:tool:{tool}:execute"]\n', 3, ["{tool}", "does not bind"]),
    ('[[rules]]\ngroup = "g-{server}"\nscopes = ["mcp:server:{name}:read"]\n', 3, ["unknown placeholder {name}"]),
    ('[[rules]]\ngroup = "g-{tool}"\nscopes = ["mcp:server:{tool}:read"]\n', 3, ["whole server name"]),
    ('[[rules]]\ngroup = "g-{server}"\nscopes = ["mcp:server:x{server}:read"]\n', 3, ["whole server name"]),
    ('[[rules]]\ngroup = "g-{server}"\nscopes = ["mcp:server:{server}:admin"]\n', 3, ["invalid scope template"]),
    ('[[rules]]\ngroup = "a"\nscopes = ["mcp:registry:read"]\n\n[[rules]]\ngroup = "b"\nscopes = ["nope"]\n', 7, ["#2", "'nope'"]),
    ('[direct_scopes]\nallow = ["mcp:*"]\n', 2, ["invalid scope"]),
    ('[direct_scopes]\nallowed = []\n', 2, ["unknown key 'allowed'"]),
    (b"[groups]\n\"x\" = [\"\xff\"]\n", None, ["not UTF-8"]),
]


@pytest.mark.parametrize("text, line, words", BROKEN)
def test_broken_files_name_file_line_and_problem(tmp_path, text, line, words):
    path = tmp_path / "broken.toml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(PolicyError) as error:
        load_policy(tmp_path)
    problem = error.value.problems[0]
    assert problem.file == str(path)
    assert problem.line == line, str(error.value)
    for word in words:
        assert word in problem.message, str(error.value)
    assert str(error.value).startswith(f"{path}:{line}: " if line else f"{path}: ")


def test_every_problem_of_every_file_is_reported(tmp_path):
    write(tmp_path, "a.toml", '[groups]\n"x" = ["bad-1"]\n"y" = ["bad-2"]\n')
    write(tmp_path, "b.toml", "[oops\n")
    with pytest.raises(PolicyError) as error:
        load_policy(tmp_path)
    assert [(Path(p.file).name, p.line) for p in error.value.problems] == [("a.toml", 2), ("a.toml", 3), ("b.toml", 1)]


def test_hidden_and_other_files_are_ignored(tmp_path):
    write(tmp_path, ".#default.toml", "broken [")
    write(tmp_path, "default.toml~", "broken [")
    write(tmp_path, "notes.md", "broken [")
    write(tmp_path, "ok.toml", '[groups]\nops = ["mcp:registry:read"]\n')
    assert load_policy(tmp_path).scopes_for(["ops"], ()).scopes == {"mcp:registry:read"}


def test_missing_folder_is_an_error(tmp_path):
    with pytest.raises(PolicyError, match="not found"):
        load_policy(tmp_path / "nowhere")


def test_empty_folder_grants_nothing(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        policy = load_policy(tmp_path)
    assert policy.scopes_for(["mcp-admin"], SERVERS).scopes == frozenset()
    assert "no *.toml files" in caplog.text


# --- reloading ------------------------------------------------------------------------------


def edit(path: Path, text: str) -> None:
    """Write and move the mtime on, so the change is seen even on coarse-clock filesystems."""
    before = path.stat().st_mtime_ns if path.exists() else 0
    path.write_text(text)
    os.utime(path, ns=(before + 2_000_000_000, before + 2_000_000_000))


def test_broken_edit_keeps_the_last_good_policy_and_the_fix_applies(policy_dir, caplog):
    site = write(policy_dir, "site.toml", '[groups]\nops = ["mcp:registry:read"]\n')
    repository = PolicyRepository(policy_dir)
    good = repository.current()
    assert good.scopes_for(["ops"], SERVERS).scopes == {"mcp:registry:read"}
    assert repository.reload_if_changed() is False  # nothing changed

    with caplog.at_level(logging.ERROR, logger="mcp_gateway.policy_repository"):
        edit(site, '[groups]\nops = ["mcp:registry:read"\nadmins = ["mcp:registry:admin"]\n')
        assert repository.reload_if_changed() is False
        assert repository.reload_if_changed() is False  # reported once, not on every check
    assert repository.current() is good
    # tomllib notices the unclosed array on the next line
    assert repository.last_error is not None and repository.last_error.problems[0].line == 3
    assert len(caplog.records) == 1 and f"{site}:3: TOML syntax error" in caplog.records[0].getMessage()

    for broken in ('[groups]\nops = ["mcp:registry:write"]\n', '[groupz]\nops = ["mcp:registry:admin"]\n'):
        edit(site, broken)
        assert repository.reload_if_changed() is False
        assert repository.current() is good

    edit(site, '[groups]\nops = ["mcp:registry:admin"]\n')
    assert repository.reload_if_changed() is True
    assert repository.current().scopes_for(["ops"], SERVERS).scopes == {"mcp:registry:admin"}
    assert repository.current().version > good.version
    assert repository.last_error is None


def test_added_and_removed_files_are_noticed(policy_dir):
    repository = PolicyRepository(policy_dir)
    assert repository.current().scopes_for(["ops"], SERVERS).scopes == frozenset()
    assert not repository.changed()
    extra = write(policy_dir, "zz.toml", '[groups]\nops = ["mcp:registry:read"]\n')
    assert repository.changed()
    assert repository.reload_if_changed() is True
    assert not repository.changed()
    assert repository.current().scopes_for(["ops"], SERVERS).scopes == {"mcp:registry:read"}
    extra.unlink()
    assert repository.reload_if_changed() is True
    assert repository.current().scopes_for(["ops"], SERVERS).scopes == frozenset()


def test_vanished_folder_keeps_the_last_good_policy(policy_dir):
    repository = PolicyRepository(policy_dir)
    good = repository.current()
    shutil.rmtree(policy_dir)
    assert repository.reload_if_changed() is False
    assert repository.current() is good


def test_poll_checks_at_most_once_per_interval(policy_dir):
    repository = PolicyRepository(policy_dir, min_interval=3600)
    write(policy_dir, "zz.toml", '[groups]\nops = ["mcp:registry:read"]\n')
    assert repository.poll() is False  # too soon
    repository.min_interval = 0
    assert repository.poll() is True


def test_broken_policy_at_start_up_raises(policy_dir):
    write(policy_dir, "zz.toml", "[groups\n")
    with pytest.raises(PolicyError, match=r"zz\.toml:1: TOML syntax error"):
        PolicyRepository(policy_dir)
