"""`GET /healthz`: 200 while the gateway serves, 503 once it drains (addons/drain.py), so a
load balancer stops sending it new requests. Both answers name the policy version in force
(a content hash of the policy folder), so a rollout to many instances can be checked."""

from __future__ import annotations

import json

from mitmproxy import http

from .drain import is_draining
from .runtime import Runtime


def policy_version_of(runtime: Runtime) -> str | None:
    policies = runtime.policies
    return getattr(policies, "version", None)


def health_response(runtime: Runtime) -> http.Response:
    draining = is_draining(runtime)
    body = {"status": "draining" if draining else "ok", "policy_version": policy_version_of(runtime)}
    headers = {"content-type": "application/json", "cache-control": "no-store"}
    return http.Response.make(503 if draining else 200, json.dumps(body).encode(), headers)
