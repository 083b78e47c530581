"""The gateway's addons, in the order mitmproxy runs them:
settings → route → identify → tell unknown servers apart → bind MCP sessions → authorize → registry API → forward (with timeouts) → audit,
plus the login app's supervisor."""

from __future__ import annotations

from . import error_pages
from .auditor import Auditor
from .authorizer import Authorizer
from .forwarder import Forwarder
from .identify import Identify
from .metrics import Metrics
from .registry_api import RegistryApi
from .resource_metadata import ResourceMetadata
from .router import Router
from .runtime import Runtime
from .server_gate import ServerGate
from .session_binding import SessionBinding
from .settings import Settings
from .supervisor import LoginAppSupervisor
from .timeouts import UpstreamTimeouts


def build_chain() -> list[object]:
    error_pages.install()
    runtime = Runtime()
    authorizer = Authorizer(runtime)
    return [
        Settings(runtime),
        Router(runtime),
        ResourceMetadata(runtime),
        Identify(runtime),
        ServerGate(runtime, authorizer.scopes_of),
        SessionBinding(runtime),
        authorizer,
        RegistryApi(runtime, authorizer.scopes_of),
        Forwarder(runtime),
        UpstreamTimeouts(runtime),
        Auditor(runtime),
        Metrics(runtime),
        LoginAppSupervisor(runtime),
    ]
