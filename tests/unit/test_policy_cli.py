import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mcp_gateway.policy_cli import main

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def policy_dir(tmp_path):
    folder = tmp_path / "policies"
    folder.mkdir()
    shutil.copy(REPO / "policies" / "default.toml", folder)
    (folder / "teams.toml").write_text('[groups]\n"data-science" = ["mcp:registry:read", "mcp:server:notebooks:execute"]\n')
    return folder


def run(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_check_valid_policy(capsys, policy_dir):
    code, out, _ = run(capsys, "check", "--policy-dir", str(policy_dir), "--servers", "a,a-b")
    assert code == 0
    assert "ok: 2 file(s), 1 mapping(s), 7 rule(s), 2 known server(s)" in out


def test_check_reports_every_problem_with_file_and_line(capsys, policy_dir):
    (policy_dir / "zz.toml").write_text('[groups]\nops = ["mcp:server:a:write"]\n\n[[rules]]\ngroup = "x-{srv}"\nscopes = []\n')
    (policy_dir / "broken.toml").write_text("[groups\n")
    code, out, _ = run(capsys, "check", "--policy-dir", str(policy_dir))
    assert code == 1
    lines = out.splitlines()
    assert lines[0].startswith(f"{policy_dir / 'broken.toml'}:1: TOML syntax error")
    assert lines[1].startswith(f"{policy_dir / 'zz.toml'}:2: [groups] 'ops': invalid scope 'mcp:server:a:write'")
    assert lines[2].startswith(f"{policy_dir / 'zz.toml'}:5: [[rules]] #1: group 'x-{{srv}}': unknown placeholder")
    assert lines[3] == f"3 problem(s) in {policy_dir}"


def test_check_warns_about_shadowed_server_names(capsys, policy_dir):
    code, out, _ = run(capsys, "check", "--policy-dir", str(policy_dir), "--servers", "a,a-admin")
    assert code == 0
    assert "warning: " in out and "'mcp-server-a-admin' for server 'a-admin' resolves to server=a" in out


def test_check_takes_servers_and_policy_dir_from_the_config(capsys, tmp_path, policy_dir):
    config = tmp_path / "gateway.toml"
    config.write_text('[gateway]\npolicy_dir = "policies"\n\n[[servers]]\nname = "a"\nurl = "http://x"\n\n'
                      '[[servers]]\nname = "a-admin"\nurl = "http://y"\n')
    code, out, _ = run(capsys, "check", "--config", str(config))
    assert code == 0 and "2 known server(s)" in out and "warning:" in out


def test_check_missing_folder(capsys, tmp_path):
    code, out, _ = run(capsys, "check", "--policy-dir", str(tmp_path / "none"))
    assert code == 1 and "policy folder not found" in out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["check", "--servers", "Bad Name"], "not server names"),
        (["check", "--config", "/nonexistent/gateway.toml"], "cannot read"),
        (["explain", "--server", "A", "mcp-admin"], "is not a server name"),
        (["explain", "--server", "a", "--method", "tools/call", "mcp-admin"], "--tool"),
    ],
)
def test_usage_problems_exit_2(capsys, policy_dir, argv, message):
    code, _, err = run(capsys, *argv[:1], "--policy-dir", str(policy_dir), *argv[1:])
    assert code == 2 and message in err


def test_bad_config_exits_2(capsys, tmp_path, policy_dir):
    config = tmp_path / "gateway.toml"
    config.write_text("[[servers]]\nurl = 'http://x'\n")
    code, _, err = run(capsys, "scopes", "--config", str(config), "--policy-dir", str(policy_dir), "mcp-admin")
    assert code == 2 and "needs a name" in err


def test_scopes(capsys, policy_dir):
    code, out, err = run(capsys, "scopes", "--policy-dir", str(policy_dir), "--servers", "a,a-b",
                         "mcp-server-a-b-admin", "data-science", "mcp-server-zz", "Domain Users")
    assert code == 0
    assert out.splitlines() == ["mcp:registry:read", "mcp:server:a-b:edit", "mcp:server:a-b:execute",
                                "mcp:server:a-b:read", "mcp:server:a-b:toggle", "mcp:server:notebooks:execute"]
    assert "'mcp-server-zz' grants no scope: fits a pattern rule, but names no known server" in err
    assert "'Domain Users' matches no mapping or rule" in err


def test_scopes_why(capsys, policy_dir):
    code, out, _ = run(capsys, "scopes", "--why", "--policy-dir", str(policy_dir), "--servers", "a-b", "mcp-server-a-b")
    assert code == 0
    assert "mcp:server:a-b:read\n    granted by " in out
    assert "default.toml:21: [[rules]] #3 group = 'mcp-server-{server}' via group 'mcp-server-a-b' (server=a-b)" in out


def test_scopes_with_a_broken_policy_exits_2(capsys, policy_dir):
    (policy_dir / "zz.toml").write_text("nonsense = 1\n")
    code, _, err = run(capsys, "scopes", "--policy-dir", str(policy_dir), "mcp-admin")
    assert code == 2 and "zz.toml:1: unknown key 'nonsense'" in err


EXPLAIN = [
    # (arguments, exit code, lines the output must contain)
    (["--server", "a-b", "--tool", "echo", "mcp-server-a-b-tool-echo"], 0,
     ["ALLOWED: tools/call of 'echo' on server 'a-b' allowed", "deciding scope: mcp:server:a-b:tool:echo:execute",
      "granted by ", "via group 'mcp-server-a-b-tool-echo' (server=a-b, tool=echo)"]),
    (["--server", "a-b", "--tool", "rm", "mcp-server-a-b-tool-echo", "mcp-user"], 1,
     ["DENIED (403): tools/call of 'rm' on server 'a-b' needs scope mcp:server:a-b:tool:rm:execute (group mcp-server-a-b-tool-rm) or mcp:server:a-b:execute (group mcp-server-a-b)",
      "missing scope: mcp:server:a-b:tool:rm:execute", "scopes held on 'a-b': mcp:server:a-b:tool:echo:execute",
      "other scopes held: mcp:registry:read"]),
    (["--server", "a-b", "--method", "resources/read", "mcp-server-a-b"], 0, ["deciding scope: mcp:server:a-b:execute"]),
    (["--server", "a-b", "--method", "resources/read", "mcp-server-a-b-tool-echo"], 1,
     ["missing scope: mcp:server:a-b:execute"]),
    (["--server", "a-b", "--method", "tools/list", "mcp-server-a-b-tool-echo"], 0, ["ALLOWED"]),
    (["--server", "a-b", "mcp-server-a-b-toggle"], 1, ["DENIED (403): connect on server 'a-b'", "missing scope: mcp:server:a-b:read"]),
    (["--server", "a-b", "--action", "toggle", "mcp-server-a-b-toggle"], 0, ["deciding scope: mcp:server:a-b:toggle"]),
    (["--server", "a-b", "--action", "delete", "mcp-server-a-b-admin"], 1, ["missing scope: mcp:registry:admin"]),
    (["--server", "a-b", "--tool", "echo", "mcp-admin"], 0, ["deciding scope: mcp:registry:admin", "via group 'mcp-admin'"]),
    (["--server", "notebooks", "--tool", "x", "data-science"], 0, ["teams.toml:2: [groups] 'data-science'"]),
    (["--server", "a-b", "--tool", "echo", "mcp-server-zz", "nobody"], 1,
     ["group 'mcp-server-zz' grants no scope: fits a pattern rule, but names no known server",
      "group 'nobody' matches no mapping or rule"]),
]


@pytest.mark.parametrize("argv, code, expected", EXPLAIN)
def test_explain(capsys, policy_dir, argv, code, expected):
    result, out, _ = run(capsys, "explain", "--policy-dir", str(policy_dir), "--servers", "a,a-b,notebooks", *argv)
    assert result == code, out
    for line in expected:
        assert line in out, out


def test_explain_an_unknown_server_says_so(capsys, policy_dir):
    code, out, _ = run(capsys, "explain", "--policy-dir", str(policy_dir), "--servers", "a", "--server", "b", "mcp-server-b")
    assert code == 1 and "not among the known servers" in out


def test_explain_without_known_servers_knows_the_one_asked_about(capsys, policy_dir):
    code, out, _ = run(capsys, "explain", "--policy-dir", str(policy_dir), "--server", "a-b", "--tool", "t", "mcp-server-a-b")
    assert code == 0 and "mcp:server:a-b:execute" in out


def test_script_wrapper_runs_from_anywhere(tmp_path, policy_dir):
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "policy"), "check", "--policy-dir", str(policy_dir)],
        cwd=tmp_path, capture_output=True, text=True, timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok: ")
    broken = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "policy"), "scopes", "--policy-dir", str(tmp_path / "none"), "g"],
        cwd=tmp_path, capture_output=True, text=True, timeout=30,
    )
    assert broken.returncode == 2 and "policy folder not found" in broken.stderr
