"""`scripts/bench`: the MCP Gateway's data plane against a direct connection, in one run."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import httpx

from .jsonrpc import BenchError
from .machine import describe_machine
from .plan import DEFAULT, FULL, QUICK
from .gateway_profile import profile_summary
from .report import render_text, summarize
from .runner import run_plan
from .stack import running_stack

log = logging.getLogger("bench")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scripts/bench",
        description="Benchmark the gateway's data plane against a direct connection and a plain mitmproxy "
                    "reverse proxy, in one run on loopback. Ratios matter, not absolute figures. "
                    "See docs/benchmarks.md.")
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="short run (about 40 s)")
    size.add_argument("--full", action="store_true", help="add concurrency 64 (about 3.5-4 min)")
    parser.add_argument("--rounds", type=int, metavar="N",
                        help="measure each tools/call cell N times (paths alternate order each round)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON after the table")
    parser.add_argument("--profile", action="store_true",
                        help="run the gateway under cProfile and print its hottest functions (inflates its figures)")
    parser.add_argument("--keep", metavar="DIR", type=Path,
                        help="keep configs, logs (and the profile) in DIR instead of a temporary folder")
    return parser


def _json_safe(value):
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


def _run(args: argparse.Namespace, work: Path) -> int:
    plan = QUICK if args.quick else FULL if args.full else DEFAULT
    if args.rounds:
        plan = replace(plan, rounds=args.rounds)
    machine = describe_machine()
    profile = work / "gateway.prof" if args.profile else None
    log.info("starting upstreams, plain mitmproxy and the gateway in %s", work)
    try:
        with running_stack(work, profile=profile) as stack:
            results = asyncio.run(run_plan(plan, stack))
    except (BenchError, httpx.HTTPError, AssertionError, RuntimeError, TimeoutError) as e:
        # AssertionError: tests.support.login.login_local asserts the login worked.
        log.error("benchmark failed: %s", e)
        gateway_log = work / "gateway.log"
        if gateway_log.exists():
            log.error("last lines of the gateway's log:\n%s", gateway_log.read_text(errors="replace")[-3000:])
        return 1
    summary = summarize(results, machine, profiled=profile is not None)
    print(render_text(summary))
    if args.json:
        print(json.dumps(_json_safe(summary), indent=2))
    if profile is not None:
        print()
        print(profile_summary(profile))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="bench: %(message)s", stream=sys.stderr)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        return _run(args, args.keep.resolve())
    with tempfile.TemporaryDirectory(prefix="mcp-gateway-bench-") as work:
        return _run(args, Path(work))
