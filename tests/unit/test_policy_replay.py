"""`policy replay AUDIT_FILE`: recorded decisions re-evaluated against a policy folder.
(tests/e2e/test_policy_shadow.py replays an audit file written by a real gateway.)"""

import json
import shutil
from pathlib import Path

import pytest

from tests.unit.test_policy_cli import run

REPO = Path(__file__).resolve().parents[2]


def record(**fields):
    base = {"user": "dana", "server": "notes", "http_method": "POST", "method": "tools/call", "tool": "search",
            "decision": "allowed", "scope": "mcp:server:notes:execute", "status": 200, "groups": ["mcp-server-notes"]}
    return {**base, **fields}


RECORDS = [
    record(),                                                                    # line 1: call, allowed
    record(method="-", tool="-", http_method="GET", scope="mcp:server:notes:read"),  # 2: connect
    record(method="tools/list,tools/call", tool="search,write"),                  # 3: a batch
    record(user="tina", groups=["mcp-server-notes-tool-search"], tool="write", decision="refused", status=403,
           scope="mcp:server:notes:tool:write:execute"),                         # 4: refused call
    record(groups=None),                                                          # 5: older record
    record(server="-", scope="-", method="-", status=401, decision="refused"),   # 6: not a policy decision
    record(decision="refused", status=400, scope="-"),                            # 7: unreadable body
]


@pytest.fixture
def setup(tmp_path):
    policies = tmp_path / "policies"
    policies.mkdir()
    shutil.copy(REPO / "policies" / "default.toml", policies)
    audit = tmp_path / "audit.jsonl"
    lines = [json.dumps({k: v for k, v in r.items() if v is not None}) for r in RECORDS]
    audit.write_text("\n".join(lines) + "\nnot json\n")
    return policies, audit


def test_the_same_policy_changes_nothing(capsys, setup):
    policies, audit = setup
    code, out, _ = run(capsys, "replay", str(audit), "--policies", str(policies))
    assert code == 0
    assert out.splitlines() == ["4 decision(s) replayed, 0 would change; skipped: 1 not a JSON object, "
                                "2 not a policy decision on a server, 1 without groups (recorded by an older gateway)"]


def test_a_tightening_and_a_loosening_are_printed(capsys, setup):
    policies, audit = setup
    (policies / "site.toml").write_text('[groups]\n"mcp-server-notes" = ["mcp:server:notes:tool:search:execute"]\n'
                                        '"mcp-server-notes-tool-search" = ["mcp:server:notes:execute"]\n')
    code, out, _ = run(capsys, "replay", str(audit), "--policies", str(policies))
    assert code == 1
    assert out.splitlines() == [
        f'{audit}:3: dana ["mcp-server-notes"] tools/list,tools/call search,write on notes: allowed → refused '
        "(needs mcp:server:notes:tool:write:execute)",
        f'{audit}:4: tina ["mcp-server-notes-tool-search"] tools/call write on notes: refused → allowed '
        "(by scope mcp:server:notes:execute)",
        "4 decision(s) replayed, 2 would change; skipped: 1 not a JSON object, 2 not a policy decision on a server, "
        "1 without groups (recorded by an older gateway)"]


def test_replay_against_the_shadow_view(capsys, setup):
    policies, audit = setup
    (policies / "next.toml").write_text('mode = "shadow"\nshadows = ["default.toml"]\n')
    assert run(capsys, "replay", str(audit), "--policies", str(policies))[0] == 0
    code, out, _ = run(capsys, "replay", "--shadow", str(audit), "--policies", str(policies))
    assert code == 1 and ", 3 would change" in out  # without default.toml dana loses everything


@pytest.mark.parametrize("argv, message", [
    (["{missing}"], "cannot read"),
    (["--shadow", "{audit}"], "no policy file or rule is in shadow mode"),
])
def test_errors_exit_2(capsys, setup, tmp_path, argv, message):
    policies, audit = setup
    code, _, err = run(capsys, "replay", "--policies", str(policies),
                       *(a.format(missing=tmp_path / "none.jsonl", audit=audit) for a in argv))
    assert code == 2 and message in err
