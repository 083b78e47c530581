"""The configuration's values: what `load_config` (mcp_gateway/config.py) builds and every
other module reads. Kept apart from the loading so readers see the shape at a glance."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .config_schema import GATEWAY_KEYS
from .upstream_oauth_config import UpstreamOAuthSettings

MIN_SECRET_KEY_BYTES = 32
DEFAULT_CONFIG_NAME = "gateway.toml"
ACCESS_LOG_NAME = "access.log"
WORKER_INDEX = "MCP_GATEWAY_WORKER_INDEX"  # 1..N in each launcher worker's environment (per-worker metrics ports)
DEFAULT_PUBLIC_URL = str(next(k.default for k in GATEWAY_KEYS if k.name == "public_url"))


class ConfigError(Exception):
    """A configuration problem, phrased for the operator: `<file>: <key>: <problem>`."""


@dataclass(frozen=True)
class ServerConfig:
    name: str
    url: str
    sse_path: str = "/sse"
    streamable_path: str = "/mcp"
    enabled: bool = True
    description: str = ""
    tags: tuple[str, ...] = ()
    verify_tls: bool = True
    ca_file: str = ""
    upstream_header: str = ""
    upstream_value_env: str = ""
    upstream_value_file: str = ""
    upstream_oauth: UpstreamOAuthSettings | None = None  # per-user tokens (docs/end-to-end-tokens.md)

    @property
    def scheme(self) -> str:
        return urlsplit(self.url).scheme

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or ""

    @property
    def port(self) -> int:
        parts = urlsplit(self.url)
        return parts.port or (443 if parts.scheme == "https" else 80)

    @property
    def base_path(self) -> str:
        return urlsplit(self.url).path.rstrip("/")

    @property
    def host_header(self) -> str:
        netloc = urlsplit(self.url).netloc
        return netloc


@dataclass(frozen=True)
class LocalAccount:
    username: str
    password_hash: str
    groups: tuple[str, ...]


@dataclass(frozen=True)
class AuthConfig:
    enabled: bool
    provider_type: str
    secret_key: str | None
    admin_user: str | None
    admin_password: str | None
    groups_claim: str
    leeway: float
    provider: Mapping[str, Any]  # the selected provider's section, parsed
    local_accounts: tuple[LocalAccount, ...]


@dataclass(frozen=True)
class SessionConfig:
    store: str
    lifetime: float
    idle_timeout: float
    refresh_interval: float


@dataclass(frozen=True)
class RateLimitsConfig:
    requests_per_second: float = 0.0  # per identity and server; 0: off
    burst: int = 0
    concurrent_streams: int = 0  # per identity and server; 0: off

    @property
    def enabled(self) -> bool:
        return self.requests_per_second > 0 or self.concurrent_streams > 0


@dataclass(frozen=True)
class GatewayConfig:
    source: Path
    listen_host: str
    listen_port: int
    public_url: str
    policy_dir: Path
    state_dir: Path
    login_app_url: str | None
    login_app_port: int
    max_body_bytes: int
    connect_timeout: float
    response_timeout: float
    stream_idle_timeout: float
    tls_cert: str
    tls_key: str
    audit_log: Path
    log_tool_arguments: bool
    auth: AuthConfig
    session: SessionConfig
    servers: tuple[ServerConfig, ...] = field(default=())
    logging_level: str = "INFO"
    metrics_port: int = 0  # 0: no metrics listener
    metrics_host: str = "127.0.0.1"
    servers_dir: Path | None = None  # None: no servers from files
    masked_argument_names: tuple[str, ...] = ()
    access_log: Path | None = None  # <log_dir>/access.log when [gateway] log_dir is set
    from_file: bool = True  # False: configured by the environment alone (`source` names the absent default file)
    credentials_dir: Path | None = None  # None: no file credentials
    editor_upstream_hosts: tuple[str, ...] = ()
    health_check_interval: float = 60.0
    health_check_timeout: float = 10.0
    strip_request_headers: tuple[str, ...] = ()
    drain_timeout: float = 20.0
    rate_limits: RateLimitsConfig = field(default_factory=RateLimitsConfig)

    @property
    def public_origin(self) -> str:
        """The public URL's origin as a browser writes it in `Origin`: scheme and host in lower case,
        no default port (the configured `HTTPS://GW.example:443` is `https://gw.example`)."""
        parts = urlsplit(self.public_url)
        host = parts.hostname or ""
        host = f"[{host}]" if ":" in host else host
        port = "" if parts.port in (None, {"http": 80, "https": 443}.get(parts.scheme)) else f":{parts.port}"
        return f"{parts.scheme}://{host}{port}"

    @property
    def secure_cookies(self) -> bool:
        return urlsplit(self.public_url).scheme == "https"  # urlsplit lower-cases the scheme

    def server(self, name: str) -> ServerConfig | None:
        return next((s for s in self.servers if s.name == name), None)
