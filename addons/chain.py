"""The gateway's addons, in the order mitmproxy runs them (docs/architecture.md, "The addons, in order"):
settings → drain → route → RFC 9728 metadata → identify → tell unknown servers apart → rate limits
→ bind MCP sessions → authorize → per-user upstream tokens → registry API → registry MCP server
→ forward (with timeouts; TLS to https upstreams) → audit (and the access log file) → metrics
→ mask secret arguments in the stored flow → drop the body of answers to HEAD, plus the
server-files watcher, the IdP start-up check, health checks and the login app's supervisor."""

from __future__ import annotations

from mcp_gateway import logsafe

from . import error_pages
from .access_log import AccessLogFile
from .auditor import Auditor
from .authorizer import Authorizer
from .drain import Drain
from .forwarder import Forwarder
from .head_answers import HeadAnswers
from .health import HealthChecks
from .identify import Identify
from .mask_arguments import MaskArguments
from .idp_startup import IdpStartupCheck
from .metrics import Metrics
from .rate_limits import RateLimits
from .registry_api import RegistryApi
from .registry_mcp import RegistryMcp, RegistryMcpCaller
from .resource_metadata import ResourceMetadata
from .router import Router
from .runtime import Runtime
from .server_files_watch import ServerFilesWatch
from .server_gate import ServerGate
from .session_binding import SessionBinding
from .settings import Settings
from .supervisor import LoginAppSupervisor
from .timeouts import UpstreamTimeouts
from .upstream_oauth import UpstreamOAuthTokens
from .upstream_tls import UpstreamTls


def build_chain() -> list[object]:
    logsafe.install()  # one record, one line: client-chosen values cannot forge log lines
    error_pages.install()
    runtime = Runtime()
    authorizer = Authorizer(runtime)
    return [
        Settings(runtime),
        Drain(runtime),
        Router(runtime),
        ResourceMetadata(runtime),
        Identify(runtime),
        ServerGate(runtime, authorizer.scopes_of),
        RateLimits(runtime),
        SessionBinding(runtime),
        authorizer,
        UpstreamOAuthTokens(runtime, authorizer.scopes_of, authorizer.codec),  # per-user upstream tokens, /api/connections
        RegistryApi(runtime, authorizer.scopes_of),
        RegistryMcp(runtime),
        Forwarder(runtime),
        RegistryMcpCaller(runtime),  # signs the caller for the registry's SSE transport in the login app
        UpstreamTimeouts(runtime),
        UpstreamTls(runtime),
        Auditor(runtime),
        AccessLogFile(runtime),
        Metrics(runtime),
        MaskArguments(runtime),
        HeadAnswers(),  # last of the answer hooks: a HEAD's answer leaves without its body
        ServerFilesWatch(runtime),
        IdpStartupCheck(runtime),  # before the supervisor: a misconfigured IdP stops start-up first
        HealthChecks(runtime),
        LoginAppSupervisor(runtime),
    ]
