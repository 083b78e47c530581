"""The gateway's addons, in the order mitmproxy runs them:
settings → drain → route → identify → rate limits → bind MCP sessions → authorize → registry API → forward (with timeouts) → audit
→ mask secret arguments in the stored flow, plus the server-files watcher and the login app's supervisor."""

from __future__ import annotations

from . import error_pages
from .access_log import AccessLogFile
from .auditor import Auditor
from .authorizer import Authorizer
from .drain import Drain
from .forwarder import Forwarder
from .identify import Identify
from .mask_arguments import MaskArguments
from .idp_startup import IdpStartupCheck
from .metrics import Metrics
from .rate_limits import RateLimits
from .registry_api import RegistryApi
from .resource_metadata import ResourceMetadata
from .router import Router
from .runtime import Runtime
from .server_files_watch import ServerFilesWatch
from .session_binding import SessionBinding
from .settings import Settings
from .supervisor import LoginAppSupervisor
from .timeouts import UpstreamTimeouts
from .upstream_tls import UpstreamTls


def build_chain() -> list[object]:
    error_pages.install()
    runtime = Runtime()
    authorizer = Authorizer(runtime)
    return [
        Settings(runtime),
        Drain(runtime),
        Router(runtime),
        ResourceMetadata(runtime),
        Identify(runtime),
        RateLimits(runtime),
        SessionBinding(runtime),
        authorizer,
        RegistryApi(runtime, authorizer.scopes_of),
        Forwarder(runtime),
        UpstreamTimeouts(runtime),
        UpstreamTls(runtime),
        Auditor(runtime),
        AccessLogFile(runtime),
        Metrics(runtime),
        MaskArguments(runtime),
        ServerFilesWatch(runtime),
        IdpStartupCheck(runtime),  # before the supervisor: a misconfigured IdP stops start-up first
        LoginAppSupervisor(runtime),
    ]
