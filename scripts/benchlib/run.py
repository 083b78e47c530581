"""`scripts/bench`: the command line, the plans (--quick and the default) and the phases run
against every path of a running stack."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import os
import signal
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Awaitable, Callable, Iterator, Sequence, TypeVar

import httpx

from .client import BenchError, LoadResult, machine_busy_seconds, measure_load
from .report import render_text, summarize
from .servers import profile_summary
from .stack import Stack, Target, describe_machine, running_stack
from .streams import (IdleMemory, StreamRun, fds_needed, first_event_ms, measure_idle_memory,
                      raise_open_files_limit, sse_transport_run, streamable_sse_run)


# -- the plans: how long and how often each measurement runs ---------------------------------------

@dataclass(frozen=True)
class Plan:
    name: str
    concurrencies: tuple[int, ...]
    duration: float           # seconds measured per (concurrency, path, round)
    warmup: float             # seconds of load before each measuring window opens
    rounds: int               # paths alternate order each round: forwards, then reversed
    stream_runs: int          # countdown calls per transport and path
    first_event_samples: int  # fresh SSE streams opened per path
    idle_streams: int         # SSE streams held open at once per proxy for the memory figure
    lean_mitmproxy: bool      # add the "mitmproxy floor" row: the launcher's master with no gateway addons
    steps: int = 20
    interval: float = 0.05


QUICK = Plan("quick", (1, 16, 64), duration=0.8, warmup=0.2, rounds=1, stream_runs=1, first_event_samples=10,
             idle_streams=200, lean_mitmproxy=False, steps=10)
DEFAULT = Plan("default", (1, 16, 64), duration=5.0, warmup=1.0, rounds=2, stream_runs=6, first_event_samples=30,
               idle_streams=1000, lean_mitmproxy=True)


# -- the phases, alternating the order of the paths so slow drift on a shared host favours none ----

T = TypeVar("T")
WARMUP_STREAMS = 20
STREAM_TRANSPORTS: dict[str, Callable[[Target, int, float], Awaitable[StreamRun]]] = {
    "sse": sse_transport_run,
    "streamable-sse": streamable_sse_run,
}


@dataclass
class StreamStats:
    latencies_ms: list[float] = field(default_factory=list)
    intervals_ms: list[float] = field(default_factory=list)
    calls_ms: list[float] = field(default_factory=list)

    def add(self, run: StreamRun) -> None:
        self.latencies_ms += run.latencies_ms
        self.intervals_ms += run.intervals_ms
        self.calls_ms.append(run.call_ms)


@dataclass
class Results:
    plan: Plan
    targets: list[str]
    load: dict[tuple[int, str], LoadResult] = field(default_factory=dict)
    streams: dict[tuple[str, str], StreamStats] = field(default_factory=dict)
    first_event_ms: dict[str, list[float]] = field(default_factory=dict)
    busy_cpus: dict[str, float] = field(default_factory=dict)   # host CPUs in use, per section: a noise gauge
    idle_memory: list[IdleMemory] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def alternating(targets: Sequence[T], round_index: int) -> list[T]:
    return list(targets) if round_index % 2 == 0 else list(reversed(targets))


@contextmanager
def profiling(target: Target) -> Iterator[None]:
    """Switch the target's profiler on for the block (see profiled_launcher.py)."""
    if target.profiled and target.proxy_pid:
        os.kill(target.proxy_pid, signal.SIGUSR1)
    try:
        yield
    finally:
        if target.profiled and target.proxy_pid:
            os.kill(target.proxy_pid, signal.SIGUSR2)


async def _idle_memory(plan: Plan, stack: Stack, results: Results) -> None:
    """First, before the load phases grow the heaps: a few streams as warm-up, then the measured ones."""
    for target in (t for t in stack.targets if t.idle_memory):
        await measure_idle_memory(target, WARMUP_STREAMS)
        measured = await measure_idle_memory(target, plan.idle_streams)
        log.info("idle SSE streams %-14s %d of %d open: %.1f KiB per stream%s", target.name, measured.opened,
                 measured.wanted, measured.kib_per_stream,
                 f" (first error: {measured.first_error})" if measured.first_error else "")
        results.idle_memory.append(measured)


async def _tools_call(plan: Plan, stack: Stack, results: Results) -> None:
    for concurrency in plan.concurrencies:
        for round_index in range(plan.rounds):
            for target in alternating(stack.targets, round_index):
                with profiling(target):
                    measured = await measure_load(target, stack.json_upstream_pid, concurrency, plan.warmup,
                                                  plan.duration)
                log.info("tools/call c=%-3d %-14s round %d: %7.1f req/s, %d errors, others on the host %.2f CPUs",
                         concurrency, target.name, round_index + 1, measured.requests / measured.seconds,
                         measured.errors, measured.others_cpu / measured.seconds)
                cell = results.load.setdefault((concurrency, target.name), LoadResult(target.name, concurrency))
                cell.merge(measured)


async def _stream_events(plan: Plan, stack: Stack, results: Results) -> None:
    busy, started = machine_busy_seconds(), time.monotonic()
    for transport, run in STREAM_TRANSPORTS.items():
        for run_index in range(plan.stream_runs):
            for target in alternating(stack.targets, run_index):
                stream = await run(target, plan.steps, plan.interval)
                results.streams.setdefault((transport, target.name), StreamStats()).add(stream)
        log.info("%s countdowns done (%d per path)", transport, plan.stream_runs)
    results.busy_cpus["streams"] = (machine_busy_seconds() - busy) / (time.monotonic() - started)


async def _first_events(plan: Plan, stack: Stack, results: Results) -> None:
    busy, started = machine_busy_seconds(), time.monotonic()
    for sample in range(plan.first_event_samples):
        for target in alternating(stack.targets, sample):
            results.first_event_ms.setdefault(target.name, []).append(await first_event_ms(target))
    log.info("first SSE events done (%d per path)", plan.first_event_samples)
    results.busy_cpus["first_event"] = (machine_busy_seconds() - busy) / (time.monotonic() - started)


async def run_plan(plan: Plan, stack: Stack) -> Results:
    results = Results(plan, [t.name for t in stack.targets], skipped=list(stack.skipped))
    for phase in (_idle_memory, _tools_call, _stream_events, _first_events):
        await phase(plan, stack, results)
    return results


# -- the command line ------------------------------------------------------------------------------

log = logging.getLogger("bench")


class _ElapsedFormatter(logging.Formatter):
    """Seconds since start on every progress line: where a run spends its time."""

    def format(self, record: logging.LogRecord) -> str:
        record.elapsed = record.relativeCreated / 1000
        return super().format(record)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scripts/bench",
        description="Benchmark the gateway's data plane (stock mitmdump and the production launcher with 1 and 2 "
                    "workers) against a direct connection and nginx, in one run on loopback. "
                    "See docs/benchmarks.md.")
    parser.add_argument("--quick", action="store_true", help="short run (under a minute)")
    parser.add_argument("--rounds", type=int, metavar="N",
                        help="measure each tools/call cell N times (paths alternate order each round)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON after the table")
    parser.add_argument("--profile", action="store_true",
                        help="run launcher-1 under cProfile and print its hottest functions (inflates its figures)")
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
    plan = QUICK if args.quick else DEFAULT
    if args.rounds:
        plan = replace(plan, rounds=args.rounds)
    machine = describe_machine()
    profile = work / "launcher-1.prof" if args.profile else None
    fd_limit = raise_open_files_limit(fds_needed(plan.idle_streams))
    log.info("starting upstreams, nginx and the gateways in %s", work)
    try:
        with running_stack(work, plan, profile=profile) as stack:
            results = asyncio.run(run_plan(plan, stack))
    except (BenchError, httpx.HTTPError, AssertionError, RuntimeError, OSError) as e:
        # AssertionError: tests.support.login.login_local asserts the login worked.
        log.error("benchmark failed: %s", e)
        for gateway_log in sorted(work.glob("*/gateway.log")):
            log.error("last lines of %s:\n%s", gateway_log, gateway_log.read_text(errors="replace")[-2000:])
        return 1
    machine["bench_open_files_limit"] = fd_limit
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
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_ElapsedFormatter("bench %(elapsed)5.1fs: %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        return _run(args, args.keep.resolve())
    with tempfile.TemporaryDirectory(prefix="mcp-gateway-bench-") as work:
        return _run(args, Path(work))


