"""The login app: a small Starlette application with its routing table in one place.

It does the OAuth exchange and local logins, writes sessions to the shared store, and
answers /oauth/me and /oauth/logout. The gateway's proxy forwards /oauth/* to it.
"""

from __future__ import annotations

import contextlib
import logging
import os

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mcp_gateway import logsafe
from mcp_gateway.config import GatewayConfig, load_config

from .context import LoginContext
from .facade import FACADE_ROUTES
from .local_login import local_login
from .oauth_flow import finish_login, start_login
from .pages import login_page, signed_in_page
from .registry import REGISTRY_ROUTES
from .registry_sse import REGISTRY_SSE_ROUTES
from .session_api import json_error, logout, me
from .upstream_connect import UPSTREAM_CONNECT_ROUTES

log = logging.getLogger(__name__)


async def health(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


ROUTES = [
    Route("/oauth/login", login_page, methods=["GET"]),
    Route("/oauth/login/local", local_login, methods=["POST"]),
    Route("/oauth/login/{provider}", start_login, methods=["GET"]),
    Route("/oauth/callback", finish_login, methods=["GET"]),
    Route("/oauth/callback/{provider}", finish_login, methods=["GET"]),
    Route("/oauth/logout", logout, methods=["POST"]),
    Route("/oauth/me", me, methods=["GET"]),
    Route("/oauth/session", signed_in_page, methods=["GET"]),
    Route("/oauth/healthz", health, methods=["GET"]),
    *FACADE_ROUTES,
    *REGISTRY_ROUTES,
    *REGISTRY_SSE_ROUTES,
    *UPSTREAM_CONNECT_ROUTES,
]


# Starlette's own refusals: unknown routes and methods, and bodies its form parser cannot read
# (a multipart body without a boundary, too many fields). "invalid_request" is also what an OAuth
# client expects of /oauth/token and /oauth/revoke for a body it sent wrong.
HTTP_ERROR_CODES = {400: "invalid_request", 404: "not_found", 405: "method_not_allowed", 413: "request_too_large"}


async def http_error(request: Request, exc: HTTPException) -> Response:
    log.info("login app refused %s %s: %s %s", request.method, request.url.path, exc.status_code, exc.detail)
    return json_error(exc.status_code, HTTP_ERROR_CODES.get(exc.status_code, "request_refused"),
                      exc.detail or "request refused")


async def server_error(request: Request, exc: Exception) -> Response:
    log.exception("login app error on %s %s", request.method, request.url.path)
    return json_error(500, "login_error", "the login app failed while handling this request")


def create_app(config: GatewayConfig, extra_routes: list | None = None) -> Starlette:
    logsafe.install()  # one record, one line: client-chosen values cannot forge log lines
    login = LoginContext.build(config)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        from .providers import build_providers  # providers talk to IdPs: build them inside the running loop
        login.providers.update(await build_providers(config))
        try:
            yield
        finally:
            upstream = getattr(app.state, "upstream_connections", None)
            if upstream is not None:
                await upstream.aclose()
            await login.store.close()
            for provider in login.providers.values():
                close = getattr(provider, "aclose", None)
                if close is not None:
                    await close()

    app = Starlette(
        routes=[*ROUTES, *(extra_routes or [])],
        lifespan=lifespan,
        exception_handlers={HTTPException: http_error, Exception: server_error},
    )
    app.state.login = login
    return app


def create_app_from_env() -> Starlette:
    """For `uvicorn login_app:app`: the config file comes from MCP_GATEWAY_CONFIG (default gateway.toml)."""
    return create_app(load_config(os.environ.get("MCP_GATEWAY_CONFIG", "gateway.toml")))
