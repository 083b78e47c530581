"""The JSON-lines audit file, written by a thread of its own so a slow disk never stalls a request.

`append()` only puts the record on a bounded queue; a writer thread drains it to the file every
`WRITE_INTERVAL` (a plain deque, no wake-up per record: waking a thread for every request cost
the event loop a lock hand-off and a GIL switch each time, docs/benchmarks.md).
When the queue is full — the disk has been slower than the traffic for a while — the record
is dropped and counted, never waited for: a gateway that blocks its event loop on the audit
file stops answering every client, which is worse than a gap in the file. Each run of drops
is logged once when it starts and once, with its count, when writing resumes.

`close()` flushes what is queued (bounded by a timeout, in case the disk never comes back),
so a clean stop loses no record. See docs/architecture.md, "State and who owns it".
"""

from __future__ import annotations

import json
import logging
import threading
from collections import deque
from pathlib import Path
from typing import Any, TextIO

log = logging.getLogger(__name__)

QUEUE_RECORDS = 10_000  # about 5 MB of records: minutes of traffic at the rates in docs/benchmarks.md
WRITE_INTERVAL = 0.05  # seconds between the writer's rounds: how late a line may reach the file
_dropped_in_process = 0  # every AuditLog of this process, for the metric
_dropped_lock = threading.Lock()


def dropped_records() -> int:
    """Records this process dropped because the audit file could not keep up, since it started."""
    return _dropped_in_process


class AuditLog:
    def __init__(self, path: Path, max_queued: int = QUEUE_RECORDS):
        self.path = path
        self.dropped = 0  # records lost because the queue was full, since start
        self.max_queued = max_queued
        self._queue: deque[dict[str, Any]] = deque()  # append and popleft are atomic: no lock needed
        self._stopping = threading.Event()
        self._dropping = 0  # drops in the current run, reported when writing resumes
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._write_all, name=f"audit-log {path.name}", daemon=True)
        self._thread.start()

    def append(self, record: dict[str, Any]) -> None:
        if len(self._queue) < self.max_queued:
            self._queue.append(record)
        else:
            global _dropped_in_process
            with _dropped_lock:
                _dropped_in_process += 1
            with self._lock:
                self.dropped += 1
                self._dropping += 1
                first = self._dropping == 1
            if first:
                log.error("the audit log %s is not keeping up (%d records queued): dropping records until it does",
                          self.path, self.max_queued)

    def close(self, timeout: float = 5.0) -> None:
        """Write what is queued, then stop the writer; give up after `timeout` seconds."""
        self._stopping.set()
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.error("the audit log %s did not take the last %d records within %.0f s at shutdown: they are lost",
                      self.path, len(self._queue), timeout)

    def _write_all(self) -> None:
        file = self._open()
        while True:
            stopping = self._stopping.wait(WRITE_INTERVAL)
            while self._queue:
                record = self._queue.popleft()
                try:
                    file = file or self._open()
                    if file:
                        file.write(json.dumps(record) + "\n")
                except OSError as e:
                    log.error("cannot write the audit log %s: %s", self.path, e)
                    file = self._close(file)
            if not self._queue:  # caught up: report the end of a run of drops
                self._report_resumed()
            if stopping:
                break
        self._close(file)

    def _open(self) -> TextIO | None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # Line-buffered: one write() per record, so the workers of a launcher appending to
            # the same file never interleave halves of lines.
            return open(self.path, "a", encoding="utf-8", buffering=1)
        except OSError as e:
            log.error("cannot open the audit log %s: %s", self.path, e)
            return None

    def _close(self, file: TextIO | None) -> None:
        if file:
            try:
                file.close()
            except OSError as e:
                log.error("cannot close the audit log %s: %s", self.path, e)
        return None

    def _report_resumed(self) -> None:
        with self._lock:
            dropped, self._dropping = self._dropping, 0
        if dropped:
            log.error("the audit log %s is keeping up again: %d records were dropped", self.path, dropped)
