"""Runs the plan against every path of a running stack, alternating the order of the paths
so slow drift on a shared machine does not favour one of them."""

from __future__ import annotations

import logging
import os
import signal
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Awaitable, Callable, Iterator, Sequence, TypeVar

from .cpu import machine_busy_seconds
from .load import LoadResult, measure_load
from .memory import IdleMemory, measure_idle_memory
from .plan import Plan
from .stack import Stack, Target
from .streams import StreamRun, first_event_ms, sse_transport_run, streamable_sse_run

log = logging.getLogger(__name__)

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
