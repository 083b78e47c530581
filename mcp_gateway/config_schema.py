"""The configuration schema: every key of gateway.toml, its type, default, environment
variable and meaning. `config.py` reads files with it and `scripts/config-reference`
renders it into docs/configuration.md, so the two cannot drift apart."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable
from urllib.parse import urlsplit

from .durations import parse_duration
from .header_policy import parse_pattern

REQUIRED = object()


class ValueProblem(ValueError):
    """A value that does not fit its key; the message says what was expected."""


def as_str(value: object) -> str:
    if not isinstance(value, str):
        raise ValueProblem(f"expected a string, got {type(value).__name__}")
    return value


def as_nonempty_str(value: object) -> str:
    text = as_str(value).strip()
    if not text:
        raise ValueProblem("must not be empty")
    return text


def as_bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in {"true", "1", "yes", "on"}:
        return True
    if isinstance(value, str) and value.strip().lower() in {"false", "0", "no", "off"}:
        return False
    raise ValueProblem(f"expected true or false, got {value!r}")


def as_port(value: object) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 65535:
        raise ValueProblem(f"expected a port number 0-65535, got {value!r}")
    return value


def as_positive_int(value: object) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueProblem(f"expected a positive integer, got {value!r}")
    return value


def as_non_negative_number(value: object) -> float:
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise ValueProblem(f"expected a number, got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < float("inf"):
        raise ValueProblem(f"expected a number 0 or more, got {value!r}")
    return float(value)


def as_non_negative_int(value: object) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueProblem(f"expected an integer 0 or more, got {value!r}")
    return value


def as_duration(value: object) -> float:
    try:
        return parse_duration(value)
    except ValueError as e:
        raise ValueProblem(str(e)) from None


def as_http_url(value: object) -> str:
    text = as_nonempty_str(value)
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueProblem(f"expected an http:// or https:// URL, got {text!r}")
    if parts.username or parts.password:
        raise ValueProblem("credentials in a URL are not allowed; use the environment")
    if parts.query or parts.fragment:
        raise ValueProblem("a query string or fragment is not allowed here")
    return text.rstrip("/")


def as_optional_http_url(value: object) -> str | None:
    if value in (None, ""):
        return None
    return as_http_url(value)


def as_url_path(value: object) -> str:
    text = as_nonempty_str(value)
    if not text.startswith("/") or text.startswith("//") or any(c in text for c in "?#\\ \t\r\n"):
        raise ValueProblem(f"expected an absolute path such as \"/sse\", got {text!r}")
    if any(segment in (".", "..") for segment in text.split("/")):
        raise ValueProblem(f"dot segments are not allowed in a path, got {text!r}")
    if not _PLAIN_PATH.fullmatch(text):
        # `%2e%2e`, `..;`, `%2f` or non-ASCII read as another path by a normalising upstream
        # (nginx, Tomcat): the path of one server must never reach another behind the same origin.
        raise ValueProblem(f"only letters, digits and -._~/!$&'()*+,=:@ are allowed in a path, got {text!r}")
    return text


_PLAIN_PATH = re.compile(r"[A-Za-z0-9\-._~/!$&'()*+,=:@]+")


def as_str_list(value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(part for part in re.split(r"[\s,]+", value) if part)
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise ValueProblem("expected a list of strings")
    return tuple(value)


def as_header_patterns(value: object) -> tuple[str, ...]:
    try:
        return tuple(parse_pattern(p) for p in as_str_list(value))
    except ValueError as e:
        raise ValueProblem(str(e)) from None


def one_of(*choices: str) -> Callable[[object], str]:
    def parse(value: object) -> str:
        text = as_str(value).strip().lower()
        if text not in choices:
            raise ValueProblem(f"expected one of {', '.join(choices)}, got {value!r}")
        return text

    return parse


def as_host_list(value: object) -> tuple[str, ...]:
    """`host` or `host:port` entries, canonical (lower case, IPv6 in brackets)."""
    hosts = []
    for entry in as_str_list(value):
        parts = urlsplit(f"http://{entry}")
        try:
            port = parts.port
        except ValueError:
            port = -1
        if not parts.hostname or parts.netloc != entry or "@" in entry or port == -1:
            raise ValueProblem(f"expected host or host:port, got {entry!r}")
        hosts.append(canonical_host(parts.hostname, port))
    return tuple(hosts)


def canonical_host(hostname: str, port: int | None) -> str:
    host = f"[{hostname}]" if ":" in hostname else hostname.lower()
    return f"{host}:{port}" if port is not None else host


SERVER_NAME = re.compile(r"^[a-z0-9_-]{1,64}$")


def as_server_name(value: object) -> str:
    text = as_str(value)
    if not SERVER_NAME.fullmatch(text):
        raise ValueProblem(f"expected 1-64 characters of [a-z0-9_-], got {text!r}")
    return text


@dataclass(frozen=True)
class Key:
    name: str
    parse: Callable[[object], object]
    default: object = REQUIRED
    help: str = ""
    env: str | None = None
    secret: bool = False  # read from the environment or a `<name>_file`; never shown


GATEWAY_KEYS = (
    Key("listen_host", as_nonempty_str, "0.0.0.0", "Address the proxy listens on.", env="MCP_GATEWAY_LISTEN_HOST"),
    Key("listen_port", as_port, 7860, "Port the proxy listens on.", env="MCP_GATEWAY_LISTEN_PORT"),
    Key("public_url", as_http_url, "http://localhost:7860",
        "The origin browsers and MCP clients see; callbacks, cookies (Secure when https) and metadata derive from it. "
        "Unset: the configured provider's callback URI's scheme, host and port, else the default.",
        env="MCP_GATEWAY_PUBLIC_URL"),
    Key("policy_dir", as_nonempty_str, "policies", "Folder of policy files, read in name order."),
    Key("state_dir", as_nonempty_str, "var",
        "Folder for what the program writes: sessions.db, registry state, audit log, mitmproxy's confdir."),
    Key("login_app_url", as_optional_http_url, None,
        "URL of an external login app (several instances behind the proxy). Unset: the gateway starts and supervises its own."),
    Key("login_app_port", as_port, 0, "Loopback port of the supervised login app; 0 picks a free one."),
    Key("max_body_bytes", as_positive_int, 1048576,
        "Largest MCP request body the gateway reads and inspects; larger bodies get 413."),
    Key("strip_request_headers", as_header_patterns, (),
        "More request headers never forwarded upstream, beside the built-in identity and forwarding families: "
        "names or prefixes ending in '*' (e.g. [\"X-Corp-*\"]), compared case-insensitively with '_' read as '-'."),
    Key("connect_timeout", as_duration, "10s", "Time allowed to connect to an upstream before answering 502."),
    Key("response_timeout", as_duration, "60s",
        "Time allowed for an upstream to start answering (send response headers) before answering 504."),
    Key("stream_idle_timeout", as_duration, "600s",
        "An SSE or streamed response with no traffic for this long is closed (mitmproxy's tcp_timeout)."),
    Key("drain_timeout", as_duration, "20s",
        "After SIGTERM: how long requests in flight may take to finish before the gateway stops anyway "
        "(/healthz answers 503 meanwhile); see docs/operations.md#graceful-shutdown."),
    Key("tls_cert", as_str, "", "PEM certificate (with key, or see tls_key) for TLS on the listener; empty: plain HTTP."),
    Key("tls_key", as_str, "", "PEM private key for tls_cert when it is a separate file."),
    Key("audit_log", as_str, "audit.jsonl", "JSON-lines audit log, relative to state_dir (to log_dir when set)."),
    Key("log_dir", as_str, "",
        "Folder for log files: access.log (one line per request) and the audit log. Empty: the audit log in "
        "state_dir, access lines on the console only. The container sets /app/logs.", env="MCP_GATEWAY_LOG_DIR"),
    Key("credentials_dir", as_str, "",
        "Folder of per-server credential files (upstream_value_file); a file outside it is a start-up error. "
        "Empty: no file credentials."),
    Key("editor_upstream_hosts", as_host_list, (),
        "Upstream hosts (host, or host:port; a bare host means port 80/443) that holders of "
        "mcp:server:{s}:edit may point a server's url at; any other url change needs mcp:registry:admin."),
    Key("log_tool_arguments", as_bool, False,
        "Write tool argument values to logs and audit (off: they may carry service tokens)."),
    Key("servers_dir", as_nonempty_str, "registry/servers",
        "Folder of server definition files (one JSON file per server, plus server_state.json), watched while "
        "the gateway runs; see docs/registry-files.md. A missing folder means no servers from files.",
        env="MCP_GATEWAY_SERVERS_DIR"),
    Key("masked_argument_names", as_str_list, ("*token*", "*password*", "*secret*", "*key*", "*credential*"),
        "Tool-call argument names (glob patterns, case-insensitive) whose values mitmweb's stored flows show as "
        "\"***\" once forwarded; the upstream still receives them. An empty list turns masking off. "
        "See docs/end-to-end-tokens.md."),
    Key("health_check_interval", as_duration, "60s",
        "How often the gateway checks each enabled server with an MCP initialize + tools/list (docs/registry-ui.md); 0 turns the checks off."),
    Key("health_check_timeout", as_duration, "10s", "Time allowed for one server's health check before it counts as failing."),
    Key("metrics_port", as_port, 0,
        "Port of the Prometheus metrics listener, separate from the proxy's (never reachable through it); 0: off."),
    Key("metrics_host", as_nonempty_str, "127.0.0.1",
        "Address the metrics listener binds; keep it loopback or a private interface (0.0.0.0 in a container)."),
)

AUTH_KEYS = (
    Key("enabled", as_bool, True, "Require login on /api/*.", env="MCP_AUTH_ENABLED"),
    Key("provider_type", one_of("cognito", "okta", "generic", "local"), "local",
        "Identity provider for browser logins.", env="MCP_AUTH_PROVIDER_TYPE"),
    Key("secret_key", as_str, None, "At least 32 bytes; signs the login transaction, encrypts refresh tokens.",
        env="SECRET_KEY", secret=True),
    Key("admin_user", as_str, None, "A local administrator (group mcp-admin).", env="ADMIN_USER"),
    Key("admin_password", as_str, None, "Password of admin_user.", env="ADMIN_PASSWORD", secret=True),
    Key("groups_claim", as_nonempty_str, "groups", "Claim holding group names (generic and Okta)."),
    Key("leeway", as_duration, "60s", "Clock skew allowed when checking exp/nbf/iat."),
)

# In each provider's section: which IdP-issued JWTs the proxy accepts as bearer tokens.
BEARER_AUDIENCES = Key(
    "bearer_audiences", as_str_list, (),
    "Audiences accepted on IdP-issued bearer JWTs at /api/* (the `aud` claim; for Cognito access tokens the "
    "`client_id` claim, e.g. the app clients of your agents). Empty: the gateway's own client_id.",
    env="MCP_AUTH_BEARER_AUDIENCES")

COGNITO_KEYS = (
    Key("user_pool_id", as_nonempty_str, REQUIRED, "Cognito user pool id, e.g. eu-west-1_AbCdEf.",
        env="MCP_AUTH_COGNITO_USER_POOL_ID"),
    Key("client_id", as_nonempty_str, REQUIRED, "App client id.", env="MCP_AUTH_COGNITO_CLIENT_ID"),
    Key("client_secret", as_str, None, "App client secret.", env="MCP_AUTH_COGNITO_CLIENT_SECRET", secret=True),
    Key("callback_uri", as_optional_http_url, None, "Default: <public_url>/oauth/callback/cognito.",
        env="MCP_AUTH_COGNITO_CALLBACK_URI"),
    Key("region", as_nonempty_str, None, "AWS region; default: the prefix of user_pool_id.",
        env="MCP_AUTH_COGNITO_REGION"),
    Key("domain", as_optional_http_url, None, "Hosted-UI domain, e.g. https://auth.example.com.",
        env="MCP_AUTH_COGNITO_DOMAIN"),
    Key("endpoint_url", as_optional_http_url, None,
        "Where JWKS and discovery are fetched (an emulator or private endpoint); iss stays the AWS one.",
        env="MCP_AUTH_COGNITO_ENDPOINT_URL"),
    BEARER_AUDIENCES,
)

OKTA_KEYS = (
    Key("tenant_url", as_http_url, REQUIRED, "e.g. https://example.okta.com", env="MCP_AUTH_OKTA_TENANT_URL"),
    Key("client_id", as_nonempty_str, REQUIRED, "OIDC app client id.", env="MCP_AUTH_OKTA_CLIENT_ID"),
    Key("client_secret", as_str, None, "OIDC app client secret.", env="MCP_AUTH_OKTA_CLIENT_SECRET", secret=True),
    Key("callback_uri", as_optional_http_url, None, "Default: <public_url>/oauth/callback/okta.",
        env="MCP_AUTH_OKTA_CALLBACK_URI"),
    Key("authorization_server", as_str, "", "Custom authorization server id (e.g. \"default\"); empty: the org server."),
    BEARER_AUDIENCES,
)

GENERIC_KEYS = (
    Key("client_id", as_nonempty_str, REQUIRED, "OAuth client id.", env="MCP_AUTH_CLIENT_ID"),
    Key("client_secret", as_str, None, "OAuth client secret.", env="MCP_AUTH_CLIENT_SECRET", secret=True),
    Key("issuer", as_optional_http_url, None, "Issuer; with only this set, endpoints come from OIDC discovery.",
        env="MCP_AUTH_ISSUER"),
    Key("authorize_url", as_optional_http_url, None, "Authorization endpoint.", env="MCP_AUTH_AUTHORIZE_URL"),
    Key("token_url", as_optional_http_url, None, "Token endpoint.", env="MCP_AUTH_TOKEN_URL"),
    Key("jwks_url", as_optional_http_url, None, "JWKS endpoint.", env="MCP_AUTH_JWKS_URL"),
    Key("callback_uri", as_optional_http_url, None, "Default: <public_url>/oauth/callback.", env="MCP_AUTH_CALLBACK_URI"),
    Key("scopes", as_str_list, ("openid", "email", "profile", "offline_access"), "Scopes asked of the IdP.",
        env="MCP_AUTH_SCOPES"),
    BEARER_AUDIENCES,
)

SESSION_KEYS = (
    Key("store", as_str, "",
        "sqlite:///PATH (a relative PATH resolves against the config file's folder, like every path here; "
        "empty: <state_dir>/sessions.db) or redis://host:port/db."),
    Key("lifetime", as_duration, "8h", "Absolute session lifetime."),
    Key("idle_timeout", as_duration, "1h", "A session unused this long ends."),
    Key("refresh_interval", as_duration, "5m", "Group membership is re-read from the IdP this often."),
)

RATE_LIMIT_KEYS = (
    Key("requests_per_second", as_non_negative_number, 0,
        "MCP requests each identity may send to each server per second (a token bucket); 0: no limit. "
        "Counted in Redis when [session] store is Redis (shared by every instance), else per process."),
    Key("burst", as_non_negative_int, 0,
        "Requests an identity may send at once before requests_per_second applies; 0: requests_per_second "
        "rounded up."),
    Key("concurrent_streams", as_non_negative_int, 0,
        "Event streams (SSE and Streamable HTTP GET) each identity may hold open to each server; 0: no limit."),
)

SERVER_KEYS = (
    Key("name", as_server_name, REQUIRED, "[a-z0-9_-]; the {server} in paths and scopes."),
    Key("url", as_http_url, REQUIRED, "Upstream base URL (http or https)."),
    Key("sse_path", as_url_path, "/sse", "The upstream's SSE endpoint."),
    Key("streamable_path", as_url_path, "/mcp", "The upstream's Streamable HTTP endpoint."),
    Key("enabled", as_bool, True, "A disabled server answers 503."),
    Key("description", as_str, "", "Shown in the registry."),
    Key("tags", as_str_list, (), "Labels shown in the registry."),
    Key("verify_tls", as_bool, True,
        "Verify an https upstream's certificate (false: logged as a warning at start; registry admin only)."),
    Key("ca_file", as_str, "",
        "PEM CA bundle trusted for this https upstream instead of the public CAs (configuration only)."),
    Key("upstream_header", as_str, "",
        "Header added when forwarding to this server (e.g. Authorization); configuration only, never API data."),
    Key("upstream_value_env", as_str, "", "Environment variable holding that header's value: MCP_UPSTREAM_<NAME> only."),
    Key("upstream_value_file", as_str, "",
        "File holding that header's value, inside [gateway] credentials_dir (relative paths resolve against it)."),
)

UPSTREAM_OAUTH_KEYS = (
    Key("client_id", as_str, "",
        "OAuth client id at the service's authorization server; empty: the gateway registers itself (RFC 7591)."),
    Key("client_secret_env", as_str, "", "Environment variable holding the client secret: MCP_UPSTREAM_<NAME> only."),
    Key("client_secret_file", as_str, "",
        "File holding the client secret, inside [gateway] credentials_dir (relative paths resolve against it)."),
    Key("issuer", as_optional_http_url, None,
        "The authorization server's issuer; endpoints come from its RFC 8414 / OIDC discovery document."),
    Key("authorize_url", as_optional_http_url, None, "Authorization endpoint (with token_url, instead of issuer)."),
    Key("token_url", as_optional_http_url, None, "Token endpoint (with authorize_url)."),
    Key("scopes", as_str_list, (), "Scopes asked of the service."),
    Key("token_header", as_nonempty_str, "Authorization",
        "Header the user's token is sent in: Authorization carries `Bearer <token>`, any other the raw token."),
    Key("resource", as_optional_http_url, None,
        "RFC 8707 resource asked for; default: the one the upstream's protected-resource metadata names, if any."),
)

LOCAL_ACCOUNT_KEYS = (
    Key("username", as_nonempty_str, REQUIRED, "Login name."),
    Key("password_hash", as_nonempty_str, REQUIRED, "scrypt hash printed by scripts/hash-password; never a plain password."),
    Key("groups", as_str_list, (), "Groups of this account."),
)

SECTIONS: dict[str, tuple[Key, ...]] = {
    "gateway": GATEWAY_KEYS,
    "auth": AUTH_KEYS,
    "auth.cognito": COGNITO_KEYS,
    "auth.okta": OKTA_KEYS,
    "auth.generic": GENERIC_KEYS,
    "auth.local.accounts": LOCAL_ACCOUNT_KEYS,
    "session": SESSION_KEYS,
    "rate_limits": RATE_LIMIT_KEYS,
    "servers": SERVER_KEYS,
    "servers.upstream_oauth": UPSTREAM_OAUTH_KEYS,
}
