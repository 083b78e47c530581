"""One line per decision: the log, the JSON-lines audit file and the mitmweb flow comment.

The decision is the value other addons put in the flow's state (`flow_state.state_of(flow).decision`);
this addon renders it once, when the flow ends (response, error, or streamed to the end).
"""

from __future__ import annotations

import logging
import threading
import time

from mitmproxy import http

from mcp_gateway.audit_log import AuditLog

from .flow_state import final_status, state_of
from .runtime import Runtime

log = logging.getLogger("mcp_gateway.access")


class Auditor:
    def __init__(self, runtime: Runtime):
        self.runtime = runtime
        self._audit_file: AuditLog | None = None  # written off the event loop: see mcp_gateway/audit_log.py

    def response(self, flow: http.HTTPFlow) -> None:
        self._record(flow)

    def error(self, flow: http.HTTPFlow) -> None:
        self._record(flow)

    def _record(self, flow: http.HTTPFlow) -> None:
        state = state_of(flow)
        if state.audited or not state.seen:
            return
        state.audited = True
        decision, found, started, identity = state.outcome, state.route, state.started, state.identity
        record = {
            "ts": round(time.time(), 3),
            "user": getattr(identity, "username", None) or "-",
            "client": flow.client_conn.peername[0] if flow.client_conn.peername else "-",
            "http_method": flow.request.method,
            "path": (state.public_path or flow.request.path).split("?")[0],
            "server": getattr(found, "server", None) or "-",
            "method": decision.method or "-",
            "tool": decision.tool or "-",
            "decision": decision.verdict,
            "scope": decision.scope or "-",
            "reason": decision.reason,
            "status": final_status(flow),
            "latency_ms": round((time.monotonic() - started) * 1000, 1) if started else None,
        }
        if flow.error:
            record["error"] = str(flow.error.msg)[:200]
        if decision.arguments is not None:
            record["arguments"] = decision.arguments
        if identity is not None and identity.kind != "anonymous":
            record["groups"] = list(identity.groups)  # `policy replay` re-evaluates them
        if shadow := decision.shadow:
            record.update(shadow_decision=shadow.verdict, shadow_scope=shadow.scope or "-",
                          shadow_reason=shadow.reason)
        log.info("access %(decision)s user=%(user)s server=%(server)s method=%(method)s tool=%(tool)s "
                 "scope=%(scope)s status=%(status)s latency_ms=%(latency_ms)s path=%(path)s reason=%(reason)s",
                 record)
        flow.comment = (f"{record['decision']} · {record['user']} · {record['server']} {record['method']} "
                        f"{record['tool']} · scope {record['scope']} · {record['status']}")
        if shadow:
            flow.comment += f" · shadow {record['shadow_decision']} (scope {record['shadow_scope']})"
        if record["decision"] != "allowed":
            flow.marked = ":no_entry:"
        self._append(record)

    def _append(self, record: dict) -> None:
        config = self.runtime.config
        if config is None:
            return
        if self._audit_file is None or self._audit_file.path != config.audit_log:
            if self._audit_file:  # flushes the old file without holding up the event loop
                threading.Thread(target=self._audit_file.close, name="audit-log close", daemon=True).start()
            self._audit_file = AuditLog(config.audit_log)
        self._audit_file.append(record)

    def done(self) -> None:
        # At shutdown (or when a hot reload replaces this addon): write what is queued, waiting
        # at most a few seconds for a stalled disk.
        if self._audit_file:
            self._audit_file.close()
            self._audit_file = None
