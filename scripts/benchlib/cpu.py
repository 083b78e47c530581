"""CPU time of a process and its live descendants, read from /proc (Linux)."""

from __future__ import annotations

import os
from pathlib import Path

TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")
# Fields after the command name: state is field 3 of stat(5), so ppid (4), utime (14) and
# stime (15) sit at these offsets.
PPID, UTIME, STIME = 1, 11, 12


def _stat_fields(pid: int | str) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses: split after its last ")".
    return text[text.rindex(")") + 2:].split()


def descendants(pid: int) -> set[int]:
    """Scan /proc: kernels built without CONFIG_PROC_CHILDREN have no children lists."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat_fields(entry.name)
            if fields is not None:
                parents[int(entry.name)] = int(fields[PPID])
    found = {pid}
    grew = True
    while grew:
        new = {child for child, parent in parents.items() if parent in found and child not in found}
        found |= new
        grew = bool(new)
    return found


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process, all its threads included."""
    fields = _stat_fields(pid)
    return 0.0 if fields is None else (int(fields[UTIME]) + int(fields[STIME])) / TICKS_PER_SECOND


def tree_cpu_seconds(pid: int) -> float:
    """utime + stime of `pid` and its live descendants (the gateway and its login app)."""
    return sum(cpu_seconds(member) for member in descendants(pid))


def own_cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def machine_busy_seconds() -> float:
    """CPU time every process on the host has used (all CPUs, steal included), from /proc/stat."""
    user, nice, system, _idle, _iowait, irq, softirq, steal = (
        int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9])
    return (user + nice + system + irq + softirq + steal) / TICKS_PER_SECOND
