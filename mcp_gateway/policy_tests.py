"""`policy test`: expectation files beside the policies (policies/tests/*.toml), each
checked against the policy folder with the gateway's own decision code.

A test file declares the servers (and their tools) its expectations speak about, so it is
self-contained and hyphenated server names resolve as they would in the registry:

    [servers]
    notes = ["search", "write"]
    "billing-eu" = ["refund"]

    [[expect]]
    groups = ["mcp-server-notes-tool-search"]
    may = "call"            # or may_not = "…"; see ACTIONS
    server = "notes"
    tool = "search"

Other expectations: `tools_list = [...]` (what tools/list shows on `server`), `scopes =
[...]` (exactly the scopes the groups get). Optional: `description`, `view = "shadow"`
(check the shadow view instead of the policy in force). docs/policies.md has the details.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from .policy import PolicySet
from .policy_actions import ACTIONS, SERVERLESS_ACTIONS, decide_action, describe, is_action, visible_tools
from .policy_loader import LineIndex, PolicyProblem, read_toml
from .scopes import is_server_name, is_tool_name

EXPECT_KEYS = ("groups", "may", "may_not", "tools_list", "scopes", "server", "tool", "description", "view")
CHECKS = ("may", "may_not", "tools_list", "scopes")
TOP_LEVEL_KEYS = ("servers", "expect")


class MalformedTests(Exception):
    def __init__(self, problems: list[PolicyProblem]) -> None:
        super().__init__("\n".join(map(str, problems)))
        self.problems = problems


@dataclass(frozen=True)
class Expectation:
    file: str
    line: int | None
    groups: tuple[str, ...]
    check: str  # may | may_not | tools_list | scopes
    want: Any  # the action, or the list of tools or scopes
    server: str | None
    tool: str | None
    description: str | None
    shadow: bool

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}" if self.line else self.file

    def title(self) -> str:
        if self.description:
            return self.description
        who = ", ".join(self.groups) or "(no groups)"
        view = " [shadow]" if self.shadow else ""
        if self.check in ("may", "may_not"):
            return f"{who} {self.check.replace('_', ' ')} {describe(self.want, self.server, self.tool)}{view}"
        if self.check == "tools_list":
            return f"{who} see tools {list(self.want)} on {self.server}{view}"
        return f"{who} get scopes {list(self.want)}{view}"


@dataclass(frozen=True)
class TestFile:
    path: str
    servers: dict[str, tuple[str, ...]]
    expectations: tuple[Expectation, ...]


def find_test_files(arguments: list[str], policy_dir: Path) -> list[Path]:
    """The files named, the *.toml files of the folders named, else policy_dir/tests/*.toml."""
    if not arguments:
        default = policy_dir / "tests"
        return sorted(default.glob("*.toml")) if default.is_dir() else []
    targets = [Path(argument) for argument in arguments]
    found: list[Path] = []
    for target in targets:
        found += sorted(target.glob("*.toml")) if target.is_dir() else [target]
    return found


def read_test_file(path: Path) -> TestFile:
    """Raises MalformedTests listing every problem with its file and line."""
    reader = _TestFileReader(str(path))
    result = reader.read()
    if reader.problems:
        raise MalformedTests(reader.problems)
    assert result is not None
    return result


def run_tests(files: list[TestFile], policy: PolicySet, out: TextIO) -> int:
    """Print PASS/FAIL per expectation and a summary; 0 when all pass, else 1."""
    passed = failed = 0
    for test_file in files:
        known = frozenset(test_file.servers)
        for expectation in test_file.expectations:
            view = policy.shadow or policy if expectation.shadow else policy
            problem = check(expectation, view, known, test_file.servers)
            if problem is None:
                passed += 1
                print(f"PASS {expectation.where}: {expectation.title()}", file=out)
            else:
                failed += 1
                print(f"FAIL {expectation.where}: {expectation.title()}", file=out)
                print(f"     {problem}", file=out)
    total = passed + failed
    print("-" * 80, file=out)
    print(f"PASS: {passed}/{total}", file=out)
    if failed:
        print(f"FAIL: {failed}/{total}", file=out)
    return 1 if failed else 0


def check(expectation: Expectation, policy: PolicySet, known: frozenset[str],
          servers: dict[str, tuple[str, ...]]) -> str | None:
    """None when the expectation holds, else what happened instead."""
    grant = policy.scopes_for(expectation.groups, known)
    scopes = grant.scopes
    if expectation.check == "scopes":
        want = set(expectation.want)
        if want == scopes:
            return None
        extra, missing = sorted(scopes - want), sorted(want - scopes)
        return "; ".join(part for part in (f"also got {extra}" if extra else "",
                                            f"did not get {missing}" if missing else "") if part)
    assert expectation.server is not None or expectation.want in SERVERLESS_ACTIONS
    if expectation.check == "tools_list":
        assert expectation.server is not None
        shown = visible_tools(scopes, expectation.server, servers[expectation.server])
        if shown is None:
            return f"cannot connect to {expectation.server}: tools/list is refused"
        return None if shown == sorted(expectation.want) else f"tools/list shows {shown}"
    decision = decide_action(scopes, expectation.server, expectation.want, expectation.tool)
    if decision.allowed == (expectation.check == "may"):
        return None
    if decision.allowed:
        return f"allowed by scope {decision.scope}: {decision.reason}"
    return f"refused ({decision.status}): {decision.reason}"


class _TestFileReader:
    def __init__(self, file: str) -> None:
        self.file = file
        self.index = LineIndex([])
        self.problems: list[PolicyProblem] = []

    def problem(self, line: int | None, message: str) -> None:
        self.problems.append(PolicyProblem(self.file, line, message))

    def read(self) -> TestFile | None:
        document, self.index, problem = read_toml(self.file)
        if problem is not None:
            return self.problems.append(problem)
        assert document is not None
        for key in document:
            if key not in TOP_LEVEL_KEYS:
                self.problem(self.index.keys[0].get(key), f"unknown key {key!r} (expected servers, expect)")
        servers = self.servers(document.get("servers", {}))
        expectations = self.expectations(document.get("expect"), servers)
        return TestFile(self.file, servers, tuple(expectations))

    def servers(self, table: Any) -> dict[str, tuple[str, ...]]:
        header = (self.index.headers.get(("servers", False)) or [None])[0]
        if not isinstance(table, dict):
            self.problem(header, "servers must be a table: [servers] name = [tools…]")
            return {}
        servers = {}
        for name, tools in table.items():
            line = self.index.keys.get(header or 0, {}).get(name, header)
            if not is_server_name(name):
                self.problem(line, f"[servers] {name!r}: not a server name (1-64 characters of [a-z0-9_-])")
            elif not isinstance(tools, list) or not all(isinstance(t, str) and is_tool_name(t) for t in tools):
                self.problem(line, f"[servers] {name!r}: must be an array of tool names")
            else:
                servers[name] = tuple(tools)
        return servers

    def expectations(self, table: Any, servers: dict[str, tuple[str, ...]]) -> list[Expectation]:
        headers = self.index.headers.get(("expect", True), [])
        if table is None:
            self.problem(None, "no [[expect]] entries")
            return []
        if not isinstance(table, list):
            self.problem(self.index.keys[0].get("expect"), "expect must be an array of tables: [[expect]]")
            return []
        found = []
        for number, entry in enumerate(table, 1):
            line = headers[number - 1] if number - 1 < len(headers) else None
            expectation = self.expectation(entry, line, f"[[expect]] #{number}", servers)
            if expectation is not None:
                found.append(expectation)
        return found

    def expectation(self, entry: Any, line: int | None, label: str,
                    servers: dict[str, tuple[str, ...]]) -> Expectation | None:
        def bad(key: str | None, message: str) -> None:
            where = self.index.keys.get(line or 0, {}).get(key, line) if key else line
            self.problem(where, f"{label}: {message}")

        if not isinstance(entry, dict):
            return bad(None, "must be a table")
        before = len(self.problems)
        for key in entry:
            if key not in EXPECT_KEYS:
                bad(key, f"unknown key {key!r} (expected {', '.join(EXPECT_KEYS)})")
        checks = [key for key in CHECKS if key in entry]
        if len(checks) != 1:
            bad(None, f"needs exactly one of {', '.join(CHECKS)}, found {checks or 'none'}")
        groups = entry.get("groups")
        if not isinstance(groups, list) or not all(isinstance(group, str) for group in groups):
            bad("groups", "groups must be an array of group names")
        for key in ("server", "tool", "description"):
            if key in entry and not isinstance(entry[key], str):
                bad(key, f"{key} must be a string")
        if entry.get("view", "enforce") not in ("enforce", "shadow"):
            bad("view", 'view must be "enforce" or "shadow"')
        server, tool = entry.get("server"), entry.get("tool")
        check = checks[0] if len(checks) == 1 else None
        want = entry.get(check) if check else None
        if check in ("may", "may_not"):
            if not isinstance(want, str) or not is_action(want):
                bad(check, f"{check} must be one of {', '.join(ACTIONS)} or an MCP method name, got {want!r}")
            elif want == "call" and not (isinstance(tool, str) and tool):
                bad(None, f'{check} = "call" needs tool')
            elif want != "call" and tool is not None:
                bad("tool", f"tool goes with \"call\" only, not {want!r}")
            if isinstance(want, str) and want not in SERVERLESS_ACTIONS and server is None:
                bad(None, f"{check} = {want!r} needs server")
        elif check in ("tools_list", "scopes"):
            if not isinstance(want, list) or not all(isinstance(item, str) for item in want):
                bad(check, f"{check} must be an array of strings")
            if check == "tools_list" and server is None:
                bad(None, "tools_list needs server")
        if isinstance(server, str) and server not in servers:
            bad("server", f"server {server!r} is not declared in [servers]")
        if len(self.problems) != before:
            return None
        return Expectation(self.file, line, tuple(groups), check, tuple(want) if isinstance(want, list) else want,
                           server, tool, entry.get("description"), entry.get("view") == "shadow")
