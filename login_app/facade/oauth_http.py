"""What the facade's JSON endpoints share: OAuth error answers, form bodies, single-valued parameters."""

from __future__ import annotations

from collections.abc import Mapping

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import JSONResponse

from mcp_gateway.oauth_errors import OAuthError

NO_STORE = {"cache-control": "no-store", "pragma": "no-cache"}
MAX_FORM_BYTES = 16 * 1024


def oauth_json(body: object, status: int = 200, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers={**NO_STORE, **(headers or {})})


def oauth_error(error: OAuthError) -> JSONResponse:
    return oauth_json({"error": error.error, "error_description": error.description}, error.status, error.headers)


async def read_form(request: Request) -> FormData:
    """The urlencoded body of a token or revocation request; OAuthError if it is anything else."""
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/x-www-form-urlencoded":
        raise OAuthError("invalid_request", "send the parameters as application/x-www-form-urlencoded")
    if int(request.headers.get("content-length") or 0) > MAX_FORM_BYTES:
        raise OAuthError("invalid_request", "request body too large")
    return await request.form()


def single(params: FormData | Mapping, name: str, *, required: bool = False) -> str | None:
    """A parameter that may appear at most once (RFC 6749 §3.1, §3.2)."""
    values = params.getlist(name) if hasattr(params, "getlist") else [params[name]] if name in params else []
    if len(values) > 1:
        raise OAuthError("invalid_request", f"parameter {name} given more than once")
    value = str(values[0]) if values else ""
    if not value:
        if required:
            raise OAuthError("invalid_request", f"parameter {name} is required")
        return None
    return value
