"""Strict reading of MCP JSON-RPC bodies, so the gateway decides on exactly what the
upstream will see.

Anything a second parser could read differently is refused (fail closed): the JSON itself is
read by mcp_gateway/strict_json.py (duplicate or case-folded keys, surrogates, NaN, BOM, …);
here the envelope — and integer ids beyond ±(2**53 - 1).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from .strict_json import BodyRejected, load_strict_json

DEFAULT_MAX_BYTES = 4 * 1024 * 1024
DEFAULT_MAX_DEPTH = 64
# Integers beyond ±(2**53 - 1) are not read alike by every JSON parser (RFC 7493 §2.2): a
# JavaScript upstream answers request 2**53 + 1 as 2**53, an id the gateway never matched.
MAX_SAFE_INTEGER = 2**53 - 1

MessageKind = Literal["request", "notification", "response"]


JsonRpcRejected = BodyRejected  # one refusal for the body and for its JSON-RPC envelope


@dataclass(frozen=True)
class RpcMessage:
    kind: MessageKind
    id: str | int | None
    method: str | None
    tool: str | None  # params.name of a tools/call request
    raw: dict[str, Any] = field(repr=False, compare=False)


@dataclass(frozen=True)
class RpcPayload:
    messages: list[RpcMessage]
    batch: bool  # the body was a JSON array (answers to it must be an array too)


def parse_mcp_body(body: bytes, max_bytes: int = DEFAULT_MAX_BYTES) -> list[RpcMessage]:
    """The messages of an MCP POST body (one, or a batch); raises JsonRpcRejected."""
    return parse_mcp_payload(body, max_bytes).messages


def parse_mcp_payload(
    body: bytes, max_bytes: int = DEFAULT_MAX_BYTES, max_depth: int = DEFAULT_MAX_DEPTH
) -> RpcPayload:
    document = load_strict_json(body, max_bytes, max_depth)
    if isinstance(document, list):
        if not document:
            raise JsonRpcRejected("empty batch")
        return RpcPayload([_message(entry, f"batch entry {i}") for i, entry in enumerate(document)], batch=True)
    return RpcPayload([_message(document, "body")], batch=False)


def error_responses(messages: list[RpcMessage], code: int, message: str, data: Any = None) -> list[dict[str, Any]]:
    """A JSON-RPC error for every request among `messages` (notifications and responses get none)."""
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return [{"jsonrpc": "2.0", "id": m.id, "error": dict(error)} for m in messages if m.kind == "request"]


# --- strict JSON ---------------------------------------------------------------------------


# --- JSON-RPC 2.0 envelope -----------------------------------------------------------------


def _message(entry: Any, where: str) -> RpcMessage:
    if not isinstance(entry, dict):
        raise JsonRpcRejected(f"{where}: a JSON-RPC message must be an object")
    if entry.get("jsonrpc") != "2.0":
        raise JsonRpcRejected(f'{where}: "jsonrpc" must be "2.0"')
    if "method" in entry:
        return _request_or_notification(entry, where)
    return _response(entry, where)


def _request_or_notification(entry: dict[str, Any], where: str) -> RpcMessage:
    method = entry["method"]
    if not isinstance(method, str) or not method:
        raise JsonRpcRejected(f'{where}: "method" must be a non-empty string')
    if "result" in entry or "error" in entry:
        raise JsonRpcRejected(f"{where}: a message cannot be both a request and a response")
    params = entry.get("params")
    if "params" in entry and not isinstance(params, (dict, list)):
        raise JsonRpcRejected(f'{where}: "params" must be an object or an array')
    tool = None
    if method == "tools/call":
        name = params.get("name") if isinstance(params, dict) else None
        if not isinstance(name, str):
            raise JsonRpcRejected(f'{where}: tools/call needs "params.name" as a string')
        tool = name
    if "id" not in entry:
        return RpcMessage("notification", None, method, tool, entry)
    return RpcMessage("request", _request_id(entry["id"], where), method, tool, entry)


def _response(entry: dict[str, Any], where: str) -> RpcMessage:
    if ("result" in entry) == ("error" in entry):
        raise JsonRpcRejected(f'{where}: needs "method" (a request) or exactly one of "result"/"error" (a response)')
    if "id" not in entry:
        raise JsonRpcRejected(f'{where}: a response needs an "id"')
    if "error" in entry and not isinstance(entry["error"], dict):
        raise JsonRpcRejected(f'{where}: "error" must be an object')
    response_id = None if entry["id"] is None else _request_id(entry["id"], where)
    return RpcMessage("response", response_id, None, None, entry)


def _request_id(value: Any, where: str) -> str | int:
    # bool is an int subclass in Python; JSON true must not pass as an id.
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise JsonRpcRejected(f'{where}: "id" must be a string or an integer')
    if isinstance(value, int) and abs(value) > MAX_SAFE_INTEGER:
        raise JsonRpcRejected(f'{where}: an integer "id" must lie within ±(2**53 - 1)')
    return value
