"""The gateway's addons, in the order mitmproxy runs them:
settings → route → (identify → authorize → registry API) → forward → audit."""

from __future__ import annotations

from . import error_pages
from .auditor import Auditor
from .forwarder import Forwarder
from .router import Router
from .runtime import Runtime
from .settings import Settings


def build_chain() -> list[object]:
    error_pages.install()
    runtime = Runtime()
    return [
        Settings(runtime),
        Router(runtime),
        Forwarder(runtime),
        Auditor(runtime),
    ]
