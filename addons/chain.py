"""The gateway's addons, in the order mitmproxy runs them:
settings → route → identify → bind MCP sessions → forward → audit, plus the login app's supervisor."""

from __future__ import annotations

from . import error_pages
from .auditor import Auditor
from .forwarder import Forwarder
from .identify import Identify
from .router import Router
from .runtime import Runtime
from .session_binding import SessionBinding
from .settings import Settings
from .supervisor import LoginAppSupervisor


def build_chain() -> list[object]:
    error_pages.install()
    runtime = Runtime()
    return [
        Settings(runtime),
        Router(runtime),
        Identify(runtime),
        SessionBinding(runtime),
        Forwarder(runtime),
        Auditor(runtime),
        LoginAppSupervisor(runtime),
    ]
