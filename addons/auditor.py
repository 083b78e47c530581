"""One line per decision: the log, the JSON-lines audit file and the mitmweb flow comment.

The decision is a value other addons put in `flow.metadata["gateway.decision"]`; this
addon renders it once, when the flow ends (response, error, or streamed to the end).
"""

from __future__ import annotations

import logging
import threading
import time

from mitmproxy import http

from mcp_gateway.audit_log import AuditLog

from .router import ROUTE, STARTED
from .runtime import Runtime

log = logging.getLogger("mcp_gateway.access")

DECISION = "gateway.decision"
SHADOW = "gateway.shadow"
IDENTITY = "gateway.identity"


class Auditor:
    def __init__(self, runtime: Runtime):
        self.runtime = runtime
        self._audit_file: AuditLog | None = None  # written off the event loop: see mcp_gateway/audit_log.py

    def response(self, flow: http.HTTPFlow) -> None:
        self._record(flow)

    def error(self, flow: http.HTTPFlow) -> None:
        self._record(flow)

    def _record(self, flow: http.HTTPFlow) -> None:
        if flow.metadata.get("gateway.audited") or not flow.metadata.get("gateway.seen"):
            return
        flow.metadata["gateway.audited"] = True
        decision = dict(flow.metadata.get(DECISION) or {"decision": "allowed", "reason": "forwarded"})
        found = flow.metadata.get(ROUTE)
        started = flow.metadata.get(STARTED)
        status = flow.response.status_code if flow.response else 502
        if decision.get("decision") == "refused" and decision.get("status"):
            status = decision["status"]  # e.g. a refused SSE call answered on the stream, not by this POST
        identity = flow.metadata.get(IDENTITY)
        record = {
            "ts": round(time.time(), 3),
            "user": getattr(identity, "username", None) or "-",
            "client": flow.client_conn.peername[0] if flow.client_conn.peername else "-",
            "http_method": flow.request.method,
            "path": (flow.metadata.get("gateway.public_path") or flow.request.path).split("?")[0],
            "server": getattr(found, "server", None) or "-",
            "method": decision.get("method") or "-",
            "tool": decision.get("tool") or "-",
            "decision": decision.get("decision", "allowed"),
            "scope": decision.get("scope") or "-",
            "reason": decision.get("reason", ""),
            "status": status,
            "latency_ms": round((time.monotonic() - started) * 1000, 1) if started else None,
        }
        if flow.error:
            record["error"] = str(flow.error.msg)[:200]
        if "arguments" in decision:
            record["arguments"] = decision["arguments"]
        if getattr(identity, "kind", "anonymous") != "anonymous":
            record["groups"] = list(identity.groups)  # `policy replay` re-evaluates them
        if shadow := flow.metadata.get(SHADOW):
            record.update(shadow_decision=shadow["decision"], shadow_scope=shadow["scope"] or "-",
                          shadow_reason=shadow["reason"])
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
