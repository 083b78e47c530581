"""Strict reading of MCP JSON-RPC bodies, so the gateway decides on exactly what the
upstream will see.

Anything a second parser could read differently is refused (fail closed): duplicate
keys at any depth, keys that differ only in case (case-insensitive decoders such as Go's
encoding/json pick one of them), lone UTF-16 surrogates, NaN/Infinity, numbers that
overflow a double, integer ids beyond ±(2**53 - 1), a byte-order mark, trailing data, deep
nesting.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any, Literal

DEFAULT_MAX_BYTES = 4 * 1024 * 1024
DEFAULT_MAX_DEPTH = 64
# Integers beyond ±(2**53 - 1) are not read alike by every JSON parser (RFC 7493 §2.2): a
# JavaScript upstream answers request 2**53 + 1 as 2**53, an id the gateway never matched.
MAX_SAFE_INTEGER = 2**53 - 1

MessageKind = Literal["request", "notification", "response"]


class JsonRpcRejected(ValueError):
    """A body the gateway will not forward. `status` is the HTTP status to answer with."""

    def __init__(self, reason: str, status: int = 400) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


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
    document = _load_strict_json(body, max_bytes, max_depth)
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


class _Ambiguous(Exception):
    pass


def _load_strict_json(body: bytes, max_bytes: int, max_depth: int) -> Any:
    if len(body) > max_bytes:
        raise JsonRpcRejected(f"body larger than {max_bytes} bytes", status=413)
    if body.startswith(b"\xef\xbb\xbf"):
        raise JsonRpcRejected("body starts with a byte-order mark")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise JsonRpcRejected("body is not UTF-8") from None
    try:
        document = json.loads(
            text,
            object_pairs_hook=_object_without_duplicates,
            parse_constant=_refuse_constant,
            parse_float=_finite_float,
        )
    except _Ambiguous as problem:
        raise JsonRpcRejected(str(problem)) from None
    except RecursionError:
        raise JsonRpcRejected(f"JSON nested deeper than {max_depth} levels") from None
    except ValueError as problem:  # JSONDecodeError, and int() beyond the digit limit
        raise JsonRpcRejected(f"body is not valid JSON: {_first_line(problem)}") from None
    _check_depth_and_strings(document, max_depth, check_surrogates=_may_hold_surrogate(text))
    return document


def _object_without_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: set[str] = set()
    for key, _ in pairs:
        folded = key.casefold()
        if folded in seen:
            raise _Ambiguous(f"duplicate key {key!r} (keys must differ other than by case)")
        seen.add(folded)
    return dict(pairs)


def _refuse_constant(name: str) -> Any:
    raise _Ambiguous(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _Ambiguous(f"number {text[:40]!r} does not fit a double")
    return value


_ESCAPED_SURROGATE = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def _may_hold_surrogate(text: str) -> bool:
    # Valid UTF-8 cannot carry a surrogate; only a \uD8xx-\uDFxx escape can.
    return _ESCAPED_SURROGATE.search(text) is not None


def _check_depth_and_strings(document: Any, max_depth: int, check_surrogates: bool) -> None:
    stack: list[tuple[Any, int]] = [(document, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            children = list(value.values())
            strings = list(value.keys())
        elif isinstance(value, list):
            children, strings = value, []
        else:
            if check_surrogates and isinstance(value, str) and _SURROGATE.search(value):
                raise JsonRpcRejected("string holds a lone UTF-16 surrogate")
            continue
        if depth > max_depth:
            raise JsonRpcRejected(f"JSON nested deeper than {max_depth} levels")
        if check_surrogates and any(_SURROGATE.search(key) for key in strings):
            raise JsonRpcRejected("key holds a lone UTF-16 surrogate")
        stack.extend((child, depth + 1) for child in children)


def _first_line(problem: Exception) -> str:
    return str(problem).splitlines()[0][:200]


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
