"""`policy test`: expectation files run against a policy folder, opa-test style."""

import shutil
from pathlib import Path

import pytest

from tests.unit.test_policy_cli import run

REPO = Path(__file__).resolve().parents[2]

REGISTRY = '[servers]\nnotes = ["search", "write"]\n"billing-eu" = ["refund"]\n\n'


@pytest.fixture
def policy_dir(tmp_path):
    folder = tmp_path / "policies"
    (folder / "tests").mkdir(parents=True)
    shutil.copy(REPO / "policies" / "default.toml", folder)
    return folder


def test_the_shipped_tests_pass_against_the_shipped_policy(capsys):
    code, out, _ = run(capsys, "test", "--policies", str(REPO / "policies"))
    assert code == 0, out
    assert "FAIL" not in out and out.splitlines()[-1].startswith("PASS: ")


@pytest.mark.parametrize("edit, failing", [
    # Each row of the convention table, broken one at a time, fails the shipped tests.
    (('group = "mcp-server-{server}-toggle"\nscopes = ["mcp:server:{server}:toggle"]',
      'group = "mcp-server-{server}-toggle"\nscopes = ["mcp:server:{server}:toggle", "mcp:server:{server}:edit"]'),
     "mcp-server-notes-toggle"),
    (('scopes = ["mcp:registry:read"]', 'scopes = ["mcp:registry:read", "mcp:server:notes:read"]'), "mcp-user"),
    (('group = "mcp-server-{server}-tool-{tool}"', 'group = "mcp-server-{server}-tools-{tool}"'),
     "mcp-server-notes-tool-search"),
    (('group = "mcp-server-{server}-admin"', 'group = "mcp-server-{server}-owner"'), "mcp-server-notes-admin"),
    (('scopes = ["mcp:registry:admin"]', 'scopes = ["mcp:registry:read"]'), "mcp-admin"),
    (('"mcp:server:{server}:edit",\n]', ']'), "mcp-server-notes-admin"),
])
def test_the_shipped_tests_pin_every_row(capsys, policy_dir, edit, failing):
    policy = policy_dir / "default.toml"
    text = policy.read_text()
    assert edit[0] in text
    policy.write_text(text.replace(edit[0], edit[1], 1))
    code, out, _ = run(capsys, "test", "--policies", str(policy_dir), str(REPO / "policies" / "tests"))
    assert code == 1
    assert any(line.startswith("FAIL ") and failing in line for line in out.splitlines()), out
    assert "FAIL: " in out.splitlines()[-1]


def test_pass_and_fail_lines_and_summary(capsys, policy_dir):
    (policy_dir / "tests" / "t.toml").write_text(REGISTRY + (
        '[[expect]]\ngroups = ["mcp-server-notes-tool-search"]\nmay = "call"\nserver = "notes"\ntool = "search"\n\n'
        '[[expect]]\ngroups = ["mcp-server-notes-tool-search"]\nmay = "call"\nserver = "notes"\ntool = "write"\n\n'
        '[[expect]]\ngroups = ["mcp-server-billing-eu-toggle"]\nmay_not = "toggle"\nserver = "billing-eu"\n'))
    code, out, _ = run(capsys, "test", "--policy-dir", str(policy_dir))
    test_file = policy_dir / "tests" / "t.toml"
    assert code == 1
    assert out.splitlines() == [
        f"PASS {test_file}:5: mcp-server-notes-tool-search may call notes/search",
        f"FAIL {test_file}:11: mcp-server-notes-tool-search may call notes/write",
        "     refused (403): tools/call of 'write' on server 'notes' needs scope "
        "mcp:server:notes:tool:write:execute (group mcp-server-notes-tool-write) or mcp:server:notes:execute "
        "(group mcp-server-notes)",
        f"FAIL {test_file}:17: mcp-server-billing-eu-toggle may not toggle billing-eu",
        "     allowed by scope mcp:server:billing-eu:toggle: registry toggle 'billing-eu' allowed",
        "-" * 80, "PASS: 1/3", "FAIL: 2/3"]


def test_tools_list_and_scopes_failures_say_what_happened(capsys, policy_dir):
    (policy_dir / "tests" / "t.toml").write_text(REGISTRY + (
        '[[expect]]\ngroups = ["mcp-server-notes-tool-search"]\nserver = "notes"\ntools_list = ["search", "write"]\n\n'
        '[[expect]]\ngroups = ["mcp-user"]\nserver = "notes"\ntools_list = []\n\n'
        '[[expect]]\ngroups = ["mcp-server-notes"]\nscopes = ["mcp:server:notes:read", "mcp:server:notes:edit"]\n'))
    code, out, _ = run(capsys, "test", "--policies", str(policy_dir))
    assert code == 1
    assert "     tools/list shows ['search']" in out
    assert "     cannot connect to notes: tools/list is refused" in out
    assert "     also got ['mcp:server:notes:execute']; did not get ['mcp:server:notes:edit']" in out


@pytest.mark.parametrize("body, where, message", [
    ('[[expect]]\ngroups = ["a"]\nmya = "call"\n', 7, "[[expect]] #1: unknown key 'mya'"),
    ('[[expect]]\ngroups = ["a"]\nmay = "call"\nserver = "notes"\n', 5, "[[expect]] #1: may = \"call\" needs tool"),
    ('[[expect]]\ngroups = ["a"]\nmay = "fly"\nserver = "notes"\n', 7, "may must be one of connect, call"),
    ('[[expect]]\ngroups = ["a"]\nmay = "connect"\nserver = "billing"\n', 8, "server 'billing' is not declared"),
    ('[[expect]]\ngroups = "a"\nmay = "connect"\nserver = "notes"\n', 6, "groups must be an array"),
    ('[[expect]]\ngroups = ["a"]\nmay = "connect"\nmay_not = "call"\nserver = "notes"\n', 5,
     "needs exactly one of may, may_not, tools_list, scopes"),
    ('[[expect]]\ngroups = ["a"]\ntools_list = ["x"]\n', 5, "tools_list needs server"),
    ('[[expect]]\ngroups = ["a"]\nmay = "toggle"\nserver = "notes"\ntool = "x"\n', 9, "tool goes with \"call\" only"),
    ('[bogus]\n', 5, "unknown key 'bogus'"),
])
def test_a_malformed_file_exits_2_with_its_line_and_key(capsys, policy_dir, body, where, message):
    test_file = policy_dir / "tests" / "t.toml"
    test_file.write_text(REGISTRY + body)
    code, out, err = run(capsys, "test", "--policies", str(policy_dir))
    assert code == 2 and out == ""
    assert f"{test_file}:{where}: " in err and message in err, err


@pytest.mark.parametrize("registry, message", [
    ('[servers]\n"Bad Name" = []\n', "not a server name"),
    ('[servers]\nnotes = "search"\n', "must be an array of tool names"),
    ('[servers\n', "TOML syntax error"),
])
def test_a_malformed_registry_exits_2(capsys, policy_dir, registry, message):
    (policy_dir / "tests" / "t.toml").write_text(registry + '\n[[expect]]\ngroups = []\nmay = "register"\n')
    code, _, err = run(capsys, "test", "--policies", str(policy_dir))
    assert code == 2 and message in err


def test_no_test_files_and_a_broken_policy_exit_2(capsys, policy_dir):
    code, _, err = run(capsys, "test", "--policies", str(policy_dir))
    assert code == 2 and "no test files" in err
    (policy_dir / "tests" / "t.toml").write_text(REGISTRY + '[[expect]]\ngroups = []\nmay = "register"\n')
    (policy_dir / "zz.toml").write_text('[groups]\nops = ["mcp:nope"]\n')
    code, _, err = run(capsys, "test", "--policies", str(policy_dir))
    assert code == 2 and "zz.toml:2" in err


def test_named_files_and_folders(capsys, policy_dir, tmp_path):
    elsewhere = tmp_path / "more"
    elsewhere.mkdir()
    (elsewhere / "a.toml").write_text(REGISTRY + '[[expect]]\ngroups = ["mcp-admin"]\nmay = "register"\n')
    (tmp_path / "b.toml").write_text(REGISTRY + '[[expect]]\ngroups = ["mcp-user"]\nmay_not = "register"\n')
    code, out, _ = run(capsys, "test", "--policies", str(policy_dir), str(elsewhere), str(tmp_path / "b.toml"))
    assert code == 0 and out.splitlines()[-1] == "PASS: 2/2"
