"""The worked example of docs/policies.md ("A reviewed change, step by step"), run through
scripts/policy as a reviewer would: its files are taken from the page, and each command's
output must be what the page shows."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SECTION = (REPO / "docs" / "policies.md").read_text().split("### A reviewed change, step by step")[1]
TOML = re.findall(r"```toml\n(.*?)```", SECTION, re.S)
CONSOLE = re.findall(r"```console\n(.*?)```", SECTION, re.S)
AUDIT = (
    '{"user": "dana", "server": "notes", "http_method": "POST", "method": "tools/call", "tool": "write", '
    '"decision": "allowed", "scope": "mcp:server:notes:execute", "status": 200, "groups": ["mcp-server-notes"]}\n'
    '{"user": "dana", "server": "notes", "http_method": "POST", "method": "tools/call", "tool": "search", '
    '"decision": "allowed", "scope": "mcp:server:notes:execute", "status": 200, "groups": ["mcp-server-notes"]}\n')


@pytest.fixture
def example(tmp_path):
    (tmp_path / "policies" / "tests").mkdir(parents=True)
    shutil.copy(REPO / "policies" / "default.toml", tmp_path / "policies")
    change, tests = TOML
    (tmp_path / "policies" / "60-notes.toml").write_text(change)
    (tmp_path / "policies" / "tests" / "notes.toml").write_text(tests)
    (tmp_path / "audit.jsonl").write_text(AUDIT)
    return tmp_path


def shown(block: str) -> tuple[list[str], str]:
    """The command of a console block (without `$ scripts/policy`) and the output it shows."""
    first, _, output = block.partition("\n")
    return first.removeprefix("$ scripts/policy ").split(), output


@pytest.mark.parametrize("index, exit_code", [(0, 0), (1, 1), (2, 1)])
def test_each_step_prints_what_the_page_shows(example, index, exit_code):
    argv, output = shown(CONSOLE[index])
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "policy"), *argv], cwd=example,
                          capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout) == (exit_code, output), done.stderr


def test_enforcing_is_deleting_the_shadow_lines(example):
    policies = example / "policies"
    for path in (policies / "60-notes.toml", policies / "tests" / "notes.toml"):
        path.write_text("".join(line for line in path.read_text().splitlines(keepends=True)
                                if line not in ('mode = "shadow"\n', 'view = "shadow"\n')))
    policy = [sys.executable, str(REPO / "scripts" / "policy")]
    done = subprocess.run([*policy, "test"], cwd=example, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.endswith("PASS: 3/3\n")
    _, shadow_diff = shown(CONSOLE[1])
    old = example / "before"
    old.mkdir()
    shutil.copy(REPO / "policies" / "default.toml", old)
    done = subprocess.run([*policy, "diff", "--tests", "policies/tests/notes.toml", "before", "policies"],
                          cwd=example, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    # The same two groups as the shadow diff of step 2.
    assert done.stdout.splitlines()[2:] == shadow_diff.splitlines()[2:]
