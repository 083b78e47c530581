"""Loading gateway.toml (or the same structure as JSON), with environment overrides.

Every problem becomes one `ConfigError` naming the key, so start-up can print a single
clear line instead of a traceback.

Without a file (the default `gateway.toml` absent from the working directory, or an empty
MCP_GATEWAY_CONFIG) the environment alone configures the gateway and relative paths resolve
against the working directory — how the container runs (docs/container.md). A file named
explicitly by any other name must exist. Without a configured public URL (MCP_GATEWAY_PUBLIC_URL,
`[gateway] public_url`) it derives from the provider's callback URI.
"""

from __future__ import annotations

import json
import logging
import os
import tomllib
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import urlsplit

from . import credentials
from .upstream_oauth_config import UpstreamOAuthSettings, checked_settings
from .config_schema import (
    REQUIRED,
    SECTIONS,
    SERVER_NAME,
    Key,
    ValueProblem,
)

# Re-exported: callers import the configuration's values from here.
from .config_types import (  # noqa: F401
    MIN_SECRET_KEY_BYTES,
    DEFAULT_CONFIG_NAME,
    ACCESS_LOG_NAME,
    WORKER_INDEX,
    DEFAULT_PUBLIC_URL,
    ConfigError,
    ServerConfig,
    LocalAccount,
    AuthConfig,
    SessionConfig,
    RateLimitsConfig,
    GatewayConfig,
)

log = logging.getLogger(__name__)


def read_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read: {e}") from None
    try:
        if path.suffix == ".json":
            data = json.loads(text)
        else:
            data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path}: not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a table/object")
    return data


def _section(data: Mapping[str, Any], dotted: str, where: str) -> Mapping[str, Any]:
    node: Any = data
    for part in dotted.split("."):
        node = node.get(part, {}) if isinstance(node, Mapping) else None
        if not isinstance(node, Mapping):
            raise ConfigError(f"{where}: [{dotted}] must be a table")
    return node


def parse_keys(
    raw: Mapping[str, Any],
    keys: tuple[Key, ...],
    where: str,
    section: str,
    env: Mapping[str, str],
    base_dir: Path,
    ignore: frozenset[str] = frozenset(),
) -> dict[str, Any]:
    """Values for `keys` from `raw`, the environment and `<key>_file` indirections."""
    known = {k.name for k in keys} | {f"{k.name}_file" for k in keys if k.secret} | ignore
    for name in raw:
        if name not in known:
            raise ConfigError(f"{where}: [{section}] {name}: unknown key")
    values: dict[str, Any] = {}
    for key in keys:
        label = f"[{section}] {key.name}"
        value: Any = raw.get(key.name, REQUIRED)
        if key.secret and f"{key.name}_file" in raw:
            value = _read_secret_file(raw[f"{key.name}_file"], base_dir, f"{where}: {label}_file")
        elif key.secret and key.name in raw:
            log.warning("%s: %s holds a secret in the file; prefer %s or %s_file",
                        where, label, key.env or "the environment", key.name)
        if key.env and env.get(key.env) not in (None, ""):
            value = env[key.env]
            label = f"{key.env} ({label})"
        if value is REQUIRED:
            if key.default is REQUIRED:
                hint = f" (or set {key.env})" if key.env else ""
                raise ConfigError(f"{where}: {label}: missing{hint}")
            values[key.name] = key.default if key.default is None else key.parse(key.default)
            continue
        try:
            values[key.name] = key.parse(value)
        except ValueProblem as e:
            raise ConfigError(f"{where}: {label}: {e}") from None
    return values


def _read_secret_file(value: object, base_dir: Path, label: str) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{label}: expected a file path")
    path = (base_dir / value).resolve()
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as e:
        raise ConfigError(f"{label}: cannot read {path}: {e.strerror}") from None


def load_config(path: str | os.PathLike[str] | None, env: Mapping[str, str] | None = None) -> GatewayConfig:
    env = os.environ if env is None else env
    where = str(path or "")
    source = Path(where or DEFAULT_CONFIG_NAME).resolve()
    from_file = not _environment_only(where, source)
    if from_file:
        data = read_file(source)
    else:
        where, data = "environment", {}
        log.warning("no configuration file (%s): configured from the environment alone; relative paths resolve "
                    "against %s", source, source.parent)
    base_dir = source.parent
    for name in data:
        if name not in ("gateway", "auth", "session", "servers", "rate_limits"):
            raise ConfigError(f"{where}: [{name}]: unknown section")

    raw_gateway = _section(data, "gateway", where)
    gw = parse_keys(raw_gateway, SECTIONS["gateway"], where, "gateway", env, base_dir)
    public_url_given = "public_url" in raw_gateway or env.get("MCP_GATEWAY_PUBLIC_URL") not in (None, "")
    auth, public_url = _load_auth(data, where, env, base_dir, gw["public_url"] if public_url_given else None)
    session = parse_keys(_section(data, "session", where), SECTIONS["session"], where, "session", env, base_dir)
    session["store"] = _session_store_url(session["store"], base_dir, (base_dir / gw["state_dir"]).resolve(), where)
    credentials_dir = (base_dir / gw["credentials_dir"]).resolve() if gw["credentials_dir"] else None
    servers = _load_servers(data.get("servers", []), where, env, base_dir, credentials_dir)
    for server in servers:
        if server.upstream_oauth is not None and not auth.enabled:
            raise ConfigError(f'{where}: [servers "{server.name}".upstream_oauth]: per-user upstream tokens need '
                              "sign-in: set [auth] enabled = true")
    rate_limits = parse_keys(_section(data, "rate_limits", where), SECTIONS["rate_limits"], where, "rate_limits",
                             env, base_dir)

    state_dir = (base_dir / gw["state_dir"]).resolve()
    log_dir = (base_dir / gw["log_dir"]).resolve() if gw["log_dir"].strip() else None
    return GatewayConfig(
        source=source,
        listen_host=gw["listen_host"],
        listen_port=gw["listen_port"],
        public_url=public_url,
        policy_dir=(base_dir / gw["policy_dir"]).resolve(),
        state_dir=state_dir,
        login_app_url=gw["login_app_url"],
        login_app_port=gw["login_app_port"],
        max_body_bytes=gw["max_body_bytes"],
        connect_timeout=gw["connect_timeout"],
        response_timeout=gw["response_timeout"],
        stream_idle_timeout=gw["stream_idle_timeout"],
        tls_cert=str((base_dir / gw["tls_cert"]).resolve()) if gw["tls_cert"] else "",
        tls_key=str((base_dir / gw["tls_key"]).resolve()) if gw["tls_key"] else "",
        audit_log=(log_dir or state_dir) / gw["audit_log"],
        log_tool_arguments=gw["log_tool_arguments"],
        auth=auth,
        session=SessionConfig(**session),
        servers=servers,
        logging_level=_logging_level(env),
        metrics_port=gw["metrics_port"],
        metrics_host=gw["metrics_host"],
        servers_dir=(base_dir / gw["servers_dir"]).resolve(),
        masked_argument_names=tuple(p.lower() for p in gw["masked_argument_names"]),
        access_log=log_dir / ACCESS_LOG_NAME if log_dir else None,
        from_file=from_file,
        credentials_dir=credentials_dir,
        editor_upstream_hosts=gw["editor_upstream_hosts"],
        health_check_interval=gw["health_check_interval"],
        health_check_timeout=gw["health_check_timeout"],
        strip_request_headers=gw["strip_request_headers"],
        drain_timeout=gw["drain_timeout"],
        rate_limits=RateLimitsConfig(**rate_limits),
    )


def _environment_only(where: str, source: Path) -> bool:
    """No file to read: none named (empty), or the default name and no such file. Any other
    name must exist, so a mistyped path stops start-up instead of running on defaults."""
    return not where or (Path(where).name == DEFAULT_CONFIG_NAME and not source.exists())


def _session_store_url(url: str, base_dir: Path, state_dir: Path, where: str) -> str:
    """An absolute sqlite:////… URL (relative paths resolve against the config's folder), or redis as given."""
    url = url.strip()
    if not url:
        return f"sqlite:///{state_dir / 'sessions.db'}"
    scheme = url.split(":", 1)[0].lower()
    if scheme in ("redis", "rediss", "unix"):
        return url
    if scheme != "sqlite" or not url.startswith("sqlite:///") or len(url) <= len("sqlite:///"):
        raise ConfigError(f"{where}: [session] store: expected sqlite:///PATH or redis://host:port/db, got {url!r}")
    path = Path(url[len("sqlite:///"):])
    return f"sqlite:///{path if path.is_absolute() else (base_dir / path).resolve()}"


def _logging_level(env: Mapping[str, str]) -> str:
    level = env.get("LOGGING_LEVEL", "INFO").strip().upper() or "INFO"
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        raise ConfigError(f"LOGGING_LEVEL: expected DEBUG, INFO, WARNING, ERROR or CRITICAL, got {level!r}")
    return level


def _load_auth(data: Mapping[str, Any], where: str, env: Mapping[str, str], base_dir: Path,
               public_url: str | None) -> tuple[AuthConfig, str]:
    """The auth settings and the public URL (`public_url`, else derived from the callback URI)."""
    raw = _section(data, "auth", where)
    values = parse_keys(raw, SECTIONS["auth"], where, "auth", env, base_dir,
                        ignore=frozenset({"cognito", "okta", "generic", "local"}))
    provider_type = values["provider_type"]
    provider: dict[str, Any] = {}
    if values["enabled"] and provider_type != "local":
        section = f"auth.{provider_type}"
        provider = parse_keys(_section(data, section, where), SECTIONS[section], where, section, env, base_dir)
        if not provider.get("client_secret"):
            env_name = next(k.env for k in SECTIONS[section] if k.name == "client_secret")
            raise ConfigError(f"{where}: [{section}] client_secret: missing (set {env_name} or client_secret_file)")
        public_url = public_url or _origin_of(provider["callback_uri"])
        _check_callback(provider, provider_type, public_url or DEFAULT_PUBLIC_URL, where)
        if provider_type == "generic" and not provider["issuer"]:
            # ID tokens and bearer JWTs are checked against the issuer, so it is needed even
            # when every endpoint is given explicitly.
            raise ConfigError(
                f"{where}: [auth.generic] issuer: missing (set MCP_AUTH_ISSUER; with only the issuer set, "
                "the endpoints come from OIDC discovery)"
            )
    accounts = _load_local_accounts(raw.get("local", {}), where, env, base_dir)
    secret_key = values["secret_key"]
    if values["enabled"]:
        if not secret_key:
            raise ConfigError("SECRET_KEY: missing; with auth enabled set a random value of at least "
                              f"{MIN_SECRET_KEY_BYTES} bytes (e.g. `python3 -c 'import secrets; print(secrets.token_urlsafe(48))'`)")
        if len(secret_key.encode()) < MIN_SECRET_KEY_BYTES:
            raise ConfigError(f"SECRET_KEY: too short ({len(secret_key.encode())} bytes); "
                              f"use at least {MIN_SECRET_KEY_BYTES}")
    if bool(values["admin_user"]) != bool(values["admin_password"]):
        raise ConfigError("ADMIN_USER/ADMIN_PASSWORD: set both or neither")
    return AuthConfig(
        enabled=values["enabled"],
        provider_type=provider_type,
        secret_key=secret_key,
        admin_user=values["admin_user"],
        admin_password=values["admin_password"],
        groups_claim=values["groups_claim"],
        leeway=values["leeway"],
        provider=provider,
        local_accounts=accounts,
    ), public_url or DEFAULT_PUBLIC_URL


def _origin_of(url: str | None) -> str | None:
    """scheme://host[:port] of a callback URI: the public URL it implies."""
    if not url:
        return None
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _check_callback(provider: dict[str, Any], provider_type: str, public_url: str, where: str) -> None:
    path = "/oauth/callback" if provider_type == "generic" else f"/oauth/callback/{provider_type}"
    expected = public_url.rstrip("/") + path
    if provider["callback_uri"] is None:
        provider["callback_uri"] = expected
    elif provider["callback_uri"] != expected:
        raise ConfigError(
            f"{where}: [auth.{provider_type}] callback_uri: {provider['callback_uri']!r} does not match the "
            f"public URL; expected {expected!r} (the IdP must send browsers back to this gateway)"
        )


def _load_local_accounts(raw: Any, where: str, env: Mapping[str, str], base_dir: Path) -> tuple[LocalAccount, ...]:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: [auth.local] must be a table")
    for name in raw:
        if name != "accounts":
            raise ConfigError(f"{where}: [auth.local] {name}: unknown key")
    entries = raw.get("accounts", [])
    if not isinstance(entries, list):
        raise ConfigError(f"{where}: [[auth.local.accounts]] must be an array of tables")
    accounts = []
    for index, entry in enumerate(entries):
        section = f"auth.local.accounts #{index + 1}"
        if not isinstance(entry, Mapping):
            raise ConfigError(f"{where}: [{section}] must be a table")
        values = parse_keys(entry, SECTIONS["auth.local.accounts"], where, section, {}, base_dir)
        if not values["password_hash"].startswith("scrypt$"):
            raise ConfigError(f"{where}: [{section}] password_hash: not a hash made by scripts/hash-password")
        accounts.append(LocalAccount(**values))
    names = [a.username for a in accounts]
    if len(names) != len(set(names)):
        raise ConfigError(f"{where}: [[auth.local.accounts]]: a username appears twice")
    return tuple(accounts)


def _load_servers(raw: Any, where: str, env: Mapping[str, str], base_dir: Path,
                  credentials_dir: Path | None) -> tuple[ServerConfig, ...]:
    if not isinstance(raw, list):
        raise ConfigError(f"{where}: [[servers]] must be an array of tables")
    servers: list[ServerConfig] = []
    for index, entry in enumerate(raw):
        label = f"servers #{index + 1}"
        if not isinstance(entry, Mapping):
            raise ConfigError(f"{where}: [{label}] must be a table")
        if isinstance(entry.get("name"), str) and SERVER_NAME.fullmatch(entry["name"]):
            label = f'servers "{entry["name"]}"'
        server = server_from_mapping(entry, f"{where}: ", label, base_dir, credentials_dir)
        try:
            credentials.check_configured_value(server, env)
        except credentials.CredentialProblem as e:
            raise ConfigError(f"{where}: [{label}] {e.key}: {e}") from None
        servers.append(server)
    names = [s.name for s in servers]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(f"{where}: [[servers]] name: {', '.join(duplicates)} declared twice")
    return tuple(servers)


def server_from_mapping(entry: Mapping[str, Any], prefix: str, label: str, base_dir: Path,
                        credentials_dir: Path | None = None) -> ServerConfig:
    """A server entry from config or the registry; raises ConfigError naming the key."""
    values = parse_keys(entry, SECTIONS["servers"], prefix.rstrip(": ") or "server", label, {}, base_dir,
                        ignore=frozenset({"upstream_oauth"}))
    try:
        values.update(credentials.checked_sources(values, credentials_dir))
    except credentials.CredentialProblem as e:
        raise ConfigError(f"{prefix}[{label}] {e.key}: {e}") from None
    if entry.get("upstream_oauth") is not None:
        values["upstream_oauth"] = _upstream_oauth(entry["upstream_oauth"], prefix, label, base_dir, credentials_dir)
    if values["ca_file"]:
        values["ca_file"] = str((base_dir / values["ca_file"]).resolve())
    return ServerConfig(**values)


def _upstream_oauth(raw: Any, prefix: str, label: str, base_dir: Path,
                    credentials_dir: Path | None) -> UpstreamOAuthSettings:
    section = f"{label}.upstream_oauth"
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{prefix}[{section}] must be a table")
    values = parse_keys(raw, SECTIONS["servers.upstream_oauth"], prefix.rstrip(": ") or "server", section, {},
                        base_dir)
    try:
        return checked_settings(values, credentials_dir)
    except credentials.CredentialProblem as e:
        raise ConfigError(f"{prefix}[{section}] {e.key}: {e}") from None
