"""The operator's policy tool (scripts/policy, mcp-gateway-policy).

    policy check   [--policy-dir DIR] [--servers a,b] [--config gateway.toml]
    policy scopes  [--why] GROUP...
    policy explain --server S [--tool T | --method M | --action A] GROUP...
    policy test    [--policies DIR] [TESTS...]
    policy diff    OLD NEW
    policy replay  AUDIT_FILE

Exit codes: check 0 valid / 1 problems; scopes 0; explain 0 allowed / 1 denied;
test 0 all pass / 1 a failure; diff and replay 0 no change / 1 changes;
2 for usage errors, malformed test files and a policy or config that cannot be read.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tomllib
from pathlib import Path
from typing import Any, TextIO

from .authz import Decision
from .policy import Grant, PolicySet, load_policy
from .policy_actions import REGISTRY_ACTIONS, decide_action
from .policy_loader import PolicyError
from .policy_replay import UnreadableAudit, replay
from .policy_diff import DiffProblem, diff, policy_folder, print_diff
from .policy_tests import MalformedTests, TestFile, find_test_files, read_test_file, run_tests
from .scopes import is_server_name


class UsageProblem(Exception):
    pass


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # The tool prints what groups grant nothing itself; the engine's warnings would repeat it.
    policy_log = logging.getLogger("mcp_gateway.policy")
    previous_level = policy_log.level
    policy_log.setLevel(logging.ERROR)
    try:
        return args.run(args, sys.stdout)
    except UsageProblem as problem:
        print(f"policy: {problem}", file=sys.stderr)
        return 2
    finally:
        policy_log.setLevel(previous_level)


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--policy-dir", "--policies", dest="policy_dir", help="folder of policy *.toml files (default: the config's policy_dir, else ./policies)"
    )
    common.add_argument("--servers", default="", help="comma-separated names of the known servers")
    common.add_argument(
        "--config", help="a gateway.toml (or .json): its [[servers]] names are known and its policy_dir is used"
    )

    parser = argparse.ArgumentParser(prog="policy", description="Check, list and explain MCP Gateway policies.")
    commands = parser.add_subparsers(dest="command", required=True)

    check = commands.add_parser("check", parents=[common], help="validate the policy files")
    check.set_defaults(run=_check)

    scopes = commands.add_parser("scopes", parents=[common], help="print the scopes a set of groups gets")
    scopes.add_argument("--why", action="store_true", help="also print the mapping or rule that granted each scope")
    scopes.add_argument("groups", nargs="+", metavar="GROUP")
    scopes.set_defaults(run=_scopes)

    explain = commands.add_parser("explain", parents=[common], help="explain whether groups may do something on a server")
    explain.add_argument("--server", required=True)
    what = explain.add_mutually_exclusive_group()
    what.add_argument("--tool", help="a tools/call of this tool")
    what.add_argument("--method", help="an MCP method, e.g. resources/read (default: connecting)")
    what.add_argument("--action", choices=REGISTRY_ACTIONS, help="a registry API action instead of an MCP request")
    explain.add_argument("groups", nargs="+", metavar="GROUP")
    explain.set_defaults(run=_explain)

    test = commands.add_parser("test", parents=[common], help="check the expectations of policy test files")
    test.add_argument("tests", nargs="*", metavar="TESTS",
                      help="test files or folders of them (default: the policy folder's tests/)")
    test.set_defaults(run=_test)

    diff = commands.add_parser("diff", parents=[common], help="what an edit of the policy folder changes for people")
    diff.add_argument("old", metavar="OLD", help="a policy folder, or REV:PATH (e.g. HEAD~1:policies)")
    diff.add_argument("new", metavar="NEW", nargs="?", help="a policy folder, or REV:PATH")
    diff.add_argument("--shadow", action="store_true",
                      help="compare OLD's policy in force with its shadow view (no NEW)")
    diff.add_argument("--tests", action="append", default=[], metavar="FILE",
                      help="test files whose [servers] are the known servers and tools "
                           "(default: those of the folders' tests/)")
    diff.set_defaults(run=_diff)

    replay = commands.add_parser("replay", parents=[common],
                                 help="re-evaluate an audit file's decisions; print those that would change")
    replay.add_argument("audit_file", metavar="AUDIT_FILE")
    replay.add_argument("--shadow", action="store_true",
                        help="replay against the shadow view (as if the shadow files and rules were enforcing)")
    replay.set_defaults(run=_replay)
    return parser


# --- commands -------------------------------------------------------------------------------


def _check(args: argparse.Namespace, out: TextIO) -> int:
    policy_dir, servers = _context(args)
    try:
        policy = load_policy(policy_dir)
    except PolicyError as error:
        for problem in error.problems:
            print(problem, file=out)
        print(f"{len(error.problems)} problem(s) in {policy_dir}", file=out)
        return 1
    for warning in policy.lint(servers) if servers else []:
        print(f"warning: {warning}", file=out)
    mappings = sum(1 for entry in policy.entries if entry.kind == "mapping")
    shadow = sum(1 for entry in policy.loaded.entries if entry.shadow)
    in_shadow = f", {shadow} in shadow mode" if policy.shadow is not None else ""
    print(
        f"ok: {len(policy.files)} file(s), {mappings} mapping(s), {len(policy.entries) - mappings} rule(s)"
        f"{in_shadow}, {len(servers)} known server(s)",
        file=out,
    )
    return 0


def _scopes(args: argparse.Namespace, out: TextIO) -> int:
    policy, servers = _loaded(args)
    grant = policy.scopes_for(args.groups, servers)
    for scope in sorted(grant.scopes):
        print(scope, file=out)
        if args.why:
            for source in grant.sources[scope]:
                print(f"    granted by {source}", file=out)
    _print_unresolved(grant, args.groups, sys.stderr)
    return 0


def _explain(args: argparse.Namespace, out: TextIO) -> int:
    policy, servers = _loaded(args)
    server = args.server
    if not is_server_name(server):
        raise UsageProblem(f"--server {server!r} is not a server name (1-64 characters of [a-z0-9_-])")
    if servers and server not in servers:
        print(f"note: {server!r} is not among the known servers; pattern rules will not bind to it", file=out)
    else:
        servers = servers | {server}
    grant = policy.scopes_for(args.groups, servers)
    decision = _decide(grant.scopes, server, args)
    _print_decision(decision, grant, server, out)
    _print_unresolved(grant, args.groups, out)
    return 0 if decision.allowed else 1


def _decide(scopes: frozenset[str], server: str, args: argparse.Namespace) -> Decision:
    if args.action:
        return decide_action(scopes, server, args.action)
    if args.tool is not None:
        return decide_action(scopes, server, "call", args.tool)
    if args.method:
        if args.method == "tools/call":
            raise UsageProblem("use --tool T to explain a tools/call")
        return decide_action(scopes, server, args.method)
    return decide_action(scopes, server, "connect")


def _print_decision(decision: Decision, grant: Grant, server: str, out: TextIO) -> None:
    if decision.allowed:
        print(f"ALLOWED: {decision.reason}", file=out)
        print(f"  deciding scope: {decision.scope or '(none needed)'}", file=out)
        for source in grant.sources.get(decision.scope or "", ()):
            print(f"  granted by {source}", file=out)
        return
    print(f"DENIED ({decision.status}): {decision.reason}", file=out)
    print(f"  missing scope: {decision.scope}", file=out)
    on_server = sorted(scope for scope in grant.scopes if scope.startswith(f"mcp:server:{server}:"))
    print(f"  scopes held on {server!r}: {', '.join(on_server) or 'none'}", file=out)
    others = sorted(scope for scope in grant.scopes if scope not in on_server)
    if others:
        print(f"  other scopes held: {', '.join(others)}", file=out)


def _print_unresolved(grant: Grant, groups: list[str], out: TextIO) -> None:
    granting = {source.group for sources in grant.sources.values() for source in sources}
    for group in dict.fromkeys(groups):
        if group in grant.unresolved:
            print(f"  group {group!r} grants no scope: {grant.unresolved[group]}", file=out)
        elif group not in granting:
            print(f"  group {group!r} matches no mapping or rule", file=out)


def _test(args: argparse.Namespace, out: TextIO) -> int:
    policy, _ = _loaded(args)
    policy_dir, _ = _context(args)
    paths = find_test_files(args.tests, policy_dir)
    if not paths:
        raise UsageProblem(f"no test files (*.toml) in {', '.join(args.tests) or policy_dir / 'tests'}")
    return run_tests(_read_tests(paths), policy, out)


def _diff(args: argparse.Namespace, out: TextIO) -> int:
    _, servers = _context(args)
    if args.shadow == (args.new is not None):
        raise UsageProblem("give OLD and NEW, or one folder with --shadow")
    try:
        with policy_folder(args.old) as old_dir, policy_folder(args.new or args.old) as new_dir:
            old, new = _load(old_dir), _load(new_dir)
            if args.shadow:
                if old.shadow is None:
                    raise UsageProblem("--shadow: no policy file or rule is in shadow mode")
                new = old.shadow
            registry: dict[str, set[str]] = {server: set() for server in servers}
            tests = [Path(name) for name in args.tests] or find_test_files([], old_dir) + find_test_files([], new_dir)
            for test_file in _read_tests(tests):
                for server, tools in test_file.servers.items():
                    registry.setdefault(server, set()).update(tools)
            known = {server: sorted(tools) for server, tools in registry.items()}
            new_name = f"{args.old} (shadow view)" if args.shadow else args.new
            return print_diff(diff(old, new, known), args.old, new_name, known, out)
    except DiffProblem as problem:
        raise UsageProblem(str(problem)) from None


def _load(policy_dir: Path) -> PolicySet:
    try:
        return load_policy(policy_dir)
    except PolicyError as error:
        raise UsageProblem(f"the policy has problems (run `policy check`):\n{error}") from None


def _read_tests(paths: list[Path]) -> list[TestFile]:
    problems, files = [], []
    for path in paths:
        try:
            files.append(read_test_file(path))
        except MalformedTests as error:
            problems += error.problems
    if problems:
        raise UsageProblem("malformed test file:\n" + "\n".join(map(str, problems)))
    return files


def _replay(args: argparse.Namespace, out: TextIO) -> int:
    policy, servers = _loaded(args)
    if args.shadow:
        if policy.shadow is None:
            raise UsageProblem("--shadow: no policy file or rule is in shadow mode")
        policy = policy.shadow
    try:
        return replay(Path(args.audit_file), policy, servers, out)
    except UnreadableAudit as error:
        raise UsageProblem(str(error)) from None


# --- context: policy folder and known servers -----------------------------------------------


def _loaded(args: argparse.Namespace) -> tuple[PolicySet, frozenset[str]]:
    policy_dir, servers = _context(args)
    return _load(policy_dir), servers


def _context(args: argparse.Namespace) -> tuple[Path, frozenset[str]]:
    servers = {name.strip() for name in args.servers.split(",") if name.strip()}
    policy_dir = Path(args.policy_dir) if args.policy_dir else None
    if args.config:
        config_path = Path(args.config)
        config = _read_config(config_path)
        servers |= _config_server_names(config, config_path)
        if policy_dir is None:
            configured = config.get("gateway", {}).get("policy_dir", "policies")
            if not isinstance(configured, str):
                raise UsageProblem(f"{config_path}: [gateway] policy_dir must be a string")
            policy_dir = config_path.parent / configured
    bad = sorted(name for name in servers if not is_server_name(name))
    if bad:
        raise UsageProblem(f"not server names (1-64 characters of [a-z0-9_-]): {', '.join(map(repr, bad))}")
    return policy_dir or Path("policies"), frozenset(servers)


def _read_config(path: Path) -> dict[str, Any]:
    try:
        raw = path.read_bytes()
        config = json.loads(raw) if path.suffix == ".json" else tomllib.loads(raw.decode("utf-8"))
    except OSError as error:
        raise UsageProblem(f"{path}: cannot read: {error.strerror or error}") from None
    except (ValueError, UnicodeDecodeError) as error:  # TOMLDecodeError and JSONDecodeError are ValueErrors
        raise UsageProblem(f"{path}: {error}") from None
    if not isinstance(config, dict):
        raise UsageProblem(f"{path}: expected a table at the top level")
    return config


def _config_server_names(config: dict[str, Any], path: Path) -> set[str]:
    servers = config.get("servers", [])
    if not isinstance(servers, list) or not all(isinstance(entry, dict) for entry in servers):
        raise UsageProblem(f"{path}: servers must be an array of tables: [[servers]]")
    names = [entry.get("name") for entry in servers]
    if not all(isinstance(name, str) for name in names):
        raise UsageProblem(f"{path}: every [[servers]] entry needs a name")
    return set(names)


if __name__ == "__main__":
    sys.exit(main())
