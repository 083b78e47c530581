"""JSON read so that no second parser could read it differently: the gateway decides on exactly
the document the receiver will see, and refuses (fail closed) anything ambiguous — duplicate keys
at any depth, keys that differ only in case (case-insensitive decoders such as Go's encoding/json
pick one of them), lone UTF-16 surrogates, NaN/Infinity, numbers that overflow a double, a
byte-order mark, anything but UTF-8, trailing data, deep nesting. Used for MCP JSON-RPC bodies
(mcp_gateway/jsonrpc.py) and the JSON the gateway's own APIs accept."""

from __future__ import annotations

import json
import math
import re
from typing import Any


class BodyRejected(ValueError):
    """A body the gateway will not read. `status` is the HTTP status to answer with."""

    def __init__(self, reason: str, status: int = 400) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


class _Ambiguous(Exception):
    pass


def load_strict_json(body: bytes, max_bytes: int, max_depth: int) -> Any:
    if len(body) > max_bytes:
        raise BodyRejected(f"body larger than {max_bytes} bytes", status=413)
    if body.startswith(b"\xef\xbb\xbf"):
        raise BodyRejected("body starts with a byte-order mark")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BodyRejected("body is not UTF-8") from None
    try:
        document = json.loads(
            text,
            object_pairs_hook=_object_without_duplicates,
            parse_constant=_refuse_constant,
            parse_float=_finite_float,
        )
    except _Ambiguous as problem:
        raise BodyRejected(str(problem)) from None
    except RecursionError:
        raise BodyRejected(f"JSON nested deeper than {max_depth} levels") from None
    except ValueError as problem:  # JSONDecodeError, and int() beyond the digit limit
        raise BodyRejected(f"body is not valid JSON: {_first_line(problem)}") from None
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
                raise BodyRejected("string holds a lone UTF-16 surrogate")
            continue
        if depth > max_depth:
            raise BodyRejected(f"JSON nested deeper than {max_depth} levels")
        if check_surrogates and any(_SURROGATE.search(key) for key in strings):
            raise BodyRejected("key holds a lone UTF-16 surrogate")
        stack.extend((child, depth + 1) for child in children)


def _first_line(problem: Exception) -> str:
    return str(problem).splitlines()[0][:200]


