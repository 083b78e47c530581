"""`policy diff OLD NEW`: per group, the scopes added and removed and the calls that become
allowed or refused; folders or git revisions; exit 0 no change, 1 changes, 2 errors."""

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.unit.test_policy_cli import run

REPO = Path(__file__).resolve().parents[2]
REGISTRY = '[servers]\nnotes = ["search", "write"]\n"billing-eu" = ["refund"]\nbilling = []\n\n' \
           '[[expect]]\ngroups = ["mcp-admin"]\nmay = "register"\n'
SITE = '[groups]\n"team" = ["mcp:server:notes:tool:search:execute"]\n' \
       '"mcp-server-billing-eu" = ["mcp:server:billing-eu:read"]\n'


def folder(base: Path, name: str, site: str | None = None) -> Path:
    directory = base / name
    (directory / "tests").mkdir(parents=True)
    shutil.copy(REPO / "policies" / "default.toml", directory)
    (directory / "tests" / "registry.toml").write_text(REGISTRY)
    if site is not None:
        (directory / "site.toml").write_text(site)
    return directory


def test_a_change_prints_scopes_and_calls_per_group(capsys, tmp_path):
    old, new = folder(tmp_path, "old"), folder(tmp_path, "new", SITE)
    code, out, _ = run(capsys, "diff", str(old), str(new))
    assert code == 1
    assert out.splitlines() == [
        f"--- {old}", f"+++ {new}",
        "group mcp-server-billing-eu",  # a hyphenated server: its own group, not billing's
        "  - mcp:server:billing-eu:execute",
        "  now refused: resources/read on billing-eu",
        "  now refused: call billing-eu/refund",
        "group team",
        "  + mcp:server:notes:tool:search:execute",
        "  now allowed: connect notes",
        "  now allowed: call notes/search",
        "2 group(s) changed; 2 call(s) become allowed, 2 refused (3 known server(s), 3 tool(s))"]


def test_no_change_exits_0(capsys, tmp_path):
    code, out, _ = run(capsys, "diff", str(folder(tmp_path, "a", SITE)), str(folder(tmp_path, "b", SITE)))
    assert code == 0 and out.splitlines()[-1].startswith("0 group(s) changed")


def test_pattern_rules_are_compared_for_every_known_server(capsys, tmp_path):
    old = folder(tmp_path, "old")
    new = folder(tmp_path, "new", '[[rules]]\ngroup = "mcp-server-{server}-viewer"\nscopes = ["mcp:server:{server}:read"]\n')
    code, out, _ = run(capsys, "diff", str(old), str(new))
    assert code == 1
    groups = [line for line in out.splitlines() if line.startswith("group ")]
    assert groups == ["group mcp-server-billing-eu-viewer", "group mcp-server-billing-viewer",
                      "group mcp-server-notes-viewer"]
    assert "  now allowed: connect billing-eu" in out and "  now allowed: read notes" in out


def test_git_revisions(capsys, tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    folder(repo, "policies")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.org"]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run([*git, "-C", str(repo), "add", "-A"], check=True)
    subprocess.run([*git, "-C", str(repo), "commit", "-qm", "one"], check=True)
    (repo / "policies" / "site.toml").write_text(SITE)
    subprocess.run([*git, "-C", str(repo), "add", "-A"], check=True)
    subprocess.run([*git, "-C", str(repo), "commit", "-qm", "two"], check=True)
    monkeypatch.chdir(repo)
    code, out, _ = run(capsys, "diff", "HEAD~1:policies", "HEAD:policies")
    assert code == 1 and "group team" in out and out.splitlines()[:2] == ["--- HEAD~1:policies", "+++ HEAD:policies"]
    assert out.splitlines()[-1].endswith("(3 known server(s), 3 tool(s))")  # tests/ came out of git too
    code, out, _ = run(capsys, "diff", "HEAD:policies", "policies")
    assert code == 0


def test_shadow_view_against_the_policy_in_force(capsys, tmp_path):
    policies = folder(tmp_path, "p", 'mode = "shadow"\n\n' + SITE)
    code, out, _ = run(capsys, "diff", "--shadow", str(policies))
    assert code == 1 and f"+++ {policies} (shadow view)" in out and "group team" in out


def test_known_servers_from_config_and_named_tests(capsys, tmp_path):
    old, new = folder(tmp_path, "old"), folder(tmp_path, "new", '[groups]\n"ops" = ["mcp:server:payroll:toggle"]\n')
    config = tmp_path / "gateway.toml"
    config.write_text('[[servers]]\nname = "payroll"\nurl = "http://x"\n')
    only = tmp_path / "only.toml"
    only.write_text('[servers]\npayroll = ["pay"]\n\n[[expect]]\ngroups = []\nmay_not = "register"\n')
    code, out, _ = run(capsys, "diff", "--config", str(config), "--tests", str(only), str(old), str(new))
    assert code == 1 and "  now allowed: toggle payroll" in out
    assert out.splitlines()[-1].endswith("(1 known server(s), 1 tool(s))")


@pytest.mark.parametrize("argv, message", [
    (["nowhere", "{new}"], "not a folder, nor REV:PATH"),
    (["no-such-rev:policies", "{new}"], "git ls-tree"),
    (["{new}"], "give OLD and NEW"),
    (["--shadow", "{new}"], "no policy file or rule is in shadow mode"),
    (["{broken}", "{new}"], "the policy has problems"),
])
def test_errors_exit_2(capsys, tmp_path, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    new = folder(tmp_path, "new")
    broken = folder(tmp_path, "broken", '[groups]\nops = ["mcp:nope"]\n')
    code, out, err = run(capsys, "diff", *(arg.format(new=new, broken=broken) for arg in argv))
    assert code == 2 and message in err


def test_folders_without_tests_compare_the_named_servers(capsys, tmp_path):
    old, new = tmp_path / "old", tmp_path / "new"
    for directory in (old, new):
        directory.mkdir()
        shutil.copy(REPO / "policies" / "default.toml", directory)
    (new / "site.toml").write_text('[groups]\n"ops" = ["mcp:server:a-b:toggle"]\n')
    code, out, _ = run(capsys, "diff", "--servers", "a,a-b", str(old), str(new))
    assert code == 1 and "  now allowed: toggle a-b" in out
    assert out.splitlines()[-1].endswith("(2 known server(s), 0 tool(s))")
