"""Reading and validating policy files: a folder of *.toml, read in name order.

A file with `mode = "shadow"` at the top level, or a rule with `mode = "shadow"`, is
evaluated beside the policy in force without changing any decision (docs/policies.md,
"Shadow mode"): its entries are marked `shadow`, and LoadedPolicy.shadow_view() is the
policy as it would be if they were enforcing — the enforcing entries, minus the files a
shadow file names in `shadows = [...]`, plus every shadow entry.

Every problem is collected with its file and, where it can be found, its line, so an
operator sees all of them at once (`scripts/policy check`) and a broken edit is reported
precisely while the last good policy stays in force.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections import defaultdict
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from .policy_patterns import GroupPattern, PatternError, ScopeTemplate

TOP_LEVEL_KEYS = ("groups", "rules", "direct_scopes", "mode", "shadows")
RULE_KEYS = ("group", "scopes", "description", "mode")
MODES = ("enforce", "shadow")
DIRECT_SCOPES_KEYS = ("allow",)


@dataclass(frozen=True)
class PolicyProblem:
    file: str
    line: int | None
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}" if self.line else f"{self.file}: {self.message}"


class PolicyError(Exception):
    """One or more problems in the policy files; str() gives one "file:line: problem" per line."""

    def __init__(self, problems: list[PolicyProblem]) -> None:
        super().__init__("\n".join(str(problem) for problem in problems))
        self.problems = problems


@dataclass(frozen=True)
class PolicyEntry:
    """One [groups] mapping or one [[rules]] rule."""

    kind: Literal["mapping", "rule"]
    file: str
    line: int | None
    label: str  # '[groups] "data-science"' or "[[rules]] #2 group = 'mcp-server-{server}'"
    pattern: GroupPattern
    scopes: tuple[ScopeTemplate, ...]
    shadow: bool = False  # evaluated only in the shadow view

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}" if self.line else self.file


@dataclass(frozen=True)
class DirectScope:
    file: str
    template: ScopeTemplate
    shadow: bool = False


@dataclass(frozen=True)
class LoadedPolicy:
    files: tuple[str, ...]
    entries: tuple[PolicyEntry, ...]  # enforcing and shadow entries, in file order
    direct: tuple[DirectScope, ...] = ()
    shadowed_files: frozenset[str] = frozenset()  # enforcing files the shadow view leaves out

    @property
    def direct_scopes(self) -> tuple[ScopeTemplate, ...]:
        return tuple(scope.template for scope in self.direct if not scope.shadow)

    def enforcing(self) -> LoadedPolicy:
        """The policy in force: shadow entries left out."""
        return LoadedPolicy(self.files, tuple(e for e in self.entries if not e.shadow),
                            tuple(d for d in self.direct if not d.shadow))

    def shadow_view(self) -> LoadedPolicy | None:
        """The policy as it would be if the shadow files and rules were enforcing; None
        when there is nothing in shadow mode."""
        if not self.shadowed_files and not any(e.shadow for e in self.entries) and not any(
                d.shadow for d in self.direct):
            return None
        kept = [e for e in self.entries if e.shadow or e.file not in self.shadowed_files]
        direct = [d for d in self.direct if d.shadow or d.file not in self.shadowed_files]
        return LoadedPolicy(self.files, tuple(replace(e, shadow=False) for e in kept),
                            tuple(replace(d, shadow=False) for d in direct))


def policy_files(policy_dir: Path) -> list[Path]:
    """The policy files of `policy_dir` in name order. Hidden files (editor lock files such
    as ".#default.toml") are skipped."""
    return sorted(
        (path for path in policy_dir.glob("*.toml") if not path.name.startswith(".") and path.is_file()),
        key=lambda path: path.name,
    )


def read_policy_dir(policy_dir: Path | str) -> LoadedPolicy:
    policy_dir = Path(policy_dir)
    if not policy_dir.is_dir():
        raise PolicyError([PolicyProblem(str(policy_dir), None, "policy folder not found")])
    files, entries, direct = [], [], []
    readers = []
    for path in policy_files(policy_dir):
        reader = _FileReader(str(path))
        reader.read()
        readers.append(reader)
        files.append(str(path))
        entries += reader.entries
        direct += reader.direct_scopes
    by_name = {Path(reader.file).name: reader for reader in readers}
    shadowed = set()
    for reader in readers:
        for name in reader.shadows:
            target = by_name.get(name)
            if target is None:
                reader.problem(reader.find_key_line("shadows"), f"shadows: no policy file named {name!r} in the folder")
            elif target.shadow_file:
                reader.problem(reader.find_key_line("shadows"), f"shadows: {name!r} is itself in shadow mode")
            else:
                shadowed.add(target.file)
    problems = [problem for reader in readers for problem in reader.problems]
    if problems:
        raise PolicyError(problems)
    return LoadedPolicy(tuple(files), tuple(entries), tuple(direct), frozenset(shadowed))


_TOML_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)\s*$")


def read_toml(file: str) -> tuple[dict[str, Any] | None, LineIndex, PolicyProblem | None]:
    """A TOML file's document and the index of its lines, or the problem reading it."""
    try:
        text = Path(file).read_bytes().decode("utf-8")
    except OSError as error:
        return None, LineIndex([]), PolicyProblem(file, None, f"cannot read: {error.strerror or error}")
    except UnicodeDecodeError as error:
        return None, LineIndex([]), PolicyProblem(file, None, f"not UTF-8 (byte {error.start})")
    index = LineIndex(text.splitlines())
    try:
        return tomllib.loads(text), index, None
    except tomllib.TOMLDecodeError as error:
        message = str(error)
        position = _TOML_POSITION.search(message)
        if position:
            line: int | None = int(position.group(1))
        elif message.endswith("(at end of document)"):
            line, message = max(len(text.splitlines()), 1), message.removesuffix(" (at end of document)")
        else:
            line = getattr(error, "lineno", None)
        return None, index, PolicyProblem(file, line, f"TOML syntax error: {_TOML_POSITION.sub('', message)}")


class _FileReader:
    def __init__(self, file: str) -> None:
        self.file = file
        self.index = LineIndex([])
        self.entries: list[PolicyEntry] = []
        self.direct_scopes: list[DirectScope] = []
        self.problems: list[PolicyProblem] = []
        self.shadow_file = False
        self.shadows: list[str] = []

    def problem(self, line: int | None, message: str) -> None:
        self.problems.append(PolicyProblem(self.file, line, message))

    def read(self) -> None:
        document, self.index, problem = read_toml(self.file)
        if problem is not None:
            return self.problems.append(problem)
        assert document is not None
        self.check_document(document)

    def check_document(self, document: dict[str, Any]) -> None:
        for key in document:
            if key not in TOP_LEVEL_KEYS:
                self.problem(self.find_key_line(key), f"unknown key {key!r} (expected {', '.join(TOP_LEVEL_KEYS)})")
        self.shadow_file = self.check_mode(document, None, "mode") == "shadow"
        if "shadows" in document:
            self.check_shadows(document["shadows"])
        if "groups" in document:
            self.check_groups(document["groups"])
        if "rules" in document:
            self.check_rules(document["rules"])
        if "direct_scopes" in document:
            self.check_direct_scopes(document["direct_scopes"])

    def check_mode(self, table: dict[str, Any], line: int | None, label: str) -> str:
        mode = table.get("mode", "enforce")
        if mode not in MODES:
            self.problem(self.find_key_line("mode", after=line), f"{label}: must be \"enforce\" or \"shadow\", got {mode!r}")
            return "enforce"
        return mode

    def check_shadows(self, shadows: Any) -> None:
        line = self.find_key_line("shadows")
        if not self.shadow_file:
            return self.problem(line, 'shadows: only a file with mode = "shadow" can name the files it shadows')
        if not isinstance(shadows, list) or not all(isinstance(name, str) for name in shadows):
            return self.problem(line, "shadows: must be an array of policy file names")
        self.shadows = list(shadows)

    def check_groups(self, groups: Any) -> None:
        header = self.find_header("groups")
        if not isinstance(groups, dict):
            return self.problem(self.find_key_line("groups"), "groups must be a table: [groups]")
        for name, scopes in groups.items():
            line = self.find_key_line(name, after=header)
            label = f"[groups] {name!r}"
            if not name:
                self.problem(line, f"{label}: a group name cannot be empty")
                continue
            if "{" in name or "}" in name:
                self.problem(line, f"{label}: [groups] names are literal; put patterns with placeholders in [[rules]]")
                continue
            templates = self.scope_list(scopes, line, label, allowed_placeholders=frozenset())
            if templates is not None:
                self.entries.append(PolicyEntry("mapping", self.file, line, label, GroupPattern.parse(name), templates,
                                                self.shadow_file))

    def check_rules(self, rules: Any) -> None:
        headers = self.find_headers("rules", array=True)
        if not isinstance(rules, list):
            return self.problem(self.find_key_line("rules"), "rules must be an array of tables: [[rules]]")
        for index, rule in enumerate(rules):
            line = headers[index] if index < len(headers) else None
            label = f"[[rules]] #{index + 1}"
            if not isinstance(rule, dict):
                self.problem(line, f"{label}: a rule must be a table with group and scopes")
                continue
            self.check_rule(rule, line, label)

    def check_rule(self, rule: dict[str, Any], line: int | None, label: str) -> None:
        for key in rule:
            if key not in RULE_KEYS:
                expected = ", ".join(RULE_KEYS)
                self.problem(self.find_key_line(key, after=line), f"{label}: unknown key {key!r} (expected {expected})")
        for key in ("group", "scopes"):
            if key not in rule:
                self.problem(line, f"{label}: missing {key!r}")
        if "description" in rule and not isinstance(rule["description"], str):
            self.problem(self.find_key_line("description", after=line), f"{label}: description must be a string")
        mode = self.check_mode(rule, line, f"{label}: mode")
        if self.shadow_file and mode == "enforce" and "mode" in rule:
            self.problem(self.find_key_line("mode", after=line), f'{label}: a rule of a shadow file cannot enforce')
        group = rule.get("group")
        pattern = None
        if group is not None:
            pattern = self.group_pattern(group, self.find_key_line("group", after=line), label)
        if "scopes" not in rule:
            return
        scopes_line = self.find_key_line("scopes", after=line)
        allowed = frozenset(pattern.placeholders) if pattern else frozenset({"server", "tool"})
        templates = self.scope_list(rule["scopes"], scopes_line, label, allowed_placeholders=allowed)
        if pattern is not None and templates is not None:
            label = f"{label} group = {pattern.text!r}"
            self.entries.append(PolicyEntry("rule", self.file, line, label, pattern, templates,
                                            self.shadow_file or mode == "shadow"))

    def group_pattern(self, group: Any, line: int | None, label: str) -> GroupPattern | None:
        if not isinstance(group, str):
            self.problem(line, f"{label}: group must be a string, got {_type_name(group)}")
            return None
        try:
            return GroupPattern.parse(group)
        except PatternError as problem:
            self.problem(line, f"{label}: group {group!r}: {problem}")
            return None

    def scope_list(
        self, scopes: Any, line: int | None, label: str, allowed_placeholders: frozenset[str]
    ) -> tuple[ScopeTemplate, ...] | None:
        if not isinstance(scopes, list):
            self.problem(line, f"{label}: scopes must be an array of strings, got {_type_name(scopes)}")
            return None
        templates, ok = [], True
        for scope in scopes:
            if not isinstance(scope, str):
                self.problem(line, f"{label}: a scope must be a string, got {_type_name(scope)}")
                ok = False
                continue
            try:
                template = ScopeTemplate.parse(scope)
            except PatternError as problem:
                self.problem(line, f"{label}: {problem}")
                ok = False
                continue
            stray = template.placeholders - allowed_placeholders
            if stray:
                names = ", ".join(f"{{{name}}}" for name in sorted(stray))
                where = "its group pattern" if allowed_placeholders or "[[rules]]" in label else "a [groups] mapping"
                self.problem(line, f"{label}: scope {scope!r} uses {names}, which {where} does not bind")
                ok = False
                continue
            templates.append(template)
        return tuple(templates) if ok else None

    def check_direct_scopes(self, table: Any) -> None:
        line = self.find_header("direct_scopes")
        if not isinstance(table, dict):
            return self.problem(line, "direct_scopes must be a table: [direct_scopes]")
        for key in table:
            if key not in DIRECT_SCOPES_KEYS:
                self.problem(self.find_key_line(key, after=line), f"[direct_scopes]: unknown key {key!r} (expected allow)")
        if "allow" in table:
            allow_line = self.find_key_line("allow", after=line)
            templates = self.scope_list(table["allow"], allow_line, "[direct_scopes] allow", frozenset({"server", "tool"}))
            self.direct_scopes += (DirectScope(self.file, template, self.shadow_file) for template in templates or ())

    def find_headers(self, table: str, array: bool = False) -> list[int]:
        return self.index.headers.get((table, array), [])

    def find_header(self, table: str) -> int | None:
        headers = self.find_headers(table)
        return headers[0] if headers else None

    def find_key_line(self, key: str, after: int | None = None) -> int | None:
        """The line defining `key` in the table whose header is on line `after` (the top
        level when None); the header's own line when the key is not found."""
        return self.index.keys.get(after or 0, {}).get(key, after)


# tomllib keeps no positions, so semantic problems find their line by scanning the text
# once. Best effort: a problem without a line still names its table and entry.
_HEADER = re.compile(r"""^\s*(\[\[?)\s*("(?:[^"\\]|\\.)*"|'[^']*'|[A-Za-z0-9_-]+)\s*(?:\.[^\]]*)?\]""")
_KEY = re.compile(r"""^\s*("(?:[^"\\]|\\.)*"|'[^']*'|[A-Za-z0-9_-]+)\s*[=.]""")


class LineIndex:
    def __init__(self, lines: list[str]) -> None:
        self.headers: dict[tuple[str, bool], list[int]] = defaultdict(list)  # (table, is array) → lines
        self.keys: dict[int, dict[str, int]] = {0: {}}  # header line (0: top level) → key → line
        section = 0
        for number, text in enumerate(lines, 1):
            if header := _HEADER.match(text):
                name = _unquote(header.group(2))
                self.headers[(name, header.group(1) == "[[")].append(number)
                self.keys[0].setdefault(name, number)
                section = number
                self.keys[section] = {}
            elif key := _KEY.match(text):
                self.keys[section].setdefault(_unquote(key.group(1)), number)


def _unquote(key: str) -> str:
    if key.startswith("'"):
        return key[1:-1]
    if key.startswith('"'):
        try:
            return json.loads(key)  # TOML basic-string escapes are JSON's, give or take \e and \x
        except ValueError:
            return key[1:-1]
    return key


def _type_name(value: Any) -> str:
    return {dict: "a table", list: "an array", str: "a string", bool: "a boolean", int: "an integer", float: "a float"}.get(
        type(value), type(value).__name__
    )
