"""The audit file's writer: nothing queued is lost on a clean stop, and a disk slower than the
traffic costs dropped records (counted and logged), never a blocked caller."""

from __future__ import annotations

import json
import logging
import os
import time

from mcp_gateway.audit_log import AuditLog, dropped_records
from tests.support.waiting import wait_until


def test_close_writes_every_queued_record_in_order(tmp_path):
    audit = AuditLog(tmp_path / "sub" / "audit.jsonl")
    for n in range(500):
        audit.append({"n": n})
    audit.close()
    assert [json.loads(line)["n"] for line in (tmp_path / "sub" / "audit.jsonl").read_text().splitlines()] == \
        list(range(500))


def test_a_stalled_disk_drops_what_the_queue_cannot_hold_without_blocking_and_says_so(tmp_path, caplog):
    stalled = tmp_path / "audit.fifo"
    os.mkfifo(stalled)  # opening it for writing blocks until a reader comes: a disk that hangs
    audit = AuditLog(stalled, max_queued=2)
    caplog.set_level(logging.ERROR, logger="mcp_gateway.audit_log")
    dropped_before = dropped_records()
    started = time.monotonic()
    for n in range(5):
        audit.append({"n": n})
    assert time.monotonic() - started < 1, "append() waited for the disk"
    assert audit.dropped == 3
    assert dropped_records() - dropped_before == 3  # what the metric mcp_gateway_audit_records_dropped shows
    assert [r.getMessage() for r in caplog.records].count(
        f"the audit log {stalled} is not keeping up (2 records queued): dropping records until it does") == 1

    reader = os.open(stalled, os.O_RDONLY | os.O_NONBLOCK)  # the disk comes back
    try:
        wait_until(lambda: "is keeping up again: 3 records were dropped" in caplog.text, 10,
                   "the end of the run of drops is logged")
        audit.close()
        assert [json.loads(line)["n"] for line in os.read(reader, 4096).decode().splitlines()] == [0, 1]
    finally:
        os.close(reader)
