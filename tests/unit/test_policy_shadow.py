"""Shadow mode in the policy engine: shadow files and rules never change the policy in
force; the shadow view is the policy as it would be if they were enforcing."""

import shutil
from pathlib import Path

import pytest

from mcp_gateway.policy import load_policy
from mcp_gateway.policy_loader import PolicyError

REPO = Path(__file__).resolve().parents[2]
SERVERS = frozenset({"notes", "billing-eu"})


@pytest.fixture
def policy_dir(tmp_path):
    folder = tmp_path / "policies"
    folder.mkdir()
    shutil.copy(REPO / "policies" / "default.toml", folder)
    (folder / "10-team.toml").write_text('[groups]\n"team" = ["mcp:server:notes:execute", "mcp:server:notes:read"]\n')
    return folder


def scopes(policy, *groups):
    return policy.scopes_for(groups, SERVERS).scopes


def test_no_shadow_no_view(policy_dir):
    assert load_policy(policy_dir).shadow is None


def test_a_shadow_file_that_replaces_an_enforcing_one(policy_dir):
    (policy_dir / "20-team-next.toml").write_text(
        'mode = "shadow"\nshadows = ["10-team.toml"]\n\n[groups]\n"team" = ["mcp:server:notes:tool:search:execute"]\n')
    policy = load_policy(policy_dir)
    assert scopes(policy, "team") == {"mcp:server:notes:execute", "mcp:server:notes:read"}
    assert scopes(policy.shadow, "team") == {"mcp:server:notes:tool:search:execute"}
    # Everything the shadow file does not touch is the same in both views.
    assert scopes(policy.shadow, "mcp-server-billing-eu-admin") == scopes(policy, "mcp-server-billing-eu-admin")


def test_a_shadow_file_without_shadows_adds(policy_dir):
    (policy_dir / "20-more.toml").write_text('mode = "shadow"\n\n[groups]\n"team" = ["mcp:server:notes:edit"]\n')
    policy = load_policy(policy_dir)
    assert "mcp:server:notes:edit" not in scopes(policy, "team")
    assert scopes(policy.shadow, "team") == {"mcp:server:notes:execute", "mcp:server:notes:read", "mcp:server:notes:edit"}


def test_a_shadow_rule_in_an_enforcing_file(policy_dir):
    (policy_dir / "30-rules.toml").write_text(
        '[[rules]]\ngroup = "mcp-server-{server}-viewer"\nscopes = ["mcp:server:{server}:read"]\n\n'
        '[[rules]]\nmode = "shadow"\ngroup = "mcp-server-{server}-auditor"\nscopes = ["mcp:server:{server}:read"]\n')
    policy = load_policy(policy_dir)
    assert scopes(policy, "mcp-server-notes-viewer") == {"mcp:server:notes:read"}
    assert scopes(policy, "mcp-server-notes-auditor") == frozenset()
    assert scopes(policy.shadow, "mcp-server-notes-auditor") == {"mcp:server:notes:read"}
    assert all(not entry.shadow for entry in policy.entries)


def test_shadow_direct_scopes(policy_dir):
    (policy_dir / "40-direct.toml").write_text('mode = "shadow"\n[direct_scopes]\nallow = ["mcp:server:{server}:read"]\n')
    policy = load_policy(policy_dir)
    assert policy.direct_scopes(["mcp:server:notes:read"]) == frozenset()
    assert policy.shadow.direct_scopes(["mcp:server:notes:read"]) == {"mcp:server:notes:read"}


@pytest.mark.parametrize("text, message", [
    ('mode = "dry-run"\n', '2: mode: must be "enforce" or "shadow"'.replace("2:", "1:")),
    ('shadows = ["10-team.toml"]\n', '1: shadows: only a file with mode = "shadow"'),
    ('mode = "shadow"\nshadows = ["nope.toml"]\n', "2: shadows: no policy file named 'nope.toml'"),
    ('mode = "shadow"\nshadows = "10-team.toml"\n', "2: shadows: must be an array"),
    ('[[rules]]\nmode = "later"\ngroup = "x"\nscopes = []\n', "2: [[rules]] #1: mode: must be"),
    ('mode = "shadow"\n[[rules]]\nmode = "enforce"\ngroup = "x"\nscopes = []\n',
     "3: [[rules]] #1: a rule of a shadow file cannot enforce"),
])
def test_shadow_mistakes_are_reported_with_their_line(policy_dir, text, message):
    (policy_dir / "50-bad.toml").write_text(text)
    with pytest.raises(PolicyError) as error:
        load_policy(policy_dir)
    assert f"50-bad.toml:{message}" in str(error.value)


def test_a_shadow_file_cannot_shadow_a_shadow_file(policy_dir):
    (policy_dir / "20-a.toml").write_text('mode = "shadow"\n')
    (policy_dir / "30-b.toml").write_text('mode = "shadow"\nshadows = ["20-a.toml"]\n')
    with pytest.raises(PolicyError, match="'20-a.toml' is itself in shadow mode"):
        load_policy(policy_dir)


def test_check_counts_the_entries_in_shadow_mode(policy_dir, capsys):
    from mcp_gateway.policy_cli import main
    (policy_dir / "20-more.toml").write_text('mode = "shadow"\n\n[groups]\n"team" = ["mcp:server:notes:edit"]\n')
    assert main(["check", "--policy-dir", str(policy_dir)]) == 0
    assert "ok: 3 file(s), 1 mapping(s), 7 rule(s), 1 in shadow mode, 0 known server(s)" in capsys.readouterr().out
